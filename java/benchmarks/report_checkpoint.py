#!/usr/bin/env python3
"""Turns the results of CheckpointBenchmark and FootprintBenchmark (one JSON object per line)
into docs/benchmarks.md's checkpoint and memory tables.

Usage: report_checkpoint.py RESULTS_DIR DOC.md

RESULTS_DIR holds checkpoint.jsonl and footprint.jsonl, each with the context of the run
that wrote it (context-checkpoint.txt, context-footprint.txt).

The tables replace what stands between <!-- bench-checkpoint:begin --> and
<!-- bench-checkpoint:end --> in DOC.md.
"""
import json
import os
import sys

BACKENDS = ["HEAP", "ROCKSDB", "NATIVE_MEMORY", "NATIVE_FS", "NATIVE_ROCKSDB"]
FLINKS = {"NATIVE_MEMORY": "HEAP", "NATIVE_FS": "HEAP", "NATIVE_ROCKSDB": "ROCKSDB"}
BEGIN = "<!-- bench-checkpoint:begin -->"
END = "<!-- bench-checkpoint:end -->"
MIB = 1024 * 1024


def load(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return sorted(rows, key=lambda r: (BACKENDS.index(r["backend"]), r.get("mode", "")))


def num(x, digits=2):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def checkpoint_table(rows):
    head = [
        "backend", "mode", "state (MiB)", "sync pause (ms)", "async phase (s)",
        "checkpoint (MiB)", "2nd checkpoint: sync (ms)", "2nd: async (s)",
        "2nd: uploaded (MiB)", "restore (s)", "restore, rescaled 1→2 (s)", "handle",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        inc = r["mode"] == "incremental"
        lines.append("| " + " | ".join([
            r["backend"], r["mode"], f"{r['sizeMiB']:,}",
            num(r["firstSyncMillis"], 3), num(r["firstAsyncSeconds"]),
            num(r["firstCheckpointedMiB"], 1),
            num(r.get("secondSyncMillis"), 3) if inc else "",
            num(r.get("secondAsyncSeconds")) if inc else "",
            num(r.get("secondCheckpointedMiB"), 1) if inc else "",
            num(r["restoreSeconds"]),
            num(r.get("rescaleRestoreSeconds")),
            r.get("secondHandleType", r["firstHandleType"]),
        ]) + " |")
    return "\n".join(lines)


def footprint_table(rows):
    by = {r["backend"]: r for r in rows}
    head = [
        "backend", "entries", "JVM heap (MiB)", "native resident (MiB)", "total (MiB)",
        "bytes per entry", "ours / Flink's", "on disk (MiB)", "fill (s)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        total = r["heapBytes"] + r["nativeBytes"]
        flink = by.get(FLINKS.get(r["backend"], ""))
        rel = ""
        if flink:
            rel = f"{total / (flink['heapBytes'] + flink['nativeBytes']):.2f}×"
        lines.append("| " + " | ".join([
            r["backend"], f"{r['entries']:,}", num(r["heapBytes"] / MIB, 1),
            num(r["nativeBytes"] / MIB, 1), num(total / MIB, 1),
            num(total / r["entries"], 1), rel, num(r["diskBytes"] / MIB, 1),
            num(r["fillSeconds"], 1),
        ]) + " |")
    return "\n".join(lines)


def context(directory, part):
    path = os.path.join(directory, f"context-{part}.txt")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read().strip()


def main():
    directory, doc = sys.argv[1:3]
    parts = [BEGIN]
    rows = load(os.path.join(directory, "checkpoint.jsonl"))
    if rows:
        parts += ["Checkpoints (`CheckpointBenchmark`):", "", context(directory, "checkpoint"), "",
                  checkpoint_table(rows), ""]
    rows = load(os.path.join(directory, "footprint.jsonl"))
    if rows:
        parts += ["Memory (`FootprintBenchmark`):", "", context(directory, "footprint"), "",
                  footprint_table(rows), ""]
    parts.append(END)
    block = "\n".join(parts)
    with open(doc) as f:
        content = f.read()
    if BEGIN not in content or END not in content:
        sys.exit(f"{doc} has no {BEGIN} ... {END} block")
    start = content.index(BEGIN)
    end = content.index(END) + len(END)
    with open(doc, "w") as f:
        f.write(content[:start] + block + content[end:])
    print(block)


if __name__ == "__main__":
    main()
