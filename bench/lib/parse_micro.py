#!/usr/bin/env python3
"""Turn the printed output of one micro-benchmark (bench/bench_*.c) into
records (JSON lines on stdout) for bench/lib/report.py.

The benchmarks print one figure a line in a few shapes, e.g.
  "<what>  median 12.3 ms  min 11.0 ms  max 14.1 ms  (5 runs)"
  "<what>: median 900 MB/s (min 850, max 950)"
  "<what>  p50 0.20  p99 0.90  min 0.10  max 2.00  ms (n=...)"
so a line is a figure when it has a median or a p50; the text before that
keyword is its name (prefixed by the last "== section ==" header), the
numbers after median/p50/p99/min/max are its statistics and the first word
that is not a number or a keyword is its unit. Other lines are kept as notes.
Usage: parse_micro.py BENCH_NAME < output
"""
import json
import re
import sys

KEYS = ("median", "p50", "p99", "min", "max")
NUM = re.compile(r"^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$")


def parse_line(line):
    m = re.search(r"\bmedian\b", line) or re.search(r"\bp50\b", line)
    if not m:
        return None
    name = " ".join(line[: m.start()].split()).rstrip(":").strip()
    rest = line[m.start():]
    toks = re.findall(r"[^\s(),:]+", rest)
    stats, unit, i = {}, None, 0
    while i < len(toks):
        t = toks[i]
        if t in KEYS and i + 1 < len(toks) and NUM.match(toks[i + 1]):
            stats[t] = float(toks[i + 1])
            i += 2
            continue
        if unit is None and not NUM.match(t) and t not in KEYS and not t.startswith("n=") \
                and t not in ("runs", "run"):
            unit = t
        i += 1
    if "median" not in stats and "p50" in stats:
        stats["median"] = stats["p50"]
    if "median" not in stats:
        return None
    runs = re.search(r"(\d+) runs?\b|n=(\d+)", line)
    rec = {"name": name, "unit": unit or "", "median": stats["median"]}
    for k in ("min", "max", "p50", "p99"):
        if k in stats:
            rec[k] = stats[k]
    if runs:
        rec["runs"] = int(runs.group(1) or runs.group(2))
    return rec


def main():
    bench = sys.argv[1] if len(sys.argv) > 1 else "bench"
    section = ""
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        h = re.match(r"^\s*==\s*(.*?)\s*==\s*$", line)
        if h:
            section = h.group(1)
            continue
        r = parse_line(line)
        if r is None:
            if line.strip():
                print(json.dumps({"group": bench, "text": line.strip()}))
            continue
        if section:
            r["name"] = section + ": " + r["name"]
        r["group"] = bench
        print(json.dumps(r))
        if "|" in line:  # several figures on one line: keep the whole line too
            print(json.dumps({"group": bench, "text": " ".join(line.split())}))


if __name__ == "__main__":
    main()
