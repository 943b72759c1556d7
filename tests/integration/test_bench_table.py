#!/usr/bin/env python3
"""Black-box check of tools/bench_table.py on a made-up bench/run.sh output folder.

Usage: python3 test_bench_table.py [/path/to/ratplus]  (the binary is not used)

The folder holds ratplus and PyTorch training results, kernel benchmarks in Google Benchmark's JSON and
PyTorch kernel lines, with round numbers whose ratios are known. Checks:
- every ratio in the tables: tokens/s ours over the baseline's (eager and compiled), times the baseline's
  over ours (attention forward, forward + backward as the baseline's two times summed, the scan), and our
  dense forward + backward over each sparse pattern's; MFU, compile time, the kernel name;
- files that are absent leave "—" and the rest of the tables;
- bad input exits 2 naming the file (and the line of a JSON Lines file): a file that is not JSON, a result
  without its number, an unknown mode, a folder that does not exist, no argument.
Prints one line per check and `N passed, M failed`.
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "tools", "bench_table.py")
SHAPE = "B=2,H=16,T=4096,dh=128"


def kernel(name, ms):
    return {"name": name + "/manual_time", "run_type": "iteration", "median_ms": ms}


def write_folder(d):
    def put(name, data):
        with open(os.path.join(d, name), "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))

    put("ratplus-1.5b-dense.json", {"tokens_per_second": 40000.0, "mfu": 0.40})
    put("torch-1.5b-dense.json", {"tokens_per_s": 20000.0, "mfu": 0.20, "first_step_s": 3.0})
    put("torch-1.5b-dense-compiled.json", {"tokens_per_s": 50000.0, "mfu": 0.50, "first_step_s": 240.0})
    put("ratplus-1.5b-joint.json", {"tokens_per_second": 30000.0, "mfu": 0.45})  # no PyTorch for joint
    put("kernels.json", {"benchmarks": [
        kernel("attention_forward/bf16/dense/" + SHAPE, 0.5),
        kernel("attention_forward_backward/bf16/dense/" + SHAPE, 2.0),
        kernel("attention_forward/bf16/dilated:D=64/" + SHAPE, 0.1),
        kernel("attention_forward_backward/bf16/dilated:D=64/" + SHAPE, 0.25),
        kernel("attention_forward_mma/bf16/dense/" + SHAPE, 0.777),
        kernel("recurrence_forward/bf16/B=2,T=4096,d=2048", 0.1),
        kernel("recurrence_backward/bf16/B=2,T=4096,d=2048", 0.2),
        kernel("cross_entropy/bf16/rows=8192,V=32000", 1.555),
        {"name": "attention_forward/bf16/dense/" + SHAPE + "/manual_time_mean", "run_type": "aggregate"},
    ]})
    lines = [{"mode": "bench-attention", "pattern": "dense", "batch": 2, "heads": 16, "seq_len": 4096,
              "head_dim": 128, "kernel": ["sdpa (causal)"], "forward_ms": 0.25, "backward_ms": 0.75},
             {"mode": "bench-attention", "pattern": "dilated:D=64", "batch": 2, "heads": 16, "seq_len": 4096,
              "head_dim": 128, "kernel": ["flex"], "forward_ms": 0.3, "backward_ms": 0.7},
             {"mode": "bench-scan", "batch": 2, "seq_len": 4096, "d_model": 2048, "ms": 0.7}]
    put("torch-kernels.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")


def run(args):
    p = subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def row(text, *starts):
    """The table row whose first cells are `starts`, split into cells."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:len(starts)] == list(starts):
            return cells
    return None


def main():
    res = harness.Results()
    with tempfile.TemporaryDirectory() as d:
        write_folder(d)
        rc, out, err = run([d])
        res.check("a whole folder gives tables (exit 0)", rc == 0, err)
        dense = row(out, "dense")
        res.check("dense training: 40k over 20k eager = 2.00×, over 50k compiled = 0.80×; compile 240 s",
                  dense == ["dense", "40.0k tok/s, 40.0% MFU", "20.0k tok/s, 20.0% MFU", "50.0k tok/s, 50.0% MFU",
                            "240 s", "2.00×", "0.80×"], str(dense))
        joint = row(out, "joint")
        res.check("joint training without PyTorch files: ours, then dashes",
                  joint == ["joint", "30.0k tok/s, 45.0% MFU", "—", "—", "—", "—", "—"], str(joint))
        att = row(out, "dense", "B 2, H 16, T 4096, dh 128")
        res.check("dense attention: forward 0.25 / 0.5 = 0.50×, forward + backward (0.25 + 0.75) / 2 = 0.50×",
                  att == ["dense", "B 2, H 16, T 4096, dh 128", "0.500 ms", "0.250 ms (sdpa (causal))", "0.50×",
                          "2.000 ms", "1.000 ms", "0.50×"], str(att))
        sparse = row(out, "dilated:D=64", "B 2, H 16, T 4096, dh 128")
        res.check("dilated(64) attention: forward 3.00×, forward + backward 4.00×",
                  sparse is not None and sparse[4] == "3.00×" and sparse[7] == "4.00×", str(sparse))
        over = row(out, "B 2, H 16, T 4096, dh 128", "dilated:D=64")
        res.check("our dense forward + backward over dilated(64)'s: 2.0 / 0.25 = 8.00×",
                  over == ["B 2, H 16, T 4096, dh 128", "dilated:D=64", "0.250 ms", "8.00×"], str(over))
        scan = row(out, "forward", "B 2, T 4096, d 2048")
        res.check("scan forward 0.7 / 0.1 = 7.00×", scan is not None and scan[-1] == "7.00×", str(scan))
        res.check("the scan forward comes before the backward", out.find("| forward |") < out.find("| backward |"))
        back = row(out, "backward", "B 2, T 4096, d 2048")
        res.check("scan backward without a baseline: a dash", back is not None and back[-1] == "—", str(back))
        res.check("the mma.sync and cross-entropy benchmarks are left out of the tables",
                  "0.777" not in out and "1.555" not in out, out)

    with tempfile.TemporaryDirectory() as d:
        rc, out, err = run([d])
        res.check("an empty folder gives tables of dashes (exit 0)", rc == 0 and row(out, "dense")[1] == "—", err)

    bad_cases = [
        ("torch-1.5b-dense.json", "{not json", "torch-1.5b-dense.json"),
        ("ratplus-1.5b-dense.json", json.dumps({"mfu": 0.4}), "tokens_per_second"),
        ("kernels.json", json.dumps({"benchmarks": [{"name": "attention_forward/bf16/dense/" + SHAPE}]}), "median_ms"),
        ("kernels.json", json.dumps([1, 2]), "kernels.json"),
        ("torch-kernels.jsonl", json.dumps({"mode": "bench-scan", "batch": 2, "seq_len": 1, "d_model": 1, "ms": 1}) +
         "\n{oops\n", "torch-kernels.jsonl:2"),
        ("torch-kernels.jsonl", json.dumps({"mode": "bench-nothing"}) + "\n", "unknown mode"),
        ("torch-kernels.jsonl", json.dumps({"mode": "bench-attention", "pattern": "dense", "batch": 1, "heads": 1,
                                            "seq_len": 1, "head_dim": 1}) + "\n", "forward_ms"),
    ]
    for name, text, expect in bad_cases:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
            rc, out, err = run([d])
            res.check("bad %s exits 2 naming %s" % (name, expect), rc == 2 and expect in err and out == "",
                      "exit %d: %s" % (rc, err.strip()))
    rc, _, err = run(["/nonexistent/folder"])
    res.check("a folder that does not exist exits 2 naming it", rc == 2 and "/nonexistent/folder" in err, err)
    rc, _, err = run([])
    res.check("no argument exits 2 with the usage", rc == 2 and "OUT_DIR" in err, err)

    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
