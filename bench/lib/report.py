#!/usr/bin/env python3
"""Build bench/results/<date>.json and <date>.md from the records that
bench/run collected (JSON lines, see bench/lib.sh `rec`/`rec_side` and
bench/lib/parse_micro.py) and the machine description.

Records with "values" get median/min/max here (the median of an even count
is the upper middle value, as the C benchmarks do). Records with a "side"
(swarmc, swarm-mode, raw-api) are also gathered into a side-by-side table
with the swarmc / swarm-mode ratio of the medians (< 1: swarmc is lower).
Usage: report.py RECORDS MACHINE_JSON OUT_JSON OUT_MD
"""
import json
import sys


def stats(vals):
    v = sorted(vals)
    return {"median": v[len(v) // 2], "min": v[0], "max": v[-1], "runs": len(v)}


def fmt(x):
    if x is None:
        return "-"
    a = abs(x)
    if a >= 1000:
        return "%.0f" % x
    if a >= 100:
        return "%.1f" % x
    if a >= 1:
        return "%.2f" % x
    return "%.3g" % x


def load(path):
    figs, notes = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                notes.append({"group": "?", "text": line})
                continue
            if "text" in r and "median" not in r:
                notes.append(r)
                continue
            if "values" in r:
                if r["values"]:
                    r.update(stats(r["values"]))
                else:
                    r["median"] = r["min"] = r["max"] = None
                    r["runs"] = 0
            figs.append(r)
    return figs, notes


def compare(figs):
    rows, order = {}, []
    for r in figs:
        if "side" not in r:
            continue
        k = (r["group"], r["name"])
        if k not in rows:
            rows[k] = {"group": r["group"], "name": r["name"], "unit": r["unit"]}
            order.append(k)
        rows[k][r["side"]] = {x: r.get(x) for x in ("median", "min", "max", "runs", "values", "note")}
    out = []
    for k in order:
        row = rows[k]
        a, b = row.get("swarmc"), row.get("swarm-mode")
        if a and b and a["median"] and b["median"] and a["median"] > 0 and b["median"] > 0:
            row["ratio_swarmc_over_swarm_mode"] = round(a["median"] / b["median"], 3)
        out.append(row)
    return out


def cell(s):
    if not s or s.get("median") is None:
        return "n/a"
    if s.get("runs", 0) > 1 or s.get("min") != s.get("max"):
        return "%s (%s–%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))
    return fmt(s["median"])


def main():
    rec_path, mach_path, out_json, out_md = sys.argv[1:5]
    figs, notes = load(rec_path)
    with open(mach_path) as f:
        mach = json.load(f)
    cmp_rows = compare(figs)
    doc = {"machine": mach, "comparison": cmp_rows,
           "figures": [r for r in figs if "side" not in r], "notes": notes}
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    md = []
    md.append("# swarmc benchmark results, %s\n" % mach.get("date", "?"))
    md.append("Produced by `bench/run`. Each figure: median (min–max) over the runs shown; "
              "benchmarks assert nothing.\n")
    md.append("## Machine\n")
    md.append("| | |\n|---|---|")
    for k in ("host", "cpu_model", "nproc", "mem_total", "kernel", "load_at_start", "load_at_end",
              "git_commit", "build", "docker_version", "duration_s", "mode"):
        if k in mach:
            md.append("| %s | %s |" % (k, mach[k]))
    md.append("")
    if cmp_rows:
        md.append("## swarmc vs Docker swarm mode (same machine, same private dockerd, alternating runs)\n")
        md.append("| figure | unit | swarmc | swarm mode | raw Engine API | swarmc / swarm mode |")
        md.append("|---|---|---|---|---|---|")
        for r in cmp_rows:
            ratio = r.get("ratio_swarmc_over_swarm_mode")
            md.append("| %s | %s | %s | %s | %s | %s |" % (
                r["name"], r["unit"], cell(r.get("swarmc")), cell(r.get("swarm-mode")),
                cell(r.get("raw-api")), "%.2f" % ratio if ratio is not None else "-"))
        md.append("")
    groups = []
    for r in doc["figures"]:
        if r["group"] not in groups:
            groups.append(r["group"])
    for g in groups:
        md.append("## %s\n" % g)
        md.append("| figure | median | min | max | p99 | unit | runs | note |")
        md.append("|---|---|---|---|---|---|---|---|")
        for r in doc["figures"]:
            if r["group"] != g:
                continue
            md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["name"].replace("|", "/"), fmt(r.get("median")), fmt(r.get("min")),
                fmt(r.get("max")), fmt(r.get("p99")), r.get("unit", ""), r.get("runs", ""),
                r.get("note", "")))
        md.append("")
    if notes:
        md.append("## Notes (other lines the benchmarks printed)\n")
        for n in notes:
            md.append("- %s: %s" % (n.get("group", "?"), n["text"]))
        md.append("")
    with open(out_md, "w") as f:
        f.write("\n".join(md))


if __name__ == "__main__":
    main()
