#!/usr/bin/env python3
"""Black-box check of tools/torch_baseline.py against `ratplus eval`.

Usage: python3 test_torch_baseline.py /path/to/ratplus

Writes tiny random checkpoints (with recurrence and tied embeddings; attention-only with an
untied head) and an llm.c shard in a temporary
folder, runs `torch_baseline.py loss --device cpu --dtype fp32` and `ratplus eval` on the same
windows and compares every pattern's loss (relative tolerance 1e-4) and label count. Also checks
the backward of the recurrence with torch.autograd.gradcheck and runs a tiny joint training
benchmark on the CPU. Prints one line per check and a final `N passed, M failed`; exits non-zero
when a check failed, and exits 0 with "skipped: torch not installed" when PyTorch is missing.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)

SYSTEM = "/usr/bin/python3"  # Debian's python3-numpy, python3-h5py and python3-torch live there
try:
    import h5py  # noqa: F401
    import numpy as np
    import torch
except ImportError:
    if os.path.exists(SYSTEM) and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM):
        os.execv(SYSTEM, [SYSTEM] + sys.argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("skipped: torch not installed")
        sys.exit(0)
    raise

import harness  # noqa: E402
import ratplus_reference as ref  # noqa: E402
import torch_baseline  # noqa: E402

REL_TOL = 1e-4
SEQ_LEN, BATCHES, EOS = 37, 3, 5
MODEL = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ffn": 64}
PATTERNS = ["dense", "dilated:D=4", "dilated:D=3,W=5,P=2", "local:W=6,P=1",
            "heads=2:dense+2:dilated:D=4,W=1,P=1", "layers=dense|heads=1:local:W=3+3:dilated:D=5,W=2"]
SCRIPT = os.path.join(TOOLS, "torch_baseline.py")


def close(a, b, rel=REL_TOL):
    return harness.close(a, b, rel)


def run_json(res, name, command, stdout_json=True):
    """Runs command; returns its stdout (parsed as JSON when stdout_json), or None after a failed
    check."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        res.check(name + " finishes", False, "timed out")
        return None
    if not res.check(name + " exits 0", proc.returncode == 0,
                     "exit %d: %s" % (proc.returncode, proc.stderr.strip()[-2000:])):
        return None
    if not stdout_json:
        return proc.stdout
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        res.check(name + " prints JSON", False, "%s: %r" % (exc, proc.stdout[-500:]))
        return None


def eval_args(checkpoint, shard):
    args = ["--checkpoint", checkpoint, "--data", shard, "--seq-len", str(SEQ_LEN),
            "--batches", str(BATCHES), "--eos-id", str(EOS)]
    for p in PATTERNS:
        args += ["--pattern", p]
    return args


def loss_cases(res, binary, tmp):
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, MODEL["vocab_size"], size=400)
    tokens[rng.random(len(tokens)) < 0.06] = EOS
    tokens[[3, 4, 40]] = EOS
    shard = os.path.join(tmp, "shard.bin")
    ref.write_llmc_shard(shard, tokens)
    for recurrence in (True, False):
        name = "rat" if recurrence else "attention-only"
        checkpoint = os.path.join(tmp, "%s.h5" % name)
        ref.write_checkpoint(checkpoint, dict(MODEL, recurrence=recurrence, tie_embeddings=recurrence),
                             std=0.2, seed=3 + recurrence)
        out = os.path.join(tmp, "%s.json" % name)
        if run_json(res, name + ": ratplus eval", [binary, "eval", "--json", out]
                    + eval_args(checkpoint, shard), stdout_json=False) is None:
            continue
        with open(out) as f:
            want = json.load(f)
        got = run_json(res, name + ": torch_baseline.py loss",
                       [sys.executable, SCRIPT, "loss", "--device", "cpu", "--dtype", "fp32"]
                       + eval_args(checkpoint, shard))
        if got is None:
            continue
        want = {r["pattern"]: r for r in want["results"]}
        rows = got.get("results", [])
        if not res.check(name + ": one result per pattern, in order",
                         [r.get("pattern") for r in rows] == PATTERNS, repr(rows)[:300]):
            continue
        res.check(name + ": losses of distinct patterns differ (test is discriminative)",
                  len({round(r["loss"], 5) for r in rows}) == len(PATTERNS),
                  repr([r["loss"] for r in rows]))
        for row in rows:
            w = want[row["pattern"]]
            res.check("%s: %s loss %.8f vs ratplus %.8f" % (name, row["pattern"], row["loss"], w["loss"]),
                      close(row["loss"], w["loss"]))
            res.check("%s: %s tokens %d vs ratplus %d" % (name, row["pattern"], row["tokens"], w["tokens"]),
                      row["tokens"] == w["tokens"])
            res.check("%s: %s ppl = exp(loss)" % (name, row["pattern"]),
                      close(row["ppl"], math.exp(row["loss"]), 1e-9))


def recurrence_gradient(res):
    torch.manual_seed(0)
    k, v, g = (torch.randn(2, 19, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    try:
        ok = torch.autograd.gradcheck(torch_baseline.GatedRecurrence.apply, (k, v, g))
        detail = ""
    except RuntimeError as exc:
        ok, detail = False, str(exc)[:1000]
    res.check("recurrence backward matches finite differences (gradcheck, fp64)", ok, detail)


def bench_train_smoke(res):
    out = run_json(res, "bench-train on the CPU (tiny, joint)",
                   [sys.executable, SCRIPT, "bench-train", "--device", "cpu", "--config-size", "custom",
                    "--d-model", "32", "--n-layers", "2", "--n-heads", "4", "--vocab", "97",
                    "--seq-len", "64", "--micro-batch", "2", "--objective", "joint",
                    "--arl-dilation", "8", "--steps", "2", "--warmup", "1"])
    if out is None:
        return
    res.check("bench-train: both losses reported and finite, near ln V",
              all(abs(out.get(k, math.inf) - math.log(97)) < 1.0 for k in ("loss_dense", "loss_sparse")),
              repr(out))
    res.check("bench-train: tokens/s, ms per step and MFU are positive",
              all(out.get(k, 0) > 0 for k in ("tokens_per_s", "ms_per_step", "mfu")), repr(out))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    res = harness.Results()
    recurrence_gradient(res)
    if res.check("binary %s is executable" % binary, os.access(binary, os.X_OK)):
        with tempfile.TemporaryDirectory() as tmp:
            loss_cases(res, binary, tmp)
    bench_train_smoke(res)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
