#!/usr/bin/env python3
"""Build an inline (Memory-backend style) snapshot from an Fs manifest and its
data file, re-encoding the manifest body with postcard as the spec describes.
Usage: make_inline.py <fs-manifest> <out-file> [inline|stream]
(`stream` writes a single-stream snapshot: data ‖ manifest ‖ trailer instead.)
(`encode` / `write_manifest` are also used by make_incremental.py.)"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import read_snapshot as rs  # noqa: E402


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def bseq(b):
    return varint(len(b)) + b


def encode(m):
    o = bytearray()
    o += varint(m["checkpoint_id"])
    o += varint(m["backend"])
    o += varint(m["max_parallelism"])
    o += varint(m["key_group_range"][0]) + varint(m["key_group_range"][1])
    o += varint(len(m["states"]))
    for s in m["states"]:
        o += varint(s["id"]) + bseq(s["name"].encode()) + varint(s["kind"]) + bseq(s["metadata"])
    k = m["keyed"]
    if k["kind"] == "Full":
        o += varint(0)  # keyed = Full(FullData)
        o += varint(k["location"])  # Inline 0, File 1 (name), Stream 2
        if k["location"] == 1:
            o += bseq(k["file"].encode())
        o += varint(k["size"]) + varint(k["crc32c"])
        o += varint(len(k["key_group_offsets"]))
        for kg, off, _ in k["key_group_offsets"]:
            o += varint(kg) + varint(off)
        o += varint(len(k["state_sizes"]))
        for sid, n, _ in k["state_sizes"]:
            o += varint(sid) + varint(n)
    else:
        o += varint(1)  # keyed = Files(DbFiles)
        o += varint(len(k["files"]))
        for f in k["files"]:
            o += bseq(f["name"].encode()) + varint(f["loc"]) + bseq(f["loc_name"].encode())
            o += varint(f["size"]) + varint(len(f["chunk_crcs"]))
            for c in f["chunk_crcs"]:
                o += varint(c)
        o += varint(k["uploaded_bytes"])
    o += varint(len(m["operator_states"]))
    for op in m["operator_states"]:
        o += bseq(op["name"].encode()) + varint(op["distribution"])
        o += varint(len(op["elements"]))
        for e in op["elements"]:
            o += bseq(e)
    return bytes(o)


def write_manifest(path, m, trailer=b""):
    with open(path, "wb") as f:
        f.write(manifest_bytes(m) + trailer)


def manifest_bytes(m):
    body = encode(m)
    return rs.MANI_MAGIC + struct.pack("<III", rs.VERSION, len(body), rs.crc32c(body)) + body


def main(src, dst, mode="inline"):
    raw = open(src, "rb").read()
    m, mlen = rs.read_manifest(src, raw)
    body = encode(m)
    # sanity: our encoder reproduces the writer's body byte for byte
    assert body == raw[rs.MANI_HEADER:mlen], "re-encoded manifest body differs"
    data = open(os.path.join(os.path.dirname(src), m["keyed"]["file"]), "rb").read()
    m["keyed"]["file"] = None
    if mode == "stream":
        # single stream: data stream ‖ manifest ‖ manifest_offset:u64le ‖ "STBKTAIL"
        m["keyed"]["location"] = 2
        with open(dst, "wb") as f:
            f.write(data + manifest_bytes(m) + struct.pack("<Q", len(data)) + rs.TAIL_MAGIC)
    else:
        m["backend"] = 0
        m["keyed"]["location"] = 0
        write_manifest(dst, m, data)


if __name__ == "__main__":
    main(*sys.argv[1:])
