#!/usr/bin/env python3
"""Checks that a ClusterJob run committed the exactly-once result.

Usage: verify.py WORK EVENTS LABEL

WORK is the job's --work directory: committed files in WORK/output, files that were
written but never committed (by an attempt that was killed or failed after its last
completed checkpoint) in WORK/staging. The expected output is computed here, in Python,
independently of the job: for each key k = n % 20 of the numbers 0..EVENTS-1, every
10th number of the key emits its count, sum, list size and sum, histogram of n % 7
and maximum, in the job's text format (java.util.TreeMap's toString for the histogram).

Passes (exit 0) when the committed lines are exactly the expected lines, each once, and
every complete uncommitted line is among them (it was replayed after the restore).
Prints one PASS or FAIL line with the numbers it checked.
"""
import os
import sys
from collections import Counter

KEYS = 20
EMIT_EVERY = 10


def expected(events):
    out = []
    for key in range(KEYS):
        count = total = 0
        biggest = None
        histogram = {}
        for n in range(key, events, KEYS):
            count += 1
            total += n
            biggest = n if biggest is None else max(biggest, n)
            histogram[n % 7] = histogram.get(n % 7, 0) + 1
            if count % EMIT_EVERY == 0:
                hist = "{" + ", ".join(f"{k}={v}" for k, v in sorted(histogram.items())) + "}"
                out.append(
                    f"key {key}: count={count} sum={total} list=[{count} numbers, sum {total}]"
                    f" histogram={hist} max={biggest}"
                )
    return out


def read_lines(directory):
    """Complete lines of every file in directory; also how many files and torn last lines."""
    lines = Counter()
    files = torn = 0
    for name in sorted(os.listdir(directory)):
        files += 1
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            text = f.read()
        parts = text.split("\n")
        if parts[-1] != "":
            torn += 1  # the process was killed while writing this line
        for line in parts[:-1]:
            lines[line] += 1
    return lines, files, torn


def main():
    work, events, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    want = expected(events)
    want_set = set(want)
    committed, committed_files, committed_torn = read_lines(os.path.join(work, "output"))
    uncommitted, staged_files, staged_torn = read_lines(os.path.join(work, "staging"))
    problems = []
    duplicates = {line: n for line, n in committed.items() if n > 1}
    missing = [line for line in want if line not in committed]
    unexpected = [line for line in committed if line not in want_set]
    not_replayed = [line for line in uncommitted if line not in committed]
    if committed_torn:
        problems.append(f"{committed_torn} committed files end in a partial line")
    if duplicates:
        problems.append(f"{len(duplicates)} lines committed more than once, e.g. {next(iter(duplicates))!r}")
    if missing:
        problems.append(f"{len(missing)} expected lines missing, e.g. {missing[0]!r}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected lines, e.g. {unexpected[0]!r}")
    if not_replayed:
        problems.append(f"{len(not_replayed)} uncommitted lines not replayed, e.g. {not_replayed[0]!r}")
    total = sum(committed.values())
    summary = (
        f"{total} lines committed in {committed_files} files, expected {len(want)} "
        f"(numbers 0-{events - 1}, {KEYS} keys, a record every {EMIT_EVERY}); "
        f"{sum(uncommitted.values())} complete lines in {staged_files} uncommitted files"
        f"{f' (+{staged_torn} torn last lines)' if staged_torn else ''} all replayed"
    )
    if problems:
        print(f"FAIL {label}: exactly-once: {'; '.join(problems)} ({summary})")
        return 1
    print(f"PASS {label}: exactly-once: {summary}; no duplicates, no losses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
