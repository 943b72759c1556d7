#!/usr/bin/env python3
"""The tables of one bench/run.sh call, in Markdown: ratplus beside the PyTorch baseline measured in the
same call, with the ratios.

Usage: python3 tools/bench_table.py OUT_DIR

Reads from OUT_DIR what bench/run.sh writes there:
  ratplus-1.5b-{dense,joint}.json            `ratplus bench train --json` (tokens_per_second, mfu)
  torch-1.5b-{dense,joint}.json              `torch_baseline.py bench-train`, eager
  torch-1.5b-{dense,joint}-compiled.json     the same with --compile (first_step_s holds the compilation)
  kernels.json                               ratplus_kernel_bench --benchmark_format=json (median_ms)
  torch-kernels.jsonl                        torch_baseline.py bench-attention / bench-scan lines
A file that is absent leaves its cells as "—"; one that is present but unreadable, not JSON, or without
the keys read exits 2 naming the file (and the line for JSON Lines). A ratio is the baseline's time over
ratplus's (above 1: ratplus is faster).
"""

import json
import os
import re
import sys

OBJECTIVES = ("dense", "joint")
KERNEL_NAME = re.compile(r"^(attention_forward|attention_forward_backward|recurrence_forward|recurrence_backward)"
                         r"/bf16/(?:([^/]+)/)?B=(\d+),(?:H=(\d+),)?T=(\d+),(?:dh=(\d+)|d=(\d+))(?:/manual_time)?$")


class InputError(Exception):
    pass


def read_json(path):
    """The JSON object in path, None when the file does not exist."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError("%s: not readable as JSON: %s" % (path, e))
    if not isinstance(data, dict):
        raise InputError("%s: not a JSON object" % path)
    return data


def number(data, key, where):
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise InputError("%s: no number %r" % (where, key))
    return float(value)


def read_kernels(path):
    """{(kind, pattern, batch, heads, seq_len, width): median ms} of the bf16 benchmarks in kernels.json."""
    data = read_json(path)
    if data is None:
        return {}
    runs = data.get("benchmarks")
    if not isinstance(runs, list):
        raise InputError("%s: no list 'benchmarks'" % path)
    out = {}
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("name"), str):
            raise InputError("%s: benchmark %d has no name" % (path, i))
        if run.get("run_type") == "aggregate":
            continue
        m = KERNEL_NAME.match(run["name"])
        if not m:
            continue
        kind, pattern, batch, heads, seq, dh, d = m.groups()
        key = (kind, pattern, int(batch), int(heads or 0), int(seq), int(dh or d))
        out[key] = number(run, "median_ms", "%s: benchmark %s" % (path, run["name"]))
    return out


def read_torch_kernels(path):
    """The attention lines {(pattern, batch, heads, seq_len, head_dim): line} and the scan lines
    {(batch, seq_len, d_model): line} of torch-kernels.jsonl."""
    attention, scan = {}, {}
    if not os.path.exists(path):
        return attention, scan
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError("%s: not readable: %s" % (path, e))
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = "%s:%d" % (path, n)
        try:
            line = json.loads(text)
        except ValueError as e:
            raise InputError("%s: not JSON: %s" % (where, e))
        if not isinstance(line, dict):
            raise InputError("%s: not a JSON object" % where)
        if line.get("mode") == "bench-attention":
            sizes = (int(number(line, k, where)) for k in ("batch", "heads", "seq_len", "head_dim"))
            key = (line.get("pattern"), *sizes)
            number(line, "forward_ms", where)
            attention[key] = line
        elif line.get("mode") == "bench-scan":
            number(line, "ms", where)
            scan[tuple(int(number(line, k, where)) for k in ("batch", "seq_len", "d_model"))] = line
        else:
            raise InputError("%s: unknown mode %r" % (where, line.get("mode")))
    return attention, scan


def fmt_ms(ms):
    return "—" if ms is None else "%.3f ms" % ms


def fmt_ratio(num, den):
    """num / den as "1.23×": a baseline's time over ours, or our rate over a baseline's."""
    return "—" if num is None or not den else "%.2f×" % (num / den)


def fmt_rate(tokens_per_s, mfu):
    if tokens_per_s is None:
        return "—"
    text = "%.1fk tok/s" % (tokens_per_s / 1e3)
    return text + (", %.1f%% MFU" % (100 * mfu) if mfu is not None else "")


def training_table(out_dir):
    rows = ["| objective | ratplus | PyTorch eager | PyTorch torch.compile | compile (first step) | vs eager "
            "| vs compiled |", "|---|---|---|---|---|---|---|"]
    for objective in OBJECTIVES:
        cells = {}
        for name, file, rate_key in (("ours", "ratplus-1.5b-%s.json", "tokens_per_second"),
                                     ("eager", "torch-1.5b-%s.json", "tokens_per_s"),
                                     ("compiled", "torch-1.5b-%s-compiled.json", "tokens_per_s")):
            path = os.path.join(out_dir, file % objective)
            data = read_json(path)
            if data is None:
                cells[name] = (None, None, None)
                continue
            mfu = number(data, "mfu", path) if "mfu" in data else None
            first = number(data, "first_step_s", path) if "first_step_s" in data else None
            cells[name] = (number(data, rate_key, path), mfu, first)
        ours, eager, compiled = cells["ours"][0], cells["eager"][0], cells["compiled"][0]
        compile_s = cells["compiled"][2]
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            objective, fmt_rate(*cells["ours"][:2]), fmt_rate(*cells["eager"][:2]), fmt_rate(*cells["compiled"][:2]),
            "—" if compile_s is None else "%.0f s" % compile_s, fmt_ratio(ours, eager), fmt_ratio(ours, compiled)))
    return rows


def attention_table(kernels, torch_attention):
    rows = ["| pattern | shape | forward | PyTorch | ratio | forward + backward | PyTorch | ratio |",
            "|---|---|---|---|---|---|---|---|"]
    shapes = sorted({k[1:] for k in kernels if k[0] == "attention_forward"},
                    key=lambda s: (s[3], s[1], s[2], s[4], s[0] != "dense", s[0]))
    for pattern, batch, heads, seq, dh in shapes:
        fwd = kernels.get(("attention_forward", pattern, batch, heads, seq, dh))
        both = kernels.get(("attention_forward_backward", pattern, batch, heads, seq, dh))
        line = torch_attention.get((pattern, batch, heads, seq, dh))
        base_fwd = line["forward_ms"] if line else None
        base_both = line["forward_ms"] + line["backward_ms"] if line and "backward_ms" in line else None
        kernel = " (%s)" % ", ".join(line["kernel"]) if line and isinstance(line.get("kernel"), list) else ""
        rows.append("| %s | B %d, H %d, T %d, dh %d | %s | %s%s | %s | %s | %s | %s |" % (
            pattern, batch, heads, seq, dh, fmt_ms(fwd), fmt_ms(base_fwd), kernel, fmt_ratio(base_fwd, fwd),
            fmt_ms(both), fmt_ms(base_both), fmt_ratio(base_both, both)))
    return rows


def sparsity_table(kernels):
    """ratplus's dense forward + backward over each sparse pattern's, per shape."""
    rows = ["| shape | pattern | forward + backward | dense over it |", "|---|---|---|---|"]
    for (kind, pattern, batch, heads, seq, dh), ms in sorted(kernels.items(), key=lambda kv: (kv[0][4], str(kv[0][1]))):
        if kind != "attention_forward_backward" or pattern == "dense":
            continue
        dense = kernels.get((kind, "dense", batch, heads, seq, dh))
        rows.append("| B %d, H %d, T %d, dh %d | %s | %s | %s |" % (
            batch, heads, seq, dh, pattern, fmt_ms(ms), fmt_ratio(dense, ms)))
    return rows


def scan_table(kernels, torch_scan):
    rows = ["| scan | shape | ratplus | PyTorch | ratio |", "|---|---|---|---|---|"]
    scans = [(key, ms) for key, ms in kernels.items() if key[0].startswith("recurrence")]
    scans.sort(key=lambda kv: (kv[0][4], kv[0][2], kv[0][5], kv[0][0] != "recurrence_forward"))
    for (kind, _, batch, _, seq, d), ms in scans:
        line = torch_scan.get((batch, seq, d)) if kind == "recurrence_forward" else None
        base = line["ms"] if line else None
        rows.append("| %s | B %d, T %d, d %d | %s | %s | %s |" % (
            kind.split("_")[1], batch, seq, d, fmt_ms(ms), fmt_ms(base), fmt_ratio(base, ms)))
    return rows


def tables(out_dir):
    kernels = read_kernels(os.path.join(out_dir, "kernels.json"))
    torch_attention, torch_scan = read_torch_kernels(os.path.join(out_dir, "torch-kernels.jsonl"))
    parts = [("Training step, 1.5B (T 4096, micro-batch 2, bf16)", training_table(out_dir)),
             ("Attention (bf16)", attention_table(kernels, torch_attention)),
             ("Sparse attention over dense (ratplus)", sparsity_table(kernels)),
             ("Recurrence scan (bf16)", scan_table(kernels, torch_scan))]
    return "\n\n".join("### %s\n\n%s" % (title, "\n".join(rows)) for title, rows in parts) + "\n"


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    if not os.path.isdir(argv[1]):
        print("bench_table: %s: not a folder" % argv[1], file=sys.stderr)
        return 2
    try:
        sys.stdout.write(tables(argv[1]))
    except InputError as e:
        print("bench_table: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
