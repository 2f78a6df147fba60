#!/usr/bin/env python3
"""Cross-check spec-reader dumps of the demo's final checkpoint against the
demo's result.txt.  Usage: check_demo.py <result.txt> <dump>...
Exits 1 with a message on the first mismatch."""

import struct
import sys


def fail(msg):
    print("check_demo: " + msg, file=sys.stderr)
    sys.exit(1)


def parse_fields(line):
    out = {}
    for tok in line.split(" "):
        k, _, v = tok.partition("=")
        out[k] = v
    return out


def main(argv):
    result_path, dumps = argv[1], argv[2:]
    expect = {}
    for line in open(result_path):
        f = line.rstrip("\n").split(" ")
        if len(f) != 4:
            fail("bad result line %r" % line)
        user = int(f[0])
        large = [int(x) for x in f[2].split(",")] if f[2] else []
        hist = {}
        if f[3]:
            for kv in f[3].split(","):
                k, v = kv.split(":")
                hist[int(k)] = int(v)
        expect[user] = (int(f[1]), large, hist)

    totals, larges, hists = {}, {}, {}
    offsets = []
    for d in dumps:
        for line in open(d):
            line = line.rstrip("\n")
            if line.startswith("entries: "):
                continue
            if line.startswith("operator "):
                _, name, dist, elems = line.split(" ")
                if name == "source-offset":
                    vals = [struct.unpack("<Q", bytes.fromhex(e))[0]
                            for e in elems.strip("[]").split(",") if e]
                    offsets.append((d, dist, vals))
                continue
            f = parse_fields(line)
            key = bytes.fromhex(f["key"])
            if len(key) != 4 or f["ns"] != "":
                fail("unexpected key/namespace in %r" % line)
            user = struct.unpack(">I", key)[0]
            st = f["state"]
            if st == "total":
                if user in totals:
                    fail("duplicate total for user %d" % user)
                totals[user] = struct.unpack("<Q", bytes.fromhex(f["value"]))[0]
            elif st == "large":
                if user in larges:
                    fail("duplicate list for user %d" % user)
                larges[user] = [struct.unpack("<I", bytes.fromhex(e))[0]
                                for e in f["list"].strip("[]").split(",") if e]
            elif st == "histogram":
                bucket = bytes.fromhex(f["ukey"])
                if len(bucket) != 1:
                    fail("histogram user key not one byte: %r" % line)
                h = hists.setdefault(user, {})
                if bucket[0] in h:
                    fail("duplicate histogram bucket for user %d" % user)
                h[bucket[0]] = struct.unpack("<Q", bytes.fromhex(f["value"]))[0]
            else:
                fail("unknown state %r" % st)

    want_sum = sum(t for t, _, _ in expect.values())
    got_sum = sum(totals.values())
    if got_sum != want_sum:
        fail("sum of totals %d != result.txt %d" % (got_sum, want_sum))
    if set(totals) != set(expect):
        fail("users differ: %d in snapshot, %d in result.txt" % (len(totals), len(expect)))
    for user, (total, large, hist) in expect.items():
        if totals[user] != total:
            fail("user %d total %d != %d" % (user, totals[user], total))
        if larges.get(user, []) != large:
            fail("user %d large %r != %r" % (user, larges.get(user), large))
        if hists.get(user, {}) != hist:
            fail("user %d histogram %r != %r" % (user, hists.get(user), hist))
    if not offsets:
        fail("no source-offset operator list")
    for d, dist, vals in offsets:
        if vals != [400000]:
            fail("%s: source-offset %s %r != [400000]" % (d, dist, vals))
    print("check_demo: %d users, sum of totals %d, %d source-offset lists = 400000"
          % (len(expect), got_sum, len(offsets)))


if __name__ == "__main__":
    main(sys.argv)
