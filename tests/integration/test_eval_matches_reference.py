#!/usr/bin/env python3
"""Black-box check of `ratplus eval` and `ratplus init` against tools/ratplus_reference.py.

Usage: python3 test_eval_matches_reference.py /path/to/ratplus

Writes tiny random checkpoints and llm.c shards in a temporary folder, runs the binary and
compares every pattern's loss with the NumPy reference (relative tolerance 2e-5). Prints one
line per check and a final `N passed, M failed`; exits non-zero when a check failed.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

try:
    import h5py
    import numpy as np
except ImportError:  # numpy / h5py come from Debian's python3-numpy / python3-h5py
    SYSTEM = "/usr/bin/python3"
    if os.path.exists(SYSTEM) and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM):
        os.execv(SYSTEM, [SYSTEM] + sys.argv)
    raise

import harness  # noqa: E402
import ratplus_reference as ref  # noqa: E402

REL_TOL = 2e-5
SEQ_LEN, BATCHES, EOS = 37, 3, 5
MODEL = {"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ffn": 64,
         "norm_eps": 1e-6, "rope_base": 10000.0}
PATTERNS = ["dense", "dilated:D=4", "dilated:D=3,W=5,P=2", "local:W=6,P=1",
            "layers=dense|dilated:D=5,W=2", "heads=2:dense+2:dilated:D=4,W=1,P=1"]
# Same loss as dense by SPEC §3 (W >= T-1 covers the whole causal set).
DENSE_EQUIVALENTS = ["dilated:D=1", "local:W=%d" % (SEQ_LEN - 1), "layers=dense*2", "heads=4:dense"]
MORE_PATTERNS = ["local:W=0", "dilated:D=2,P=4", "layers=heads=1:dense+3:local:W=3|dilated:D=6*1",
                 "layers=local:W=4*2"]
# Top-k block patterns (SPEC §6), alone and in hybrids; T = 37 is no multiple of any B here.
TOPK_PATTERNS = ["topk:B=4,K=2", "topk:B=5,K=1,score=moba", "topk:B=1,K=3", "topk:B=8,K=2,W=2,P=1,D=5",
                 "topk:B=3,K=0,W=1,score=moba", "layers=dense|topk:B=3,K=2,score=moba",
                 "heads=2:dense+2:topk:B=6,K=1,P=2", "layers=heads=1:topk:B=2,K=4+3:local:W=3|topk:B=7,K=2,D=4"]
# K at least the number of blocks attends to every earlier block: dense.
TOPK_DENSE_EQUIVALENTS = ["topk:B=4,K=%d" % SEQ_LEN, "topk:B=1,K=%d,score=moba" % SEQ_LEN]


def close(a, b, rel=REL_TOL):
    return harness.close(a, b, rel)


def run(binary, args, cwd):
    try:
        proc = subprocess.run([binary] + args, cwd=cwd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return proc.returncode, (proc.stderr or "").strip()[-2000:]


def make_tokens(rng, count, eos=EOS, vocab=97):
    tokens = rng.integers(0, vocab, size=count)
    tokens[rng.random(count) < 0.06] = eos
    tokens[[3, 4, 40, 75]] = eos  # eos inside the evaluated windows, twice in a row once
    return tokens


def check_json_shape(res, name, data, patterns):
    """The JSON must be exactly {"results": [{"pattern", "loss", "ppl", "tokens"}, ...]}."""
    if not res.check(name + ": top level is {results: [...]}",
                     isinstance(data, dict) and set(data) == {"results"}
                     and isinstance(data["results"], list), repr(data)[:300]):
        return None
    rows = data["results"]
    if not res.check(name + ": one result per pattern, in order",
                     len(rows) == len(patterns)
                     and all(isinstance(r, dict) and r.get("pattern") == p for r, p in zip(rows, patterns)),
                     repr([r.get("pattern") if isinstance(r, dict) else r for r in rows])):
        return None
    ok = all(set(r) == {"pattern", "loss", "ppl", "tokens"} and isinstance(r["tokens"], int)
             and not isinstance(r["tokens"], bool) and isinstance(r["loss"], (int, float))
             and isinstance(r["ppl"], (int, float)) for r in rows)
    res.check(name + ": result keys are exactly pattern, loss, ppl, tokens (tokens an integer)",
              ok, repr(rows[0]))
    res.check(name + ": ppl = exp(loss)",
              all(close(r["ppl"], math.exp(r["loss"]), 1e-6) for r in rows),
              repr([(r["loss"], r["ppl"]) for r in rows]))
    return {r["pattern"]: r for r in rows}


def eval_case(res, binary, tmp, name, checkpoint, data_files, patterns, eos_id=EOS, compare_to=None, extra=()):
    """Runs `ratplus eval` (with `extra` arguments) and compares with the reference; returns the binary's rows."""
    out = os.path.join(tmp, name.replace(" ", "_").replace("/", "_") + ".json")
    args = ["eval", "--checkpoint", checkpoint, "--data"] + data_files + [
        "--seq-len", str(SEQ_LEN), "--batches", str(BATCHES)] + list(extra)
    for p in patterns:
        args += ["--pattern", p]
    if eos_id is not None:
        args += ["--eos-id", str(eos_id)]
    if any("topk" in p for p in patterns):  # on the CPU here; tests/gpu/test_topk_gpu.cpp holds the GPU's to it
        args += ["--device", "cpu"]
    args += ["--json", out]
    rc, err = run(binary, args, tmp)
    if not res.check(name + ": ratplus eval exits 0", rc == 0, "exit %s: %s" % (rc, err)):
        return None
    try:
        with open(out) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        res.check(name + ": --json file holds JSON", False, str(exc))
        return None
    rows = check_json_shape(res, name, data, patterns)
    if rows is None:
        return None
    expected = ref.eval_patterns(checkpoint, compare_to or data_files, SEQ_LEN, BATCHES, patterns,
                                 -1 if eos_id is None else eos_id)
    for want in expected:
        got = rows[want["pattern"]]
        res.check("%s: %s loss %.8f vs reference %.8f" % (name, want["pattern"], got["loss"], want["loss"]),
                  close(got["loss"], want["loss"]))
        res.check("%s: %s tokens %d vs reference %d" % (name, want["pattern"], got["tokens"], want["tokens"]),
                  got["tokens"] == want["tokens"])
    return rows


def model_cases(res, binary, tmp, rng):
    tokens = make_tokens(rng, 500)
    shard = os.path.join(tmp, "shard.bin")
    ref.write_llmc_shard(shard, tokens)
    n_labels = int(np.sum(tokens[:SEQ_LEN * BATCHES] != EOS))
    res.check("test data: some labels are ignored", n_labels < SEQ_LEN * BATCHES)

    for recurrence in (True, False):
        for tied in (True, False):
            name = "%s/%s" % ("rat" if recurrence else "attention-only", "tied" if tied else "untied")
            ck = os.path.join(tmp, "ck_%d%d.h5" % (recurrence, tied))
            cfg = dict(MODEL, recurrence=recurrence, tie_embeddings=tied)
            ref.write_checkpoint(ck, cfg, std=0.2, seed=11 + 2 * recurrence + tied, norm_jitter=0.2)
            patterns = PATTERNS + DENSE_EQUIVALENTS + MORE_PATTERNS + TOPK_PATTERNS + TOPK_DENSE_EQUIVALENTS
            rows = eval_case(res, binary, tmp, name, ck, [shard], patterns)
            # The test must tell patterns apart: the reference losses differ.
            expected = {r["pattern"]: r["loss"] for r in
                        ref.eval_patterns(ck, [shard], SEQ_LEN, BATCHES, PATTERNS, EOS)}
            res.check(name + ": reference losses of distinct patterns differ (test is discriminative)",
                      len({round(v, 5) for v in expected.values()}) == len(PATTERNS), repr(expected))
            topk = {r["pattern"]: r["loss"] for r in
                    ref.eval_patterns(ck, [shard], SEQ_LEN, BATCHES, ["dense"] + TOPK_PATTERNS, EOS)}
            res.check(name + ": reference losses of the top-k patterns differ from dense and from each other",
                      len({round(v, 5) for v in topk.values()}) == len(topk), repr(topk))
            if rows is None:
                continue
            res.check(name + ": tokens = labels whose input is not eos",
                      all(r["tokens"] == n_labels for r in rows.values()),
                      "%s vs %d" % ([r["tokens"] for r in rows.values()], n_labels))
            for p in DENSE_EQUIVALENTS + TOPK_DENSE_EQUIVALENTS:
                res.check("%s: %s equals dense" % (name, p),
                          close(rows[p]["loss"], rows["dense"]["loss"], 1e-6),
                          "%r vs %r" % (rows[p]["loss"], rows["dense"]["loss"]))

    # Without --eos-id nothing is ignored.
    ck = os.path.join(tmp, "ck_11.h5")
    rows = eval_case(res, binary, tmp, "no eos-id", ck, [shard], ["dense", "dilated:D=4"], eos_id=None)
    if rows:
        res.check("no eos-id: tokens = batches * seq_len",
                  all(r["tokens"] == SEQ_LEN * BATCHES for r in rows.values()))

    # --decode: the windows decoded teacher-forced through the compact caches give the same losses, also in a
    # last micro-batch of fewer windows than the decoder's batch; the other tasks refuse it.
    eval_case(res, binary, tmp, "decoded", ck, [shard],
              ["dense", "dilated:D=3,W=5,P=2", "heads=2:dense+2:dilated:D=4,W=1,P=1", "topk:B=4,K=2"],
              extra=["--decode", "--micro-batch", "2"])
    # --cache int8: the same windows through an 8-bit cache stay within 0.01 of the reference's exact loss
    # and differ from it (the cache rounds); --cache without --decode is refused.
    out = os.path.join(tmp, "int8.json")
    rc, err = run(binary, ["eval", "--checkpoint", ck, "--data", shard, "--seq-len", str(SEQ_LEN), "--batches",
                           str(BATCHES), "--eos-id", str(EOS), "--pattern", "dense", "--pattern", "dilated:D=3,W=5,P=2",
                           "--decode", "--cache", "int8", "--device", "cpu", "--json", out], tmp)
    if res.check("--decode --cache int8 exits 0", rc == 0, "exit %s: %s" % (rc, err)):
        with open(out) as f:
            got = {r["pattern"]: r["loss"] for r in json.load(f)["results"]}
        for want in ref.eval_patterns(ck, [shard], SEQ_LEN, BATCHES, list(got), EOS):
            gap = abs(got[want["pattern"]] - want["loss"])
            res.check("--cache int8: %s loss within 0.01 of the exact cache's and not equal (gap %.2e)"
                      % (want["pattern"], gap), 1e-7 < gap < 0.01)
    rc, err = run(binary, ["eval", "--checkpoint", ck, "--data", shard, "--seq-len", str(SEQ_LEN), "--batches",
                           str(BATCHES), "--pattern", "dense", "--cache", "int8"], tmp)
    res.check("--cache without --decode exits 2 naming it", rc == 2 and "--cache" in err, "exit %s: %s" % (rc, err))
    rc, err = run(binary, ["eval", "--task", "recall", "--decode", "--checkpoint", ck, "--data", shard,
                           "--seq-len", str(SEQ_LEN), "--pattern", "dense"], tmp)
    res.check("--decode under --task recall exits 2 naming it", rc == 2 and "--decode" in err, "exit %s: %s" % (rc, err))

    # Windows run over the concatenated shards: split files and a uint32 shard give the same.
    parts = [os.path.join(tmp, "part%d.bin" % i) for i in range(3)]
    ref.write_llmc_shard(parts[0], tokens[:50])
    ref.write_llmc_shard(parts[1], tokens[50:90], version=7)
    ref.write_llmc_shard(parts[2], tokens[90:])
    eval_case(res, binary, tmp, "three shards (one uint32)", ck, parts, ["dense", "dilated:D=3,W=5,P=2"],
              compare_to=[shard])

    # Config values away from the defaults: 3 layers, dh 16, d_ffn != 4d, large eps, small base.
    ck_odd = os.path.join(tmp, "ck_odd.h5")
    ref.write_checkpoint(ck_odd, {"vocab_size": 97, "d_model": 32, "n_layers": 3, "n_heads": 2,
                                  "d_ffn": 40, "norm_eps": 1e-3, "rope_base": 100.0,
                                  "tie_embeddings": False}, std=0.2, seed=5, norm_jitter=0.2)
    eval_case(res, binary, tmp, "non-default config", ck_odd, [shard],
              ["dense", "dilated:D=3,W=1", "layers=dense|local:W=2|heads=1:dense+1:dilated:D=2"])

    gelu_probe(res, binary, tmp, shard)

    # The config attribute as a fixed-length string (as some HDF5 writers store it).
    ck_fixed = os.path.join(tmp, "ck_fixed.h5")
    ref.write_checkpoint(ck_fixed, dict(MODEL), std=0.2, seed=99, fixed_length_config=True)
    eval_case(res, binary, tmp, "fixed-length config attribute", ck_fixed, [shard], ["dense", "local:W=3"])


def gelu_probe(res, binary, tmp, shard):
    """A one-layer model whose loss hangs on GELU values: attention output off, fc1 = ±2·I
    (pre-activations where the tanh approximation is furthest from the exact erf form),
    a large fc2 so the FFN dominates the residual stream."""
    cfg = ref.normalise_config(dict(MODEL, n_layers=1))
    rng = np.random.default_rng(3)
    params = ref.random_parameters(cfg, std=0.2, seed=4)
    eye = np.eye(32, dtype=np.float32)
    params["embed/weight"] = rng.standard_normal((97, 32)).astype(np.float32)
    params["layers/0/attn/out_proj/weight"][:] = 0.0
    params["layers/0/ffn/fc1/weight"] = np.vstack([2 * eye, -2 * eye])
    params["layers/0/ffn/fc2/weight"] = np.hstack([50 * eye, 0 * eye])
    ck = os.path.join(tmp, "ck_gelu.h5")
    ref.write_checkpoint(ck, cfg, params=params)

    exact = ref.eval_patterns(ck, [shard], SEQ_LEN, BATCHES, ["dense"], EOS)[0]["loss"]
    exact_gelu = ref.gelu
    ref.gelu = lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    try:
        approx = ref.eval_patterns(ck, [shard], SEQ_LEN, BATCHES, ["dense"], EOS)[0]["loss"]
    finally:
        ref.gelu = exact_gelu
    res.check("gelu probe: tanh-approximate GELU is outside the tolerance (%.2g relative)"
              % (abs(exact - approx) / exact), not close(exact, approx, 2 * REL_TOL))
    eval_case(res, binary, tmp, "gelu probe", ck, [shard], ["dense"])


def init_case(res, binary, tmp, name, yaml_text, overrides, expect_model):
    cfg_path = os.path.join(tmp, name.replace(" ", "_") + ".yaml")
    out = os.path.join(tmp, name.replace(" ", "_") + ".h5")
    with open(cfg_path, "w") as f:
        f.write(yaml_text)
    rc, err = run(binary, ["init", "--config", cfg_path, "--out", out] + overrides, tmp)
    if not res.check(name + ": ratplus init exits 0", rc == 0, "exit %s: %s" % (rc, err)):
        return None
    if not res.check(name + ": output file exists", os.path.isfile(out)):
        return None
    try:
        f = h5py.File(out, "r")
    except OSError as exc:
        res.check(name + ": output is HDF5", False, str(exc))
        return None
    with f:
        if not res.check(name + ": has /model with a config attribute",
                         "model" in f and "config" in f["model"].attrs):
            return None
        text = ref._attr_text(f["model"].attrs["config"])
        try:
            cfg = ref.parse_model_config(text)
        except ref.InputError as exc:
            res.check(name + ": config attribute parses", False, "%s: %r" % (exc, text))
            return None
        raw = ref._parse_simple_yaml(text)
        raw = raw.get("model", raw) if isinstance(raw.get("model"), dict) else raw
        res.check(name + ": config attribute has every SPEC §7 key",
                  all(k in raw for k in ref.CONFIG_KEYS if k != "init_std"), repr(text))
        res.check(name + ": config attribute matches the config's model section",
                  all(cfg[k] == v for k, v in expect_model.items()),
                  "%r vs %r" % (cfg, expect_model))
        datasets = {}
        f["model"].visititems(lambda n, o: datasets.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        want = ref.parameter_shapes(ref.normalise_config(expect_model))
        res.check(name + ": /model dataset names are exactly SPEC §7's",
                  set(datasets) == set(want),
                  "extra %s, missing %s" % (sorted(set(datasets) - set(want)), sorted(set(want) - set(datasets))))
        res.check(name + ": dataset shapes", all(datasets[n].shape == s for n, s in want.items() if n in datasets),
                  repr({n: datasets[n].shape for n in datasets}))
        res.check(name + ": datasets are float32", all(d.dtype == np.float32 for d in datasets.values()),
                  repr({n: str(d.dtype) for n, d in datasets.items()}))
        norms = [datasets[n][()] for n in want if len(want[n]) == 1 and n in datasets]
        res.check(name + ": norm weights are 1", all(np.all(w == 1.0) for w in norms))
        std = float(np.std(datasets["embed/weight"][()])) if "embed/weight" in datasets else -1
        res.check(name + ": embedding std about init_std (%.4f)" % std,
                  abs(std - expect_model.get("init_std", 0.02)) < 0.1 * expect_model.get("init_std", 0.02))
    return out


def init_cases(res, binary, tmp, rng):
    good = ("model:\n  vocab_size: 97\n  d_model: 32\n  n_layers: 2\n  n_heads: 4\n  d_ffn: 64\n")
    expect = dict(MODEL, tie_embeddings=True, recurrence=True)
    out = init_case(res, binary, tmp, "init defaults", good, [], expect)
    if out:
        # A checkpoint made by `ratplus init` evaluates like the reference says.
        shard = os.path.join(tmp, "init_shard.bin")
        ref.write_llmc_shard(shard, make_tokens(rng, 200))
        eval_case(res, binary, tmp, "eval of init checkpoint", out, [shard], ["dense", "dilated:D=4"])
    init_case(res, binary, tmp, "init with overrides", good,
              ["model.tie_embeddings=false", "model.recurrence=false", "model.init_std=0.05"],
              dict(expect, tie_embeddings=False, recurrence=False, init_std=0.05))
    init_case(res, binary, tmp, "init from a full config", good.replace("d_ffn: 64\n", (
        "d_ffn: 48\n  norm_eps: 1.0e-5\n  rope_base: 500.0\n  tie_embeddings: false\n"
        "  recurrence: true\n  init_std: 0.03\n")),
              [], dict(MODEL, d_ffn=48, norm_eps=1e-5, rope_base=500.0, tie_embeddings=False,
                       recurrence=True, init_std=0.03))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    res = harness.Results()
    for name, ok, detail in ref.selftest():
        res.check("reference selftest: " + name, ok, detail)
    if not os.access(binary, os.X_OK):
        res.check("binary %s is executable" % binary, False)
    else:
        rng = np.random.default_rng(2024)
        with tempfile.TemporaryDirectory() as tmp:
            model_cases(res, binary, tmp, rng)
            init_cases(res, binary, tmp, rng)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
