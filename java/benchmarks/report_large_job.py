#!/usr/bin/env python3
"""Turns LargeStateJobBenchmark's result lines (one JSON object per line, `LARGEJOB ` stripped
or not) into a markdown table: per value size, access and configuration, phase-2 records/s
(and over its second half), ours / Flink's at the same budget, the load, checkpoints during
phase 2, memory and disk.

    report_large_job.py large-job.jsonl [context.txt] > large-job.md
"""
import sys

from runs import read_runs

ORDER = {"ROCKSDB": 0, "NATIVE_ROCKSDB": 1}


def memory(backend, budget, ratio):
    if budget == "default":
        return ("Flink's defaults (no shared cache)" if backend == "ROCKSDB"
                else "defaults: 256 MiB RocksDB + 256 MiB write cache")
    mib = int(budget.lower().rstrip("mb").strip())
    if backend == "ROCKSDB":
        return f"{mib} MiB (fixed-per-slot)"
    r = 0.5 if ratio == "default" else float(ratio)
    wc = round(mib * r)
    return f"{mib} MiB: {mib - wc} RocksDB + {wc} write cache"


def num(x, d=1):
    if x is None:
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.{d}f}"


def cell(r):
    # The cell a run belongs to; Flink's RocksDB at the same budget is the reference.
    return (r["valueSize"], r["stateMiB"], r["distribution"], r["records"], r["budget"],
            r.get("options", "none"), r.get("intervalSeconds"))


def main():
    runs = read_runs(sys.argv[1], "LARGEJOB ")
    flink = {cell(r): r for r in runs if r["backend"] == "ROCKSDB"}
    runs.sort(key=lambda r: (-r["valueSize"], r["distribution"] != "uniform", r["distribution"],
                             r["budget"] == "default", r["budget"], ORDER.get(r["backend"], 9),
                             r["ratio"]))
    head = ["value size", "keys", "access", "backend", "native memory", "records/s",
            "2nd half (records/s)", "ours / Flink's", "load (s)", "checkpoints (in phase 2)",
            "checkpoint median / max (s)", "sync pause max (ms)", "peak RSS (MiB)",
            "native growth (MiB)", "on disk at end (MiB)", "disk writes (B/record)",
            "disk reads (B/record)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in runs:
        rel = ""
        ref = flink.get(cell(r))
        if r["backend"] != "ROCKSDB" and ref and ref.get("recordsPerSecond"):
            rel = f"{r['recordsPerSecond'] / ref['recordsPerSecond']:.2f}×"
        options = r.get("options", "none")
        ck = f"{r['checkpoints']} ({r['checkpointsDuringMeasure']})"
        if r.get("checkpointsFailedBeforeEnd"):
            ck += f", {r['checkpointsFailedBeforeEnd']} failed"
        print("| " + " | ".join([
            f"{r['valueSize']} B", f"{r['keys']:,}", r["distribution"], r["backend"],
            memory(r["backend"], r["budget"], r["ratio"])
            + ("" if options == "none" else f", {options}"),
            f"{r['recordsPerSecond']:,.0f}", f"{r['secondHalfRecordsPerSecond']:,.0f}", rel,
            num(r["loadSeconds"]), ck,
            f"{num(r.get('checkpointMedianSeconds'), 2)} / {num(r.get('checkpointMaxSeconds'), 2)}",
            num(r.get("checkpointSyncMaxMillis")), num(r["peakRssMiB"], 0),
            num(r["nativeGrowthMiB"], 0), num(r["diskMiB"]),
            num(r["diskWriteBytesPerRecord"]), num(r["diskReadBytesPerRecord"]),
        ]) + " |")
    first = runs[0]
    print()
    print(f"One keyed job per row on a MiniCluster (Flink {first.get('flink', '?')}, 1 slot, "
          f"parallelism 1): {first['stateMiB']:,} MiB of state loaded in ascending key order, "
          f"then {first['records']:,} read-modify-writes on random keys (phase 2), incremental "
          f"checkpoints every {num(first.get('intervalSeconds'), 0)} s throughout. Records/s: "
          "phase 2 timed on the task thread (the load excluded); 2nd half: its last half, further "
          "from the load and the compactions it leaves. Ours / Flink's: records/s against Flink's RocksDB at "
          "the same budget. Checkpoints: completed in the whole job (those triggered during "
          "phase 2); their end-to-end time and the longest synchronous pause of phase 2's. "
          "Peak RSS: the largest VmRSS sampled every 200 ms (1 GiB pre-touched heap and the "
          "MiniCluster included); native growth: RssAnon over the process before the job was "
          "submitted. On disk: the backend's local files at the end of phase 2 (hard links "
          "once; checkpoint copies not included). Disk writes/reads: /proc/self/io during "
          "phase 2 per record (checkpoint uploads to the local checkpoint directory included).")
    if len(sys.argv) > 2:
        print()
        with open(sys.argv[2]) as f:
            sys.stdout.write(f.read())


if __name__ == "__main__":
    main()
