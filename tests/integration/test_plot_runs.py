#!/usr/bin/env python3
"""Black-box check of tools/plot_runs.py on the metrics of real (tiny) training runs.

Usage: python3 test_plot_runs.py /path/to/ratplus

Two short runs of configs/tiny.yaml (joint: dense and sparse passes with validations; dense) write their
train.metrics_jsonl. Checks:
- `curves` of both runs, by step and by tokens, and `bars` of a table of losses write PNG files: the PNG
  signature, an IHDR chunk with the figure's size in pixels, the IEND chunk closing the file, some kilobytes;
- bad input (missing or unreadable files, lines that are not JSON or lack keys, unknown passes, non-finite
  losses, --label counts that do not match, an --out not ending in .png, tables without rows or with bad
  rows) exits 2 naming the file and line or the option, and leaves no figure and no temporary file; an
  --out in a folder that does not exist exits 1.
Prints one line per check and `N passed, M failed`; exits 77 when matplotlib is not installed.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

REPO = os.path.join(HERE, "..", "..")
SCRIPT = os.path.join(REPO, "tools", "plot_runs.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) of a whole PNG file, or None when it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    if data[-12:-8] != b"\x00\x00\x00\x00" or data[-8:-4] != b"IEND":
        return None
    return struct.unpack(">II", data[16:24])


def plot(*args):
    return subprocess.run([PYTHON, SCRIPT] + list(args), capture_output=True, text=True, timeout=300)


def train(binary, work, name, objective, steps):
    metrics = os.path.join(work, name + ".jsonl")
    subprocess.run([binary, "train", "--config", os.path.join(REPO, "configs", "tiny.yaml"),
                    "data.train=" + os.path.join(work, "train.bin"), "data.val=" + os.path.join(work, "val.bin"),
                    "train.objective=" + objective, "train.steps=%d" % steps, "train.val_every=10",
                    "train.val_batches=2", "train.log_every=10", "train.metrics_jsonl=" + metrics,
                    "checkpoint.dir=" + os.path.join(work, name), "checkpoint.every=0", "runtime.device=cpu"],
                   check=True, capture_output=True, timeout=600)
    return metrics


def main():
    if len(sys.argv) != 2:
        print("usage: python3 %s /path/to/ratplus" % sys.argv[0], file=sys.stderr)
        return 2
    if subprocess.run([PYTHON, "-c", "import matplotlib"], capture_output=True).returncode != 0:
        print("SKIP: matplotlib is not installed (Debian: python3-matplotlib)")
        return 77
    binary = os.path.abspath(sys.argv[1])
    results = harness.Results()
    with tempfile.TemporaryDirectory() as work:
        for name, seed in (("train.bin", 1), ("val.bin", 2)):
            subprocess.run([binary, "data", "synth", "--out", os.path.join(work, name), "--tokens", "60000",
                            "--vocab", "256", "--seed", str(seed)], check=True, capture_output=True)
        joint = train(binary, work, "joint", "joint", 30)
        dense = train(binary, work, "dense", "dense", 20)
        records = [json.loads(line) for line in open(joint)]
        results.check("the joint run logged dense and sparse updates and validations",
                      {r.get("pass") for r in records} >= {"dense", "sparse"}
                      and sum("validation" in r for r in records) == 3, str(records[:3]))

        def check_png(name, path, size, result):
            got = png_size(path) if os.path.exists(path) else None
            results.check(name, result.returncode == 0 and got == size and os.path.getsize(path) > 10000,
                          "exit %d, size %s: %s" % (result.returncode, got, result.stderr[-300:]))

        curves = os.path.join(work, "curves.png")
        r = plot("curves", "--out", curves, joint, dense, "--label", "joint", "--label", "dense", "--title", "tiny")
        check_png("curves of two runs are a 1080 x 660 PNG", curves, (1080, 660), r)
        by_tokens = os.path.join(work, "tokens.png")
        r = plot("curves", "--out", by_tokens, joint, "--x", "tokens")
        check_png("curves by tokens are a PNG", by_tokens, (1080, 660), r)
        results.check("the figures of different runs differ",
                      open(curves, "rb").read() != open(by_tokens, "rb").read())
        table = os.path.join(work, "table.json")
        with open(table, "w") as f:
            json.dump({"rows": [{"model": m, "pattern": p, "loss": 3 + i * 0.1 + j * 0.05}
                                for i, m in enumerate(("RAT+", "attention"))
                                for j, p in enumerate(("dense", "dilated:D=16", "dilated:D=64"))]}, f)
        bars = os.path.join(work, "bars.png")
        r = plot("bars", "--out", bars, table)
        check_png("bars are a 720 x 600 PNG", bars, (720, 600), r)

        # --- bad input ------------------------------------------------------------------
        out = os.path.join(work, "bad", "out.png")
        os.makedirs(os.path.dirname(out))

        def refused(name, needle, *args, code=2):
            r = plot(*args)
            left = os.listdir(os.path.dirname(out))
            results.check(name, r.returncode == code and needle in r.stderr and not left,
                          "exit %d, left %s, stderr: %s" % (r.returncode, left, r.stderr[-300:]))

        def lines(name, *texts):
            path = os.path.join(work, name)
            with open(path, "w") as f:
                f.write("".join(t + "\n" for t in texts))
            return path

        good = json.dumps({"step": 0, "pass": "dense", "loss": 5.0, "tokens": 1024, "time": 1.0})
        refused("a missing run", "missing.jsonl: cannot be read", "curves", "--out", out,
                os.path.join(work, "missing.jsonl"))
        refused("a line that is not JSON", "notjson.jsonl:2: not valid JSON", "curves", "--out", out,
                lines("notjson.jsonl", good, '{"step": 1,'))
        refused("an update without its loss", 'noloss.jsonl:1: an update record without "loss"', "curves",
                "--out", out, lines("noloss.jsonl", '{"step": 0, "pass": "dense", "tokens": 1}'))
        refused("an unknown pass", "pass.jsonl:1: \"pass\" is 'other'", "curves", "--out", out,
                lines("pass.jsonl", '{"step": 0, "pass": "other", "loss": 1, "tokens": 1}'))
        refused("a NaN loss", 'nan.jsonl:2: "loss" is not a finite number', "curves", "--out", out,
                lines("nan.jsonl", good, '{"step": 1, "pass": "dense", "loss": NaN, "tokens": 1}'))
        refused("a validation that is not an object", 'val.jsonl:1: "validation" is not an object',
                "curves", "--out", out, lines("val.jsonl", '{"step": 1, "tokens": 1, "validation": 3}'))
        refused("a record of neither kind", "neither.jsonl:1: neither an update", "curves", "--out", out,
                lines("neither.jsonl", '{"step": 1}'))
        refused("an empty run", "empty.jsonl: holds no records", "curves", "--out", out, lines("empty.jsonl"))
        refused("binary data", "train.bin: not UTF-8", "curves", "--out", out, os.path.join(work, "train.bin"))
        refused("more labels than runs", "--label given 2 times for 1 runs", "curves", "--out", out, joint,
                "--label", "a", "--label", "b")
        refused("an --out that is not .png", "must end in .png", "curves", "--out",
                os.path.join(os.path.dirname(out), "out.pdf"), joint)
        refused("a table without rows", 'norows.json: not an object with a non-empty "rows" list', "bars",
                "--out", out, lines("norows.json", '{"rows": []}'))
        refused("a row whose loss is text", 'text.json: rows[0]: "loss" is not a finite number', "bars",
                "--out", out, lines("text.json", '{"rows": [{"model": "a", "pattern": "dense", "loss": "x"}]}'))
        refused("a row without a model", 'nomodel.json: rows[0]: "model" is missing', "bars", "--out", out,
                lines("nomodel.json", '{"rows": [{"pattern": "dense", "loss": 1}]}'))
        refused("a row given twice", "appear twice", "bars", "--out", out,
                lines("twice.json", json.dumps({"rows": [{"model": "a", "pattern": "dense", "loss": 1}] * 2})))
        refused("an unknown command", "invalid choice", "lines", "--out", out, joint)
        r = plot("curves", "--out", os.path.join(work, "nowhere", "out.png"), joint)
        results.check("an --out in a missing folder exits 1", r.returncode == 1 and "nowhere" in r.stderr,
                      "exit %d: %s" % (r.returncode, r.stderr[-300:]))
    print("%d passed, %d failed" % (results.passed, results.failed))
    return 0 if results.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
