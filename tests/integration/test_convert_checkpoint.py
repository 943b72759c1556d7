#!/usr/bin/env python3
"""Black-box check of tools/convert_checkpoint.py against `ratplus` and PyTorch.

Usage: python3 test_convert_checkpoint.py /path/to/ratplus

Builds small random models in the reference implementation's state_dict names with torch (RAT+
and attention-only; tied and untied head; fused and separate forget gate; names with and without
`_orig_mod.`; head count from the config or from --n-heads), saves each as a reference training
checkpoint (.pth, with an EasyDict-like config and optimizer state), and checks:
- .pth -> .h5: `ratplus ckpt inspect --verify` vouches for the file, and `ratplus eval` gives the
  loss that tools/torch_baseline.py's PyTorch model gives on the same windows from the original
  tensors (relative 1e-5, fp32), dense and dilated;
- .h5 -> .pth: every tensor of the reference state_dict is back unchanged (the separate gate fused),
  the tied head is the embedding's tensor, the config gives the head count; .pth -> .h5 again
  gives the same datasets;
- .h5 -> .safetensors and .pth -> a folder: parsed here from the bytes (header length, JSON header,
  offsets, little-endian float32 data), every tensor equal to the model's, config.json right, and
  both exports byte-identical;
- a training checkpoint of `ratplus train` -> .pth: its /model tensors and its step;
- bad input exits 2 naming the file and the tensor and leaves no output (a damaged .h5 too); an
  unwritable output exits 1.
Prints one line per check and a final `N passed, M failed`; exits 77 when PyTorch is missing.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)

SYSTEM = "/usr/bin/python3"  # Debian's python3-numpy, python3-h5py and python3-torch live there
try:
    import h5py
    import numpy as np
    import torch
except ImportError:
    if os.path.exists(SYSTEM) and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM):
        os.execv(SYSTEM, [SYSTEM] + sys.argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("skipped: torch not installed")
        sys.exit(77)
    raise

import harness  # noqa: E402
import ratplus_reference as ref  # noqa: E402
import torch_baseline  # noqa: E402

SCRIPT = os.path.join(TOOLS, "convert_checkpoint.py")
V, D, H, L, F = 61, 32, 4, 2, 48
SEQ_LEN, BATCHES = 29, 3
PATTERNS = ["dense", "dilated:D=4"]
REL_TOL = 1e-5
VARIANTS = [  # name, recurrence, separate forget gate, tied, `_orig_mod.` names, d_head in the config
    ("rat-fused-tied-compiled", True, False, True, True, True),
    ("rat-separate-untied", True, True, False, False, False),
    ("attention-tied", False, False, True, False, True),
    ("attention-untied-compiled", False, False, False, True, False),
]


class EasyDict(dict):
    """Like easydict.EasyDict (the reference's config type): items are also attributes."""

    def __init__(self, items=None):
        super().__init__()
        for key, value in (items or {}).items():
            setattr(self, key, EasyDict(value) if isinstance(value, dict) else value)

    def __setattr__(self, key, value):
        super().__setattr__(key, value)
        self[key] = value


# ------------------------------------------------------------------------------ models

def reference_state_dict(recurrence, separate_gate, tied, seed):
    """A random model in the reference names (fused in_proj unless separate_gate)."""
    g = torch.Generator().manual_seed(seed)

    def matrix(rows, cols):
        return 0.2 * torch.randn(rows, cols, generator=g)

    def norm():
        return 1.0 + 0.1 * torch.randn(D, generator=g)

    state = OrderedDict([("embedding.wte.weight", torch.randn(V, D, generator=g))])
    for i in range(L):
        p = "backbone.layers.%d." % i
        state[p + "seq_layer.input_norm.weight"] = norm()
        if separate_gate:
            state[p + "seq_layer.in_proj.weight"] = matrix(4 * D, D)
            state[p + "seq_layer.fgate_proj.weight"] = matrix(D, D)
        else:
            state[p + "seq_layer.in_proj.weight"] = matrix((5 if recurrence else 4) * D, D)
        state[p + "seq_layer.out_proj.weight"] = matrix(D, D)
        state[p + "hidden_layer.ln.weight"] = norm()
        state[p + "hidden_layer.fc1.weight"] = matrix(F, D)
        state[p + "hidden_layer.fc2.weight"] = matrix(D, F)
    state["backbone.ln.weight"] = norm()
    state["head.lm_head.weight"] = state["embedding.wte.weight"] if tied else torch.randn(V, D, generator=g)
    return state


def fused(state):
    """The state_dict with every separate forget gate appended to its in_proj."""
    out = OrderedDict()
    for name, tensor in state.items():
        if name.endswith("seq_layer.fgate_proj.weight"):
            in_proj = name.replace("fgate_proj", "in_proj")
            out[in_proj] = torch.cat([out[in_proj], tensor])
        else:
            out[name] = tensor
    return out


def spec_tensors(state, tied):
    """SPEC §7 names ('.' for '/', as torch_baseline.RatPlus names them) of a fused state_dict."""
    renames = {"seq_layer.input_norm": "attn_norm", "seq_layer.in_proj": "attn.in_proj",
               "seq_layer.out_proj": "attn.out_proj", "hidden_layer.ln": "ffn_norm",
               "hidden_layer.fc1": "ffn.fc1", "hidden_layer.fc2": "ffn.fc2"}
    out = OrderedDict([("embed.weight", state["embedding.wte.weight"])])
    for i in range(L):
        for old, new in renames.items():
            out["layers.%d.%s.weight" % (i, new)] = state["backbone.layers.%d.%s.weight" % (i, old)]
    out["final_norm.weight"] = state["backbone.ln.weight"]
    if not tied:
        out["lm_head.weight"] = state["head.lm_head.weight"]
    return out


def save_reference(path, state, with_config, compiled, recurrence, tied):
    task = OrderedDict((("_orig_mod." if compiled else "") + k, v) for k, v in state.items())
    checkpoint = {"task": task, "step": 1234,
                  "optimizer": {"state": {0: {"step": torch.tensor(3.0),
                                              "exp_avg": torch.zeros(V, D)}},
                                "param_groups": [{"lr": 1e-3, "params": [0]}]},
                  "lr_scheduler": {"last_epoch": 3}, "resume_kwargs": EasyDict({"epoch": 1})}
    if with_config:
        checkpoint["config"] = EasyDict({
            "model": {"backbone": {"num_layers": L, "d_model": D,
                                   "seq_cell": {"d_head": D // H, "apply_re": recurrence}}},
            "task": {"tie_embedding": tied}})
    torch.save(checkpoint, path)


def torch_losses(state, recurrence, tied, shard):
    """Loss per pattern of torch_baseline's model on the original tensors (fp32, CPU)."""
    cfg = ref.normalise_config({"vocab_size": V, "d_model": D, "n_layers": L, "n_heads": H,
                                "d_ffn": F, "tie_embeddings": tied, "recurrence": recurrence})
    model = torch_baseline.RatPlus(cfg)
    model.load_state_dict(spec_tensors(state, tied), strict=True)
    inputs, targets = ref.make_windows([ref.read_tokens(shard)], SEQ_LEN, BATCHES)
    losses = {}
    for text in PATTERNS:
        plan = torch_baseline.attention_plan(ref.parse_pattern(text, L, H), SEQ_LEN, torch.device("cpu"))
        with torch.no_grad():
            losses[text] = float(model(torch.from_numpy(inputs), plan, torch.from_numpy(targets)))
    return losses


# -------------------------------------------------------------------------- commands

def convert(*args):
    return subprocess.run([sys.executable, SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=300)


def ratplus(binary, *args):
    return subprocess.run([binary] + [str(a) for a in args], capture_output=True, text=True, timeout=300)


def parse_safetensors(path):
    """(header dict, {name: float32 array}) read straight from the bytes of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    tensors, end = OrderedDict(), 0
    for name, entry in sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                              key=lambda item: item[1]["data_offsets"][0]):
        begin, stop = entry["data_offsets"]
        assert entry["dtype"] == "F32" and begin == end, (name, entry, end)
        assert stop - begin == 4 * int(np.prod(entry["shape"], dtype=np.int64)), (name, entry)
        tensors[name] = np.frombuffer(data[begin:stop], dtype="<f4").reshape(entry["shape"])
        end = stop
    assert end == len(data), "data holds %d bytes after the last tensor's %d" % (len(data), end)
    return header, tensors


def leftovers(folder):
    return [n for n in os.listdir(folder) if ".tmp-" in n]


# ---------------------------------------------------------------------------- checks

def check_variant(res, binary, tmp, shard, variant, seed):
    name, recurrence, separate, tied, compiled, with_config = variant
    state = reference_state_dict(recurrence, separate, tied, seed)
    whole = fused(state)
    pth = os.path.join(tmp, name + ".pth")
    h5 = os.path.join(tmp, name + ".h5")
    save_reference(pth, state, with_config, compiled, recurrence, tied)
    heads = [] if with_config else ["--n-heads", H]

    if not with_config:
        proc = convert(pth, h5)
        res.check(name + ": no head count exits 2", proc.returncode == 2 and "--n-heads" in proc.stderr
                  and pth in proc.stderr and not os.path.exists(h5), proc.stderr)
    proc = convert(pth, h5, *heads)
    if not res.check(name + ": .pth -> .h5 exits 0", proc.returncode == 0, proc.stderr):
        return
    proc = ratplus(binary, "ckpt", "inspect", "--verify", h5)
    res.check(name + ": ckpt inspect --verify", proc.returncode == 0 and "datasets verified" in proc.stdout
              and "recurrence: %s" % ("true" if recurrence else "false") in proc.stdout
              and "tie_embeddings: %s" % ("true" if tied else "false") in proc.stdout
              and "n_heads: %d" % H in proc.stdout and "d_ffn: %d" % F in proc.stdout,
              proc.stdout + proc.stderr)

    out_json = os.path.join(tmp, name + ".eval.json")
    proc = ratplus(binary, "eval", "--checkpoint", h5, "--data", shard, "--seq-len", SEQ_LEN,
                   "--batches", BATCHES, "--device", "cpu", "--json", out_json,
                   *sum((["--pattern", p] for p in PATTERNS), []))
    if res.check(name + ": ratplus eval exits 0", proc.returncode == 0, proc.stderr):
        got = {r["pattern"]: r["loss"] for r in json.load(open(out_json))["results"]}
        expected = torch_losses(whole, recurrence, tied, shard)
        for pattern in PATTERNS:
            res.check("%s: eval %s loss %.7f == torch %.7f" % (name, pattern, got[pattern], expected[pattern]),
                      harness.close(got[pattern], expected[pattern], REL_TOL))

    back = os.path.join(tmp, name + ".back.pth")
    proc = convert(h5, back)
    if res.check(name + ": .h5 -> .pth exits 0", proc.returncode == 0, proc.stderr):
        loaded = torch.load(back)
        task = loaded["task"]
        res.check(name + ": .pth names", list(task) == list(whole), "%s vs %s" % (list(task), list(whole)))
        res.check(name + ": .pth tensors unchanged", all(
            n in task and task[n].dtype == torch.float32 and torch.equal(task[n], t) for n, t in whole.items()))
        res.check(name + ": tied head is the embedding's tensor" if tied else name + ": untied head apart",
                  (task["head.lm_head.weight"].data_ptr() == task["embedding.wte.weight"].data_ptr()) == tied)
        cell = loaded["config"]["model"]["backbone"]["seq_cell"]
        res.check(name + ": .pth config", cell["d_head"] == D // H and cell["apply_re"] == recurrence
                  and loaded["config"]["task"]["tie_embedding"] == tied
                  and loaded["config"]["model"]["backbone"]["num_layers"] == L and loaded["step"] == 0,
                  str(loaded["config"]))
        again = os.path.join(tmp, name + ".again.h5")
        proc = convert(back, again)
        if res.check(name + ": .pth -> .h5 again exits 0", proc.returncode == 0, proc.stderr):
            with h5py.File(h5, "r") as a, h5py.File(again, "r") as b:
                names = []
                a["model"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
                res.check(name + ": .h5 -> .pth -> .h5 datasets equal",
                          len(names) == len(spec_tensors(whole, tied)) and all(
                              np.array_equal(a["model"][n][()], b["model"][n][()]) for n in names))

    st_file = os.path.join(tmp, name + ".safetensors")
    st_dir = os.path.join(tmp, name + "-hf")
    proc_file, proc_dir = convert(h5, st_file), convert(pth, st_dir, *heads)
    if res.check(name + ": safetensors exports exit 0", proc_file.returncode == 0 and proc_dir.returncode == 0,
                 proc_file.stderr + proc_dir.stderr):
        header, tensors = parse_safetensors(st_file)
        expected = spec_tensors(whole, tied)
        res.check(name + ": safetensors names", list(tensors) == list(expected), str(list(tensors)))
        res.check(name + ": safetensors values", all(
            n in tensors and np.array_equal(tensors[n], t.numpy()) for n, t in expected.items()))
        config = json.load(open(os.path.join(tmp, "config.json")))
        res.check(name + ": config.json", config == {
            "vocab_size": V, "d_model": D, "n_layers": L, "n_heads": H, "d_ffn": F, "norm_eps": 1e-6,
            "rope_base": 10000.0, "tie_embeddings": tied, "recurrence": recurrence}, str(config))
        res.check(name + ": __metadata__ config", json.loads(header["__metadata__"]["config"]) == config)
        folder_config = json.load(open(os.path.join(st_dir, "config.json")))
        with open(st_file, "rb") as a, open(os.path.join(st_dir, "model.safetensors"), "rb") as b:
            res.check(name + ": .h5 and .pth exports identical", a.read() == b.read() and folder_config == config)


def check_bad_inputs(res, tmp):
    bad = os.path.join(tmp, "bad")
    os.mkdir(bad)
    good = reference_state_dict(True, False, True, 99)
    cases = []

    def case(label, state=None, args=(), expect=(), out="out.h5", source=None, config=True, code=2,
             names_output=False):
        cases.append((label, state, args, expect, out, source, config, code, names_output))

    def edited(edit):
        state = OrderedDict(good)
        edit(state)
        return state

    l0, l1 = "backbone.layers.0.", "backbone.layers.1."
    case("missing tensor", edited(lambda s: s.pop(l1 + "hidden_layer.fc2.weight")),
         expect=[l1 + "hidden_layer.fc2.weight", "missing"])
    case("wrong shape", edited(lambda s: s.update({l0 + "seq_layer.out_proj.weight": torch.zeros(D, D + 1)})),
         expect=[l0 + "seq_layer.out_proj.weight", "(32, 33)"])
    case("inconsistent d_ffn", edited(lambda s: s.update({l1 + "hidden_layer.fc1.weight": torch.zeros(F + 2, D)})),
         expect=[l1 + "hidden_layer.fc1.weight", "d_ffn"])
    case("mixed forget gates", edited(lambda s: s.update({l1 + "seq_layer.in_proj.weight": torch.zeros(4 * D, D)})),
         expect=[l1 + "seq_layer.in_proj.weight", "forget gate"])
    case("in_proj rows", edited(lambda s: s.update({l0 + "seq_layer.in_proj.weight": torch.zeros(3 * D, D)})),
         expect=[l0 + "seq_layer.in_proj.weight"])
    case("unknown tensor", edited(lambda s: s.update({l0 + "seq_layer.rotary.inv_freq": torch.zeros(4)})),
         expect=[l0 + "seq_layer.rotary.inv_freq"])
    case("head shape", edited(lambda s: s.update({"head.lm_head.weight": torch.zeros(V + 1, D)})),
         expect=["head.lm_head.weight"])
    case("non-finite value", edited(lambda s: s.update({"backbone.ln.weight": torch.full((D,), float("nan"))})),
         expect=["backbone.ln.weight", "non-finite"])
    case("float64 tensor", edited(lambda s: s.update({"backbone.ln.weight": torch.ones(D, dtype=torch.float64)})),
         expect=["backbone.ln.weight", "dtype"])
    case("no layers", OrderedDict((k, v) for k, v in good.items() if "layers" not in k), expect=["backbone.layers"])
    case("no head count", good, config=False, expect=["--n-heads"])
    case("heads do not divide d_model", good, config=False, args=["--n-heads", 5], expect=["5 heads"])
    case("--n-heads contradicts the config", good, args=["--n-heads", 2], expect=["--n-heads 2", "d_head"])
    case("unknown output extension", good, out="out.bin", expect=[".bin"], names_output=True)
    case("pth -> pth", good, out="out.pth", expect=[".pth to .pth"])
    case("output folder missing", good, out="nowhere/out.h5", expect=["does not exist"], names_output=True)
    case("unwritable output", good, out="/proc/ratplus-convert-test.h5", expect=["cannot write"], code=1)

    garbage = os.path.join(bad, "garbage.pth")
    with open(garbage, "wb") as f:
        f.write(b"PK\x03\x04 this is not a torch file" * 10)
    case("not a torch file", source=garbage, expect=["not a PyTorch checkpoint"])
    case("missing input", source=os.path.join(bad, "absent.pth"), expect=["no such file"])
    unknown = os.path.join(bad, "model.bin")
    with open(unknown, "wb") as f:
        f.write(b"x")
    case("unknown input extension", source=unknown, expect=[".bin"])

    for index, (label, state, args, expect, out, source, config, code, names_output) in enumerate(cases):
        if source is None:
            source = os.path.join(bad, "case%d.pth" % index)
            save_reference(source, state, config, False, True, True)
        target = out if os.path.isabs(out) else os.path.join(bad, out)
        proc = convert(source, target, *args)
        culprit = target if names_output else source
        ok = (proc.returncode == code and culprit in proc.stderr and all(e in proc.stderr for e in expect)
              and "Traceback" not in proc.stderr and not os.path.exists(target) and not leftovers(bad))
        res.check("bad input: %s exits %d" % (label, code), ok, "exit %d: %s" % (proc.returncode, proc.stderr))


def check_damaged_h5(res, tmp):
    """A flipped byte in a converted .h5's data fails its checksum: exit 2, no output."""
    pth, h5 = os.path.join(tmp, "damage.pth"), os.path.join(tmp, "damage.h5")
    save_reference(pth, reference_state_dict(True, False, True, 7), True, False, True, True)
    if not res.check("damaged .h5: conversion exits 0", convert(pth, h5).returncode == 0):
        return
    with h5py.File(h5, "r") as f:
        offset = f["model/layers/1/ffn/fc1/weight"].id.get_chunk_info(0).byte_offset
    with open(h5, "r+b") as f:
        f.seek(offset + 100)
        byte = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([byte[0] ^ 0x10]))
    out = os.path.join(tmp, "damage.back.pth")
    proc = convert(h5, out)
    res.check("damaged .h5 exits 2", proc.returncode == 2 and h5 in proc.stderr and not os.path.exists(out),
              "exit %d: %s" % (proc.returncode, proc.stderr))


def check_h5_refusals(res, tmp):
    """A .h5 whose math the reference cannot hold, or with a contradicting --n-heads: exit 2."""
    odd = os.path.join(tmp, "rope500.h5")
    ref.write_checkpoint(odd, {"vocab_size": V, "d_model": D, "n_layers": 1, "n_heads": H, "rope_base": 500.0})
    for label, target, args, expect in (("rope_base 500 -> .pth", "rope500.pth", [], "rope_base 500"),
                                        ("--n-heads contradicting a .h5", "rope500.safetensors",
                                         ["--n-heads", 2], "--n-heads 2")):
        out = os.path.join(tmp, target)
        proc = convert(odd, out, *args)
        res.check("bad input: %s exits 2" % label, proc.returncode == 2 and odd in proc.stderr
                  and expect in proc.stderr and not os.path.exists(out), proc.stderr)


def check_training_checkpoint(res, binary, tmp):
    """A checkpoint `ratplus train` wrote: its /model and /train@step become the .pth's task and step."""
    repo = os.path.join(HERE, "..", "..")
    tokens = os.path.join(tmp, "synth.bin")
    ratplus(binary, "data", "synth", "--out", tokens, "--tokens", 20000, "--vocab", 256, "--seed", 1)
    proc = ratplus(binary, "train", "--config", os.path.join(repo, "configs", "tiny.yaml"), "data.train=" + tokens,
                   "data.val=" + tokens, "data.seq_len=32", "train.steps=3", "train.val_every=0",
                   "train.metrics_jsonl=", "checkpoint.every=0", "checkpoint.dir=" + os.path.join(tmp, "ck"),
                   "runtime.device=cpu")
    if not res.check("ratplus train writes a checkpoint", proc.returncode == 0, proc.stderr[-2000:]):
        return
    h5 = os.path.join(tmp, "ck", "step_00000003.h5")
    out = os.path.join(tmp, "trained.pth")
    proc = convert(h5, out)
    if not res.check("training checkpoint -> .pth exits 0", proc.returncode == 0, proc.stderr):
        return
    loaded = torch.load(out)
    with h5py.File(h5, "r") as f:
        embed = f["model/embed/weight"][()]
        in_proj = f["model/layers/1/attn/in_proj/weight"][()]
    res.check("training checkpoint: step and tensors", loaded["step"] == 3
              and np.array_equal(loaded["task"]["embedding.wte.weight"].numpy(), embed)
              and np.array_equal(loaded["task"]["backbone.layers.1.seq_layer.in_proj.weight"].numpy(), in_proj)
              and loaded["config"]["model"]["backbone"]["seq_cell"]["d_head"] == 16, str(loaded["step"]))


def main():
    if len(sys.argv) != 2:
        print("usage: test_convert_checkpoint.py /path/to/ratplus", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    res = harness.Results()
    with tempfile.TemporaryDirectory(prefix="ratplus-convert-") as tmp:
        shard = os.path.join(tmp, "tokens.bin")
        ref.write_llmc_shard(shard, np.random.default_rng(3).integers(0, V, size=SEQ_LEN * BATCHES + 1))
        for seed, variant in enumerate(VARIANTS):
            check_variant(res, binary, tmp, shard, variant, seed)
        check_bad_inputs(res, tmp)
        check_damaged_h5(res, tmp)
        check_h5_refusals(res, tmp)
        check_training_checkpoint(res, binary, tmp)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
