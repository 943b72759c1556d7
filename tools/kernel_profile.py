#!/usr/bin/env python3
"""Where a GPU program's time goes, per kernel, from Nsight Compute's CSV output, as a Markdown table.

Usage: python3 tools/kernel_profile.py CSV [--steps N]

CSV is what `ncu --csv --print-units base --metrics gpu__time_duration.sum,dram__bytes_read.sum,
dram__bytes_write.sum ...` prints: one row per kernel launch and metric (a CUDA graph's kernels are launches
too with `--graph-profiling node`). Launches are grouped by kernel (the full name, so that two instances of a
template stay apart); each group's duration and DRAM bytes are summed and divided by N (say, the decoding
steps profiled, to give a step's share), and the groups are listed by time, with the bytes' rate and the
launches per step, then the total. A missing or unreadable file, a CSV without the metrics, or one without a
launch exits 2 naming the file.
"""

import argparse
import csv
import re
import sys

METRICS = {"gpu__time_duration.sum": "ns", "dram__bytes_read.sum": "read", "dram__bytes_write.sum": "written"}
NOISE = re.compile(r"ratplus::|cuda::|<unnamed>::|\(anonymous namespace\)::|_NV_ANON_NAMESPACE::")


class InputError(Exception):
    pass


def read_launches(path):
    """{launch id: {"name", "ns", "read", "written"}} from the CSV at path."""
    try:
        with open(path, newline="") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError("%s: %s" % (path, e.strerror))
    # ncu prints its own messages (==PROF== …) before and between the CSV rows.
    rows = [r for r in csv.reader(l for l in lines if not l.startswith("==")) if r]
    header = next((r for r in rows if r[:1] == ["ID"]), None)
    if header is None or not {"Kernel Name", "Metric Name", "Metric Value"} <= set(header):
        raise InputError("%s: no Nsight Compute CSV header (ID, Kernel Name, Metric Name, Metric Value)" % path)
    launches = {}
    for r in rows:
        if len(r) != len(header) or r[0] == "ID":
            continue
        row = dict(zip(header, r))
        if row["Metric Name"] not in METRICS:
            continue
        try:
            value = float(row["Metric Value"].replace(",", ""))
        except ValueError:
            raise InputError("%s: launch %s: %s is not a number: %r" % (path, row["ID"], row["Metric Name"],
                                                                        row["Metric Value"]))
        launch = launches.setdefault(row["ID"], {"name": row["Kernel Name"], "ns": 0.0, "read": 0.0, "written": 0.0})
        launch[METRICS[row["Metric Name"]]] = value
    if not launches:
        raise InputError("%s: no launch with %s" % (path, ", ".join(METRICS)))
    return launches


def short(name, width=110):
    """The kernel's name without the namespaces' noise, cut to width characters."""
    name = NOISE.sub("", name)
    return name if len(name) <= width else name[: width - 1] + "…"


def table(launches, steps):
    groups = {}
    for launch in launches.values():
        g = groups.setdefault(launch["name"], {"launches": 0, "ns": 0.0, "read": 0.0, "written": 0.0})
        g["launches"] += 1
        for key in ("ns", "read", "written"):
            g[key] += launch[key]
    lines = ["| ms | launches | GB read | GB written | TB/s | kernel |", "|---|---|---|---|---|---|"]
    total = {"launches": 0, "ns": 0.0, "read": 0.0, "written": 0.0}

    def line(g, name):
        rate = (g["read"] + g["written"]) / g["ns"] * 1e-3 if g["ns"] > 0 else 0.0  # bytes per ns = GB/s
        return "| %.3f | %g | %.3f | %.3f | %.2f | %s |" % (g["ns"] / steps * 1e-6, g["launches"] / steps,
                                                           g["read"] / steps * 1e-9, g["written"] / steps * 1e-9,
                                                           rate, name)

    for name, g in sorted(groups.items(), key=lambda item: -item[1]["ns"]):
        lines.append(line(g, "`%s`" % short(name)))
        for key in total:
            total[key] += g[key]
    lines.append(line(total, "**all**"))
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--steps", type=int, default=1, help="divide the sums by this (at least 1)")
    args = parser.parse_args(argv)
    try:
        if args.steps < 1:
            raise InputError("--steps must be at least 1, got %d" % args.steps)
        print(table(read_launches(args.csv), args.steps))
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
