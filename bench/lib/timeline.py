#!/usr/bin/env python3
"""Turn the convergence timeline written by bench/scale.sh (lines
"SECONDS State=count State=count ...") into a gnuplot table with one column
per task state (header line first, 0 where a state was absent) and print the
number of columns. Usage: timeline.py IN OUT"""
import sys

ORDER = ["New", "Pending", "Assigned", "Accepted", "Preparing", "Ready", "Starting", "Running"]
rows, seen = [], []
for line in open(sys.argv[1]):
    parts = line.split()
    if not parts:
        continue
    d = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        d[k] = int(v)
        if k not in seen:
            seen.append(k)
    rows.append((float(parts[0]), d))
states = [s for s in ORDER if s in seen] + [s for s in seen if s not in ORDER]
with open(sys.argv[2], "w") as f:
    f.write("seconds " + " ".join(states) + "\n")
    for t, d in rows:
        f.write("%.3f %s\n" % (t, " ".join(str(d.get(s, 0)) for s in states)))
print(len(states) + 1)
