"""Starts a moto S3 server on 127.0.0.1 for the remote-storage tests.

Usage: moto_server.py  -> prints one JSON line {"endpoint", "access_key",
"secret_key", "bucket", "pid"} once the server answers and the bucket exists, then waits until stdin closes (the
test process exited) and stops the server.

Authentication is enforced, as on AWS: moto lets the first requests through
unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT) so that this script can create an
IAM user with an access key allowed to use S3; every other key is refused.

One shim: moto builds the canonical query string of a signature from the raw
query, where AWS URI-encodes each name and value first (SigV4). Clients that send
'/' unencoded in a query value (OpenDAL's `prefix=a/b/`) are accepted by AWS and
refused by moto, so the query is normalized here the way AWS does it.
"""

import json
import logging
import os
import socket
import sys
import urllib.parse

# create_user, put_user_policy, create_access_key
SETUP_REQUESTS = 3
BUCKET = "checkpoints"
# Read by moto when it is imported.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_REQUESTS)

import boto3  # noqa: E402
from moto.iam import access_control  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def aws_canonical_query(path):
    base, sep, query = path.partition("?")
    if not sep:
        return path
    encode = lambda s: urllib.parse.quote(urllib.parse.unquote(s), safe="-_.~")
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        pairs.append(encode(name) + eq + encode(value))
    return base + "?" + "&".join(pairs)


_create_aws_request = access_control.IAMRequestBase._create_aws_request


def _create_aws_request_like_aws(self):
    request = _create_aws_request(self)
    request.url = aws_canonical_query(request.url)
    return request


access_control.IAMRequestBase._create_aws_request = _create_aws_request_like_aws

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="checkpoints")
        iam.put_user_policy(
            UserName="checkpoints",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="checkpoints")["AccessKey"]
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        ).create_bucket(Bucket=BUCKET)
        print(
            json.dumps(
                {
                    "endpoint": endpoint,
                    "access_key": key["AccessKeyId"],
                    "secret_key": key["SecretAccessKey"],
                    "bucket": BUCKET,
                    "pid": os.getpid(),
                }
            ),
            flush=True,
        )
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
