#!/usr/bin/env python3
"""Turns a JMH JSON result of the state benchmarks into docs/benchmarks.md's table and a PNG chart.

Usage: report.py RESULTS.json DOC.md CHART.png CONTEXT.txt [--flink-2.3]

The table and the run's context replace what stands between the markers
<!-- bench-flink:begin --> and <!-- bench-flink:end --> in DOC.md. With --flink-2.3 (the run of
BENCH_FLINK=2.3 scripts/bench-flink): Flink 2.3's backends, FORST among them, and a ratio of
NATIVE_ROCKSDB to FORST, between <!-- bench-flink-2.3:begin --> and <!-- bench-flink-2.3:end -->;
the chart is linked from the block only if it sits beside DOC.md.
"""
import json
import math
import os
import sys

BACKENDS = ["HEAP", "ROCKSDB", "NATIVE_MEMORY", "NATIVE_FS", "NATIVE_ROCKSDB"]
# (ours, Flink's): the ratio columns.
RATIOS = [("NATIVE_MEMORY", "HEAP"), ("NATIVE_FS", "HEAP"), ("NATIVE_ROCKSDB", "ROCKSDB")]
ORDER = [
    "valueGet", "valueUpdate", "valueAdd",
    "listGet", "listGetAndIterate", "listUpdate", "listAdd", "listAppend", "listAddAll",
    "mapGet", "mapContains", "mapIsEmpty", "mapUpdate", "mapAdd", "mapRemove", "mapPutAll",
    "mapKeys", "mapValues", "mapEntries", "mapIterator",
]
BEGIN = "<!-- bench-flink:begin -->"
END = "<!-- bench-flink:end -->"


def flink_2_3():
    """Switches to the Flink 2.3 run: FORST (Flink 2.x's ForStStateBackend) and its own block."""
    global BACKENDS, RATIOS, BEGIN, END
    BACKENDS = ["HEAP", "ROCKSDB", "FORST", "NATIVE_MEMORY", "NATIVE_FS", "NATIVE_ROCKSDB"]
    RATIOS = RATIOS + [("NATIVE_ROCKSDB", "FORST")]
    BEGIN = "<!-- bench-flink-2.3:begin -->"
    END = "<!-- bench-flink-2.3:end -->"


def load(path):
    with open(path) as f:
        runs = json.load(f)
    scores = {}
    for run in runs:
        name = run["benchmark"].rsplit(".", 1)[1]
        backend = run["params"]["backend"]
        scores.setdefault(name, {})[backend] = run["primaryMetric"]["score"]
    return runs, scores


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def ratio(row, ours, theirs):
    if row.get(ours) and row.get(theirs):
        return row[ours] / row[theirs]
    return None


def table(scores):
    names = [n for n in ORDER if n in scores] + sorted(n for n in scores if n not in ORDER)
    head = ["benchmark"] + BACKENDS + [f"{a[7:].lower()}/{b}" for a, b in RATIOS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        row = scores[n]
        cells = [n] + [fmt(row.get(b)) for b in BACKENDS]
        cells += [fmt_ratio(ratio(row, a, b)) for a, b in RATIOS]
        lines.append("| " + " | ".join(cells) + " |")
    # Geometric means over the benchmarks that every column has.
    common = [n for n in names if all(scores[n].get(b) for b in BACKENDS)]
    cells = [f"**geometric mean** ({len(common)})"]
    cells += [fmt(geomean([scores[n][b] for n in common])) for b in BACKENDS]
    cells += [
        "**" + fmt_ratio(geomean([ratio(scores[n], a, b) for n in common])) + "**"
        for a, b in RATIOS
    ]
    lines.append("| " + " | ".join(cells) + " |")
    return names, "\n".join(lines)


def chart(names, scores, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "HEAP": "#9e9e9e", "ROCKSDB": "#5d4037", "FORST": "#fb8c00",
        "NATIVE_MEMORY": "#1e88e5", "NATIVE_FS": "#43a047", "NATIVE_ROCKSDB": "#e53935",
    }
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(15, 0.42 * len(names) + 2.8), sharey=True,
        gridspec_kw={"width_ratios": [3, 2]})
    height = 0.8 / len(BACKENDS)
    ys = list(range(len(names)))
    for k, b in enumerate(BACKENDS):
        vals = [scores[n].get(b, 0) or 0 for n in names]
        left.barh([y + (k - (len(BACKENDS) - 1) / 2) * height for y in ys], vals, height,
                  label=b, color=colors[b])
    left.set_xscale("log")
    left.set_yticks(ys)
    left.set_yticklabels(names)
    left.invert_yaxis()
    left.grid(axis="x", which="both", alpha=0.3)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=len(BACKENDS), fontsize=8)
    left.set_title("Throughput, ops/ms (log scale, higher is better)")
    height = 0.8 / len(RATIOS)
    for k, (a, b) in enumerate(RATIOS):
        vals = [ratio(scores[n], a, b) or 0 for n in names]
        right.barh([y + (k - (len(RATIOS) - 1) / 2) * height for y in ys], vals, height,
                   label=f"{a} / {b}", color=colors[a] if (a, b) != ("NATIVE_ROCKSDB", "FORST")
                   else colors[b])
    right.axvline(1.0, color="black", linewidth=1)
    right.set_xscale("log")
    right.grid(axis="x", which="both", alpha=0.3)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=min(len(RATIOS), 3),
                 fontsize=8)
    right.set_title("Ours / Flink's (log scale; right of 1: ours faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def settings(runs):
    r = runs[0]
    keys = sorted({run["params"].get("keyCount") for run in runs})
    forks = (
        "one JVM per backend running every benchmark (-f 0)"
        if r["forks"] == 0
        else f"{r['forks']} fork(s) per benchmark"
    )
    return (
        f"JMH {r.get('jmhVersion', '?')}, {forks}, "
        f"{r['warmupIterations']} warmup iteration(s) of {r['warmupTime']}, "
        f"{r['measurementIterations']} measured iteration(s) of {r['measurementTime']}, "
        f"keyCount={', '.join(keys)} preloaded keys, JDK {r.get('jdkVersion', '?')}"
    )


def main():
    results, doc, png, context = sys.argv[1:5]
    if "--flink-2.3" in sys.argv[5:]:
        flink_2_3()
    runs, scores = load(results)
    names, text = table(scores)
    chart(names, scores, png)
    with open(context) as f:
        ctx = f.read().strip()
    words = {3: "three", 4: "four"}
    lines = [
        BEGIN,
        ctx,
        f"- settings: {settings(runs)}",
        "",
        f"ops/ms (higher is better); the last {words.get(len(RATIOS), len(RATIOS))} columns "
        "are ours divided by Flink's "
        "(`memory/HEAP` is NATIVE_MEMORY / HEAP, and so on; above 1 we are faster).",
        "",
        text,
        "",
    ]
    if os.path.dirname(os.path.abspath(png)) == os.path.dirname(os.path.abspath(doc)):
        lines.append(
            f"![ops/ms per benchmark and backend, and ours relative to Flink's]"
            f"({os.path.basename(png)})")
    lines.append(END)
    block = "\n".join(lines)
    with open(doc) as f:
        content = f.read()
    if BEGIN not in content or END not in content:
        sys.exit(f"{doc} has no {BEGIN} ... {END} block")
    start = content.index(BEGIN)
    end = content.index(END) + len(END)
    with open(doc, "w") as f:
        f.write(content[:start] + block + content[end:])
    print(text)


if __name__ == "__main__":
    main()
