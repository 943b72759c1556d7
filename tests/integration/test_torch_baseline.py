#!/usr/bin/env python3
"""Black-box check of tools/torch_baseline.py against `ratplus eval`.

Usage: python3 test_torch_baseline.py /path/to/ratplus

Writes tiny random checkpoints (with recurrence and tied embeddings; attention-only with an
untied head) and an llm.c shard in a temporary
folder, runs `torch_baseline.py loss --device cpu --dtype fp32` and `ratplus eval` on the same
windows and compares every pattern's loss (relative tolerance 1e-4) and label count. Also checks
the backward of the recurrence with torch.autograd.gradcheck and runs a tiny joint training
benchmark on the CPU. Decoding: the compact cache's slots and mask give every query exactly its
SPEC §3 key set (stepped position by position, after prompts of every length), `bench-decode
--check` (CPU, fp32) matches the full forward for RAT+ and (in-process) the attention-only model,
and a timed `bench-decode` run prints its JSON; bad input exits 2. Prints one line per check and
a final `N passed, M failed`; exits non-zero when a check failed, and exits 0 with
"skipped: torch not installed" when PyTorch is missing.
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


DECODE_MODEL = ["--config-size", "custom", "--d-model", "64", "--n-layers", "2", "--n-heads", "2",
                "--vocab", "97", "--d-ffn", "128"]
DECODE_PATTERNS = ["dense", "dilated:D=4,W=3,P=1", "local:W=5,P=2"]
LAYOUT_PATTERNS = DECODE_PATTERNS + ["dilated:D=3", "dilated:D=5,W=0,P=7", "dilated:D=7,W=2,P=9",
                                     "dilated:D=40,W=1", "local:W=0,P=0", "local:W=50"]


def decode_command(pattern, *extra, context=40, gen=12, batch=3):
    return [sys.executable, SCRIPT, "bench-decode", "--device", "cpu", "--context", str(context),
            "--gen", str(gen), "--batch", str(batch), "--pattern", pattern] + DECODE_MODEL + list(extra)


def visible_keys(layout, positions, t):
    """The positions of the slots that query t attends to, as a set."""
    t = torch.tensor([t])
    return set(positions[layout.visible(positions, t)].tolist())


def cache_layout_cases(res):
    """Prompt of n positions, then steps to T − 1: each query sees exactly its key set."""
    T = 29
    for text in LAYOUT_PATTERNS:
        pattern = ref.parse_pattern(text, 1, 1)[0][0]
        layout = torch_baseline.cache_layout(pattern, T)
        mask = ref.pattern_mask(pattern, T)
        bad = []
        for n in range(1, T):
            positions = torch.full((layout.size,), -1, dtype=torch.int32)
            kept = layout.prompt_positions(n, "cpu")
            positions[layout.slot(kept)] = kept.to(torch.int32)
            for t in range(n, T):
                slot = layout.slot(torch.tensor([t]))
                if not 0 <= int(slot) < layout.size:
                    bad.append((n, t, "slot %d of %d" % (int(slot), layout.size)))
                    break
                positions[slot] = t
                if visible_keys(layout, positions, t) != set(mask[t].nonzero()[0].tolist()):
                    bad.append((n, t))
        res.check("decode cache %s (T %d, %d slots): every query sees its key set" % (text, T, layout.size),
                  not bad, repr(bad[:5]))


def decode_check_cases(res):
    for pattern in DECODE_PATTERNS:
        out = run_json(res, "bench-decode --check %s" % pattern, decode_command(pattern, "--check"))
        if out is not None:
            res.check("bench-decode --check %s: logits within 1e-4 of the full forward (%.2g)"
                      % (pattern, out.get("max_abs_logit_diff", math.inf)), out.get("check") == "passed",
                      repr(out))
    cfg = ref.normalise_config(dict(MODEL, recurrence=False, tie_embeddings=False))
    T, G, B = 33, 9, 2
    model = torch_baseline.random_model(cfg, "cpu", 5)
    prompt, tokens = torch.randint(0, cfg["vocab_size"], (B, T)).split([T - G, G], 1)
    full = {}
    for text in DECODE_PATTERNS:
        layers = ref.parse_pattern(text, cfg["n_layers"], cfg["n_heads"])
        decoder = torch_baseline.Decoder(model, layers[0][0], B, T)
        with torch.no_grad():
            diff = torch_baseline.decode_logit_diff(decoder, decoder, prompt, tokens)
            whole = torch.cat((prompt, tokens), dim=1)
            full[text] = model(whole, torch_baseline.attention_plan(layers, T, "cpu"))[:, T - G:]
        res.check("attention-only decoding %s: logits within 1e-4 of the full forward (%.2g)" % (text, diff),
                  diff <= torch_baseline.CHECK_TOLERANCE)
    gaps = [float((full[a] - full[b]).abs().max()) for a in full for b in full if a < b]
    res.check("attention-only: the patterns' logits differ by over 100x the tolerance (test is discriminative)",
              min(gaps) > 100 * torch_baseline.CHECK_TOLERANCE, repr(gaps))


def decode_bench_smoke(res):
    out = run_json(res, "bench-decode on the CPU (tiny, fake prefill)",
                   decode_command("dilated:D=4,W=3,P=1", "--warmup", "2"))
    if out is None:
        return
    keys = {"impl", "variant", "config", "context", "gen", "batch", "pattern", "tokens_per_s", "ms_per_step",
            "cache_bytes_per_sequence", "weight_bytes", "peak_memory_bytes", "compile_s", "torch", "device"}
    res.check("bench-decode: JSON has every key", keys <= set(out), repr(sorted(keys - set(out))))
    res.check("bench-decode: eager torch run, no compile time",
              (out.get("impl"), out.get("variant"), out.get("compile_s", 0)) == ("torch", "eager", None), repr(out))
    res.check("bench-decode: tokens/s and ms per step are positive and agree",
              out.get("tokens_per_s", 0) > 0 and close(out["tokens_per_s"] * out.get("ms_per_step", 0), 3 * 1e3),
              repr(out))
    L, d, slots = 2, 64, 1 + 10 + 4  # P + (⌊40/4⌋ − ⌈2/4⌉ + 1) + W + 1
    want = L * 2 * slots * d * 4 + slots * 4 + L * 2 * d * 4
    res.check("bench-decode: cache bytes per sequence %s = %d (keys, values, positions, state)"
              % (out.get("cache_bytes_per_sequence"), want), out.get("cache_bytes_per_sequence") == want)


def decode_bad_input(res):
    cases = {"context not above gen": decode_command("dense", context=12, gen=12),
             "batch 0": decode_command("dense", batch=0),
             "unknown pattern": decode_command("strided:D=4"),
             "per-layer pattern": decode_command("layers=dense|local:W=3"),
             "--check in bf16": decode_command("dense", "--check", "--dtype", "bf16")}
    for name, command in cases.items():
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
        res.check("bench-decode refuses %s: exit 2 with a message" % name,
                  proc.returncode == 2 and proc.stderr.strip() and not proc.stdout,
                  "exit %d: %s" % (proc.returncode, proc.stderr.strip()[-300:]))


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
    cache_layout_cases(res)
    decode_check_cases(res)
    decode_bench_smoke(res)
    decode_bad_input(res)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
