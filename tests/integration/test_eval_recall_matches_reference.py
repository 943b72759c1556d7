#!/usr/bin/env python3
"""Black-box check of `ratplus eval --task recall` against SPEC §6 and tools/ratplus_reference.py.

Usage: python3 test_eval_recall_matches_reference.py /path/to/ratplus

Writes a random checkpoint (h5py) and an llm.c shard of random ids, builds the recall samples here from
the SPEC's words alone (splitmix64 draws, the stopped Fisher–Yates choice of haystack chunks, the needle
after round(depth · H) haystack tokens, the query and value at the end), scores each with the NumPy
reference model (float64 logits of the whole window) and compares, per pattern and depth, the binary's
exact_match (equal) and value_logprob (relative 2e-5). Prints one line per check and
`N passed, M failed`.
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
    import h5py  # noqa: F401
    import numpy as np
except ImportError:  # numpy / h5py come from Debian's python3-numpy / python3-h5py
    SYSTEM = "/usr/bin/python3"
    if os.path.exists(SYSTEM) and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM):
        os.execv(SYSTEM, [SYSTEM] + sys.argv)
    raise

import harness  # noqa: E402
import ratplus_reference as ref  # noqa: E402

MODEL = {"vocab_size": 29, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ffn": 64,
         "norm_eps": 1e-6, "rope_base": 10000.0}
SEQ_LEN, NEEDLES, SEED, DEPTHS = 40, 5, 9, [0.2, 0.5, 0.85]
K = L = 4
PATTERNS = ["dense", "dilated:D=4,W=2,P=1", "layers=dense|local:W=3"]
MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def draw(seed, i, n):
    return splitmix64(splitmix64(seed) ^ i) % n


def samples(data, vocab):
    """(depth index, tokens) of every sample, depth by depth, as SPEC §6 defines them."""
    H = SEQ_LEN + 1 - 2 * (K + L + 2)
    chunks = len(data) // H
    order, chosen = {}, []
    for i in range(NEEDLES):
        r = i + draw(SEED, i, chunks - i)
        chosen.append(order.get(r, r))
        order[r] = order.get(i, i)
    needle, separator, query = vocab - 1, vocab - 2, vocab - 3
    out = []
    for d, depth in enumerate(DEPTHS):
        p = int(math.floor(depth * H + 0.5))
        for j in range(NEEDLES):
            hay = [int(t) for t in data[chosen[j] * H:(chosen[j] + 1) * H]]
            ids = [draw(SEED, NEEDLES + j * (K + L) + t, vocab - 3) for t in range(K + L)]
            key, value = ids[:K], ids[K:]
            tokens = hay[:p] + [needle] + key + [separator] + value + hay[p:] + [query] + key + [separator] + value
            assert len(tokens) == SEQ_LEN + 1
            out.append((d, tokens))
    return out


def reference_rows(cfg, params, pattern, sample_list):
    layers = ref.parse_pattern(pattern, cfg["n_layers"], cfg["n_heads"])
    exact = [0] * len(DEPTHS)
    logprob = [0.0] * len(DEPTHS)
    for d, tokens in sample_list:
        logits = ref.forward_logits(cfg, params, np.array(tokens[:SEQ_LEN]), layers)
        hit = True
        for j in range(L):
            row = logits[SEQ_LEN - L + j]
            target = tokens[SEQ_LEN + 1 - L + j]
            top = row.max()
            logprob[d] += row[target] - top - math.log(np.exp(row - top).sum())
            hit = hit and int(np.argmax(row)) == target
        exact[d] += hit
    return [(DEPTHS[d], exact[d] / NEEDLES, logprob[d] / (NEEDLES * L)) for d in range(len(DEPTHS))]


def main():
    if len(sys.argv) != 2:
        print("usage: python3 %s /path/to/ratplus" % sys.argv[0], file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    res = harness.Results()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, shard, out = (os.path.join(tmp, n) for n in ("model.h5", "data.bin", "out.json"))
        ref.write_checkpoint(checkpoint, dict(MODEL), std=0.4, seed=3, norm_jitter=0.2)
        data = np.random.default_rng(4).integers(0, MODEL["vocab_size"], size=700)
        ref.write_llmc_shard(shard, data)
        args = [binary, "eval", "--task", "recall", "--checkpoint", checkpoint, "--data", shard, "--seq-len",
                str(SEQ_LEN), "--needles", str(NEEDLES), "--seed", str(SEED), "--depths",
                ",".join(str(d) for d in DEPTHS), "--micro-batch", "4", "--device", "cpu", "--json", out]
        for p in PATTERNS:
            args += ["--pattern", p]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if not res.check("eval --task recall exits 0", proc.returncode == 0, proc.stderr[-1000:]):
            print("%d passed, %d failed" % (res.passed, res.failed))
            return 1
        rows = json.load(open(out))["results"]
        cfg, params = ref.load_checkpoint(checkpoint)
        sample_list = samples(data, MODEL["vocab_size"])
        for p in PATTERNS:
            got = [(r["depth"], r["exact_match"], r["value_logprob"]) for r in rows if r["pattern"] == p]
            expected = reference_rows(cfg, params, p, sample_list)
            res.check("%s: exact match per depth as the reference's argmax" % p,
                      [g[:2] for g in got] == [e[:2] for e in expected], "%s vs %s" % (got, expected))
            res.check("%s: value log-probability per depth as the reference's" % p,
                      len(got) == len(expected)
                      and all(harness.close(g[2], e[2], 2e-5) for g, e in zip(got, expected)),
                      "%s vs %s" % (got, expected))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
