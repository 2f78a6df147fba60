#!/usr/bin/env python3
"""Turns StateV2Benchmark's run lines (one JSON object per line, `V2RUN ` stripped) into a
markdown table: records/s per backend with the V1 and the V2 API, the V2/V1 ratio, and ours
against Flink's backends under each API. The first round of each (backend, API) is a warm-up
(JIT, page cache) and is left out when there are more; the table gives the mean of the others
and their range.

    report_v2.py v2.jsonl [context.txt] > v2.md
"""
import sys

from runs import read_runs

ORDER = ["HEAP", "ROCKSDB", "FORST", "NATIVE_MEMORY", "NATIVE_FS", "NATIVE_ROCKSDB"]
FLINK = ["HEAP", "ROCKSDB", "FORST"]


def main():
    runs = read_runs(sys.argv[1], "V2RUN ")
    by = {}
    for r in runs:
        by.setdefault((r["backend"], r["api"]), []).append(r)
    stats = {}
    for key, rs in by.items():
        rs.sort(key=lambda r: r["round"])
        kept = rs[1:] if len(rs) > 1 else rs
        values = [r["recordsPerSecond"] for r in kept]
        stats[key] = {
            "mean": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "n": len(values),
            "rounds": [r["round"] for r in kept],
            "checkpoints": [r["checkpoints"] for r in kept],
            "states": rs[-1]["states"],
            "verified": all(r["verified"] for r in rs),
        }
    backends = [b for b in ORDER if any(k[0] == b for k in stats)]
    backends += sorted({k[0] for k in stats} - set(backends))
    first = runs[0]

    def rate(key):
        s = stats.get(key)
        if not s:
            return "–"
        text = f"{s['mean'] / 1000:,.0f}k"
        if s["n"] > 1:
            text += f" ({s['min'] / 1000:,.0f}–{s['max'] / 1000:,.0f}k)"
        return text

    def ratio(a, b):
        if a in stats and b in stats:
            return f"{stats[a]['mean'] / stats[b]['mean']:.2f}×"
        return "–"

    print(f"{first['records']:,} records over {first['keys']:,} keys per job, parallelism 1, "
          f"checkpoints every 1 s; records/s measured over the last "
          f"{first['measuredRecords']:,} records of each job; mean of rounds "
          f"{', '.join(str(r) for r in stats[next(iter(stats))]['rounds'])} "
          "(range in brackets; round 1 is a warm-up).")
    print()
    own = any(k[1] == "v2-own" for k in stats)
    head = ["backend", "V1 records/s", "V2 records/s", "V2/V1", "checkpoints (V1; V2)",
            "V2 state (as Flink builds it)"]
    if own:
        head[4:4] = ["V2, own async backend", "own/V2"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for b in backends:
        v1, v2 = stats.get((b, "v1")), stats.get((b, "v2"))
        cps = "; ".join(
            "/".join(str(c) for c in s["checkpoints"]) if s else "–" for s in (v1, v2))
        ok = all(s["verified"] for s in (v1, v2) if s)
        ok = ok and all(s["verified"] for s in [stats.get((b, "v2-own"))] if s)
        row = [b, rate((b, "v1")), rate((b, "v2")), ratio((b, "v2"), (b, "v1")), cps,
               (v2["states"] if v2 else "–") + ("" if ok else " **(NOT VERIFIED)**")]
        if own:
            row[4:4] = [rate((b, "v2-own")), ratio((b, "v2-own"), (b, "v2"))]
        print("| " + " | ".join(row) + " |")
    print()
    ours = [b for b in backends if b not in FLINK]
    flink = [b for b in FLINK if b in backends]
    if ours and flink:
        print("Ours divided by Flink's backends, records/s (above 1 we are faster):")
        print()
        head = ["ours"] + [f"/ {f} (V2)" for f in flink] + [f"/ {f} (V1)" for f in flink]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for o in ours:
            print("| " + " | ".join(
                [o] + [ratio((o, "v2"), (f, "v2")) for f in flink]
                + [ratio((o, "v1"), (f, "v1")) for f in flink]) + " |")
        print()
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            print(f.read().rstrip())


if __name__ == "__main__":
    main()
