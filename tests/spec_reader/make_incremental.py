#!/usr/bin/env python3
"""Build a SYNTHETIC incremental (DbFiles) checkpoint laid out as
docs/snapshot-format.md describes, for exercising read_snapshot.py's
incremental path when the demo cannot produce a real one.  The "RocksDB
files" are stand-ins (the spec leaves SST contents to RocksDB); states,
operator lists, checkpoint id and key-group range come from an Fs manifest.

Usage: make_incremental.py <fs-manifest> <checkpoints-dir> [ok|dotdot|chunks]
Writes <checkpoints-dir>/chk-<id>/kg-<s>-<e>.manifest plus its files, and
prints the manifest path, then the output read_snapshot.py should give."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import read_snapshot as rs  # noqa: E402
from make_inline import write_manifest  # noqa: E402


def chunk_crcs(data):
    return [rs.crc32c(data[i:i + rs.CHUNK]) for i in range(0, len(data), rs.CHUNK)]


def main(src, root, variant="ok"):
    raw = open(src, "rb").read()
    m, _ = rs.read_manifest(src, raw)
    data = open(os.path.join(os.path.dirname(src), m["keyed"]["file"]), "rb").read()
    s, e = m["key_group_range"]
    kg = "kg-%d-%d" % (s, e)
    chk = os.path.join(root, "chk-%d" % m["checkpoint_id"])
    shared = os.path.join(root, "shared", kg)
    os.makedirs(chk, exist_ok=True)
    os.makedirs(shared, exist_ok=True)

    contents = {
        # > 1 MiB so that it has several chunks, the last one shorter
        "000009.sst": data + data[:rs.CHUNK // 2],
        "000012.sst": data[:4096],
        "CURRENT": b"MANIFEST-000013\n",
        "MANIFEST-000013": data[16:3000],
        "OPTIONS-000015": b"[Version]\n  rocksdb_version=8.10.0\n",
    }
    files = []
    for name, body in sorted(contents.items()):
        if name.endswith(".sst"):
            loc, loc_name = 0, "%s/%s.%s" % (kg, name, "u%08x" % rs.crc32c(body))
            path = os.path.join(root, "shared", *loc_name.split("/"))
        else:
            loc, loc_name = 1, "%s.db.%s" % (kg, name)
            path = os.path.join(chk, loc_name)
        with open(path, "wb") as f:
            f.write(body)
        files.append({"name": name, "loc": loc, "loc_name": loc_name, "size": len(body),
                      "chunk_crcs": chunk_crcs(body)})
    if variant == "dotdot":
        files[0]["loc_name"] = "%s/../%s" % (kg, files[0]["loc_name"])
    elif variant == "chunks":
        files[0]["chunk_crcs"] = files[0]["chunk_crcs"][:-1]
    m["backend"] = 2
    m["keyed"] = {"kind": "Files", "files": files,
                  "uploaded_bytes": sum(f["size"] for f in files)}
    manifest = os.path.join(chk, "%s.manifest" % kg)
    write_manifest(manifest, m)
    print(manifest)
    for f in sorted(files, key=lambda f: f["name"]):
        print("file %s %s %d" % (f["name"], "shared" if f["loc"] == 0 else "private", f["size"]))
    print("files: %d" % len(files))
    print("bytes: %d" % sum(f["size"] for f in files))


if __name__ == "__main__":
    main(*sys.argv[1:])
