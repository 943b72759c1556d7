#!/usr/bin/env python3
"""Independent NumPy (float64) reference of the RAT+ model in SPEC.md.

Written straight from SPEC §2 (model), §3 and §6 (attention patterns, top-k blocks), §5/§9 (data windows),
§7 (HDF5 checkpoint layout) and §10 (pattern text) with the plainest code there is:
an explicit T×T boolean mask per head, a softmax over it, and a Python loop for the
gated recurrence. It is slow and meant for tiny models; its job is to check the C++ code.

Command line:
  ratplus_reference.py eval --checkpoint F --data F [F ...] --seq-len T --batches N
                            --pattern P [--pattern P ...] [--eos-id E] [--json FILE]
  ratplus_reference.py init --out F [--std S] [--seed N] [key=value ...]
  ratplus_reference.py selftest

Exit codes follow ratplus: 0 ok, 2 bad input (message on stderr).
"""

import argparse
import json
import math
import os
import re
import sys


def _reexec_with_system_python():
    """NumPy and h5py come from Debian (python3-numpy, python3-h5py): when the python3
    found first lacks them, rerun the same command under /usr/bin/python3."""
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        system = "/usr/bin/python3"
        if os.path.exists(system) and os.path.realpath(sys.executable) != os.path.realpath(system):
            os.execv(system, [system] + sys.argv)


if __name__ == "__main__":
    _reexec_with_system_python()

import numpy as np  # noqa: E402

LLMC_MAGIC_U16 = 20240520  # version 1, uint16 tokens
LLMC_MAGIC_U32 = 20240801  # version 7, uint32 tokens
LLMC_HEADER_BYTES = 1024

CONFIG_DEFAULTS = {
    "norm_eps": 1e-6,
    "rope_base": 10000.0,
    "tie_embeddings": True,
    "recurrence": True,
    "init_std": 0.02,
}
CONFIG_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "d_ffn",
               "norm_eps", "rope_base", "tie_embeddings", "recurrence", "init_std")


class InputError(Exception):
    """Bad input: a file, a config value or a pattern text; the message names it."""


# --------------------------------------------------------------------------- config

def _scalar(value):
    """Turns a YAML scalar (or an already parsed value) into bool / int / float / str."""
    if not isinstance(value, str):
        return value
    s = value.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    if s.lower() in ("true", "yes", "on"):
        return True
    if s.lower() in ("false", "no", "off"):
        return False
    for convert in (int, float):
        try:
            return convert(s)
        except ValueError:
            pass
    return s


def _parse_flow_mapping(text):
    """`{a: 1, b: 2}` -> {"a": "1", "b": "2"} (flat, no nesting)."""
    inner = text.strip()[1:-1]
    result = {}
    for item in filter(None, (part.strip() for part in inner.split(","))):
        key, _, value = item.partition(":")
        result[key.strip()] = value.strip()
    return result


def _parse_simple_yaml(text):
    """Enough YAML for configs: `key: value` lines, one level of indented sections, flow maps."""
    if text.strip().startswith("{"):
        return _parse_flow_mapping(text)
    top, section = {}, None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.strip().startswith("#") or line.strip() == "---":
            continue
        key, _, value = line.strip().partition(":")
        key, value = key.strip(), value.strip()
        if line[0] in " \t" and section is not None:
            top[section][key] = value
        elif value == "":
            section = key
            top[section] = {}
        else:
            top[key] = _parse_flow_mapping(value) if value.startswith("{") else value
            section = None
    return top


def parse_model_config(text, strict=False):
    """Parses the model config YAML (flat keys, or a `model:` section) into a normalised dict.

    Keys this reference does not know are kept as they are unless strict (SPEC §10 allows more)."""
    try:
        import yaml  # optional
        data = yaml.safe_load(text)
    except ImportError:
        data = _parse_simple_yaml(text)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict):
        raise InputError("model config is not a mapping: %r" % (text,))
    return normalise_config({str(k): _scalar(v) for k, v in data.items()}, strict)


def normalise_config(config, strict=True):
    """Fills SPEC defaults, checks the keys and the basic constraints."""
    cfg = dict(CONFIG_DEFAULTS)
    cfg.update({k: _scalar(v) for k, v in config.items()})
    for key in ("vocab_size", "d_model", "n_layers", "n_heads"):
        if key not in cfg:
            raise InputError("model config lacks %s" % key)
    cfg.setdefault("d_ffn", 4 * int(cfg["d_model"]))
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown and strict:
        raise InputError("unknown model config key(s): %s" % ", ".join(unknown))
    for key in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ffn"):
        cfg[key] = int(cfg[key])
        if cfg[key] < 1:
            raise InputError("model.%s must be >= 1" % key)
    for key in ("norm_eps", "rope_base", "init_std"):
        cfg[key] = float(cfg[key])
    for key in ("tie_embeddings", "recurrence"):
        if not isinstance(cfg[key], bool):
            raise InputError("model.%s must be true or false" % key)
    if cfg["d_model"] % cfg["n_heads"] or (cfg["d_model"] // cfg["n_heads"]) % 2:
        raise InputError("model.d_model must be n_heads times an even head width")
    return cfg


def config_to_yaml(cfg):
    """Flat `key: value` YAML text of a model config."""
    def fmt(v):
        return ("true" if v else "false") if isinstance(v, bool) else repr(v)
    return "".join("%s: %s\n" % (k, fmt(cfg[k])) for k in CONFIG_KEYS if k in cfg)


# ---------------------------------------------------------------------- checkpoints

def parameter_shapes(cfg):
    """SPEC §7 dataset names under /model and their shapes."""
    V, d, f = cfg["vocab_size"], cfg["d_model"], cfg["d_ffn"]
    shapes = {"embed/weight": (V, d)}
    for i in range(cfg["n_layers"]):
        shapes["layers/%d/attn_norm/weight" % i] = (d,)
        shapes["layers/%d/attn/in_proj/weight" % i] = ((5 if cfg["recurrence"] else 4) * d, d)
        shapes["layers/%d/attn/out_proj/weight" % i] = (d, d)
        shapes["layers/%d/ffn_norm/weight" % i] = (d,)
        shapes["layers/%d/ffn/fc1/weight" % i] = (f, d)
        shapes["layers/%d/ffn/fc2/weight" % i] = (d, f)
    shapes["final_norm/weight"] = (d,)
    if not cfg["tie_embeddings"]:
        shapes["lm_head/weight"] = (V, d)
    return shapes


def random_parameters(cfg, std=None, seed=0, norm_jitter=0.0):
    """Matrices ~ Normal(0, std); norm weights 1 (+ Normal(0, norm_jitter) if asked)."""
    rng = np.random.default_rng(seed)
    std = cfg["init_std"] if std is None else std
    params = {}
    for name, shape in parameter_shapes(cfg).items():
        if len(shape) == 1:
            params[name] = 1.0 + norm_jitter * rng.standard_normal(shape)
        else:
            params[name] = std * rng.standard_normal(shape)
    return {k: v.astype(np.float32) for k, v in params.items()}


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("h5py is needed (Debian: python3-h5py; try /usr/bin/python3)") from exc
    return h5py


CHUNK_ELEMENTS = 1 << 20  # ratplus's largest chunk: 4 MiB of float32 (checkpoint/hdf5_file.cpp)


def ratplus_chunks(shape):
    """The chunk shape ratplus's writer gives a dataset: whole rows, at most CHUNK_ELEMENTS."""
    if len(shape) == 1:
        return (min(shape[0], CHUNK_ELEMENTS),)
    cols = min(shape[1], CHUNK_ELEMENTS)
    return (min(shape[0], max(1, CHUNK_ELEMENTS // cols)), cols)


def write_checkpoint(path, config, params=None, std=None, seed=0, norm_jitter=0.0,
                     fixed_length_config=False, checksums=False):
    """Writes an inference checkpoint (SPEC §7) and returns its normalised config.

    params defaults to random weights; fixed_length_config stores the `config` attribute
    as a fixed-length byte string instead of h5py's default variable-length UTF-8 string;
    checksums stores every dataset as ratplus does, in its chunks with a Fletcher-32 checksum,
    so that `ratplus ckpt inspect --verify` can vouch for the file.
    """
    h5py = _h5py()
    cfg = normalise_config(config)
    if params is None:
        params = random_parameters(cfg, std=std, seed=seed, norm_jitter=norm_jitter)
    text = config_to_yaml(cfg)
    with h5py.File(path, "w") as f:
        group = f.create_group("model")
        group.attrs["config"] = np.bytes_(text.encode()) if fixed_length_config else text
        for name, array in params.items():
            data = np.asarray(array, dtype=np.float32)
            if checksums:
                group.create_dataset(name, data=data, chunks=ratplus_chunks(data.shape),
                                     fletcher32=True)
            else:
                group.create_dataset(name, data=data)
    return cfg


def _attr_text(value):
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size == 1 else value.tolist()
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise InputError("the config attribute is not text")
    return value


def load_checkpoint(path, dtype=np.float64):
    """Returns (config, params) with params as arrays of dtype keyed by SPEC §7 names."""
    h5py = _h5py()
    if not os.path.isfile(path):
        raise InputError("%s: no such file" % path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError("%s: not a readable HDF5 file (%s)" % (path, exc)) from exc
    with f:
        if "model" not in f:
            raise InputError("%s: no /model group" % path)
        if "config" not in f["model"].attrs:
            raise InputError("%s: /model has no config attribute" % path)
        cfg = parse_model_config(_attr_text(f["model"].attrs["config"]))
        params = {}
        for name, shape in parameter_shapes(cfg).items():
            if name not in f["model"]:
                raise InputError("%s: missing dataset /model/%s" % (path, name))
            data = f["model"][name][()]
            if data.shape != shape:
                raise InputError("%s: /model/%s has shape %s, expected %s"
                                 % (path, name, data.shape, shape))
            params[name] = data.astype(dtype, copy=False)
    return cfg, params


# ------------------------------------------------------------------------- patterns

def _parse_base_pattern(text):
    """`dense`, `dilated:D=..,W=..,P=..`, `local:W=..,P=..`, `topk:B=..,K=..,W=..,P=..,D=..,score=..`
    -> ("dilated", D, W, P), ("topk", B, K, W, P, D, score) etc."""
    if text == "dense":
        return ("dense",)
    kind, colon, rest = text.partition(":")
    allowed = {"dilated": ("D", "W", "P"), "local": ("W", "P"), "topk": ("B", "K", "W", "P", "D", "score")}
    if kind not in allowed or (colon and not rest):
        raise InputError("bad pattern %r" % text)
    values = {}
    for item in rest.split(",") if rest else []:
        key, eq, value = item.partition("=")
        valid = value in ("quest", "moba") if key == "score" else re.fullmatch(r"\d+", value)
        if not eq or key not in allowed[kind] or key in values or not valid:
            raise InputError("bad pattern %r (at %r)" % (text, item))
        values[key] = value if key == "score" else int(value)
    if kind == "topk":
        if values.get("B", 64) < 1:
            raise InputError("bad pattern %r: topk needs B >= 1" % text)
        return ("topk", values.get("B", 64), values.get("K", 8), values.get("W", 0), values.get("P", 0),
                values.get("D", 0), values.get("score", "quest"))
    if kind == "dilated":
        if values.get("D", 0) < 1:
            raise InputError("bad pattern %r: dilated needs D >= 1" % text)
        return ("dilated", values["D"], values.get("W", 0), values.get("P", 0))
    return ("local", values.get("W", 0), values.get("P", 0))


def _parse_layer_pattern(text, n_heads):
    """A pattern for one layer: a base pattern or `heads=h1:P1+h2:P2...`; -> list of H base patterns."""
    if not text.startswith("heads="):
        return [_parse_base_pattern(text)] * n_heads
    heads = []
    for group in text[len("heads="):].split("+"):
        count, colon, pattern = group.partition(":")
        if not colon or not re.fullmatch(r"\d+", count) or int(count) < 1:
            raise InputError("bad head group %r in pattern %r" % (group, text))
        heads += [_parse_base_pattern(pattern)] * int(count)
    if len(heads) != n_heads:
        raise InputError("pattern %r covers %d heads, the model has %d" % (text, len(heads), n_heads))
    return heads


def parse_pattern(text, n_layers, n_heads):
    """Pattern text of SPEC §10 -> per layer, per head, a base pattern tuple."""
    try:
        if not text.startswith("layers="):
            return [_parse_layer_pattern(text, n_heads)] * n_layers
        layers = []
        for item in text[len("layers="):].split("|"):
            repeat = re.fullmatch(r"(.*)\*(\d+)", item)
            item, times = (repeat.group(1), int(repeat.group(2))) if repeat else (item, 1)
            if times < 1:
                raise InputError("bad repeat count in %r" % item)
            layers += [_parse_layer_pattern(item, n_heads)] * times
        if len(layers) != n_layers:
            raise InputError("gives %d layers, the model has %d" % (len(layers), n_layers))
        return layers
    except InputError as exc:
        raise InputError("pattern %r: %s" % (text, exc)) from exc


def topk_mask(pattern, q, k):
    """T×T mask of a top-k block head (SPEC §6) from its post-RoPE queries and keys [T, dh]: for query t the
    blocks b = 0 … t // B of B keys, its own block, the K best-scoring earlier blocks (ties to the lower b),
    local(W, P) and, when D >= 1, the positions (j + 1) mod D = 0."""
    _, B, K, W, P, D, score = pattern
    T = q.shape[0]
    t = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    mask = (j <= t) & ((t - j <= W) | (j < P) | ((j + 1) % D == 0 if D >= 1 else False))
    for query in range(T):
        own = query // B
        scores = []
        for b in range(own):
            block = k[b * B:(b + 1) * B]
            if score == "quest":
                scores.append(np.sum(np.maximum(q[query] * block.min(axis=0), q[query] * block.max(axis=0))))
            else:
                scores.append(q[query] @ block.mean(axis=0))
        chosen = sorted(range(own), key=lambda b: (-scores[b], b))[:K] + [own]
        for b in chosen:
            mask[query, b * B:min((b + 1) * B, query + 1)] = True
    return mask


def pattern_mask(pattern, T):
    """T×T boolean mask: mask[t, j] is True when query t may attend to key j (SPEC §3)."""
    t = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    causal = j <= t
    if pattern[0] == "dense":
        return causal
    if pattern[0] == "local":
        _, W, P = pattern
        return causal & ((t - j <= W) | (j < P))
    if pattern[0] == "dilated":
        _, D, W, P = pattern
        return causal & ((t - j <= W) | (j < P) | ((j + 1) % D == 0))
    raise ValueError(pattern)


# ---------------------------------------------------------------------------- model

def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def gated_recurrence(k, v, a):
    """k̃_t = a_t k̃_{t-1} + (1 - a_t) k_t (same for v), starting from zero; arrays [T, d]."""
    k_out, v_out = np.zeros_like(k), np.zeros_like(v)
    k_prev, v_prev = np.zeros(k.shape[1]), np.zeros(v.shape[1])
    for t in range(k.shape[0]):
        k_prev = a[t] * k_prev + (1.0 - a[t]) * k[t]
        v_prev = a[t] * v_prev + (1.0 - a[t]) * v[t]
        k_out[t], v_out[t] = k_prev, v_prev
    return k_out, v_out


def rope(x, positions, base):
    """Rotate-half RoPE on [T, H, dh]: pairs (c, c + dh/2), angle = pos · base^(-2c/dh)."""
    half = x.shape[-1] // 2
    inv_freq = base ** (-2.0 * np.arange(half) / x.shape[-1])
    angle = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward_logits(cfg, params, tokens, layer_patterns):
    """Logits [T, V] of one sequence; layer_patterns from parse_pattern."""
    T = len(tokens)
    d, H = cfg["d_model"], cfg["n_heads"]
    dh, eps = d // H, cfg["norm_eps"]
    masks = {}  # base pattern -> mask, built once per call
    x = params["embed/weight"][np.asarray(tokens)]
    for i in range(cfg["n_layers"]):
        def w(name):
            return params["layers/%d/%s/weight" % (i, name)]
        h = rms_norm(x, w("attn_norm"), eps)
        proj = h @ w("attn/in_proj").T
        o, q, k, v = (proj[:, n * d:(n + 1) * d] for n in range(4))
        if cfg["recurrence"]:
            k, v = gated_recurrence(k, v, sigmoid(proj[:, 4 * d:5 * d]))
        positions = np.arange(T)
        q = rope(q.reshape(T, H, dh), positions, cfg["rope_base"])
        k = rope(k.reshape(T, H, dh), positions, cfg["rope_base"])
        v = v.reshape(T, H, dh)
        out = np.zeros((T, H, dh))
        for head in range(H):
            pattern = layer_patterns[i][head]
            if pattern[0] == "topk":  # the mask depends on this head's queries and keys
                mask = topk_mask(pattern, q[:, head, :], k[:, head, :])
            else:
                if pattern not in masks:
                    masks[pattern] = pattern_mask(pattern, T)
                mask = masks[pattern]
            scores = q[:, head, :] @ k[:, head, :].T / math.sqrt(dh)
            scores = np.where(mask, scores, -np.inf)
            probs = np.exp(scores - scores.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            out[:, head, :] = probs @ v[:, head, :]
        x = x + (out.reshape(T, d) * sigmoid(o)) @ w("attn/out_proj").T
        h = rms_norm(x, w("ffn_norm"), eps)
        x = x + gelu(h @ w("ffn/fc1").T) @ w("ffn/fc2").T
    h = rms_norm(x, params["final_norm/weight"], eps)
    head = params["embed/weight"] if cfg["tie_embeddings"] else params["lm_head/weight"]
    return h @ head.T


def token_losses(cfg, params, inputs, targets, layer_patterns):
    """Cross-entropy per position of one window (NaN where the target is ignored)."""
    logits = forward_logits(cfg, params, inputs, layer_patterns)
    top = logits.max(axis=1, keepdims=True)
    log_z = (top + np.log(np.exp(logits - top).sum(axis=1, keepdims=True)))[:, 0]
    targets = np.asarray(targets)
    losses = np.full(len(targets), np.nan)
    keep = targets >= 0
    losses[keep] = log_z[keep] - logits[np.arange(len(targets))[keep], targets[keep]]
    return losses


def evaluate(cfg, params, inputs, targets, layer_patterns):
    """(mean loss over non-ignored labels, their count) for windows [N, T]."""
    total, count = 0.0, 0
    for x, y in zip(inputs, targets):
        losses = token_losses(cfg, params, x, y, layer_patterns)
        total += np.nansum(losses)
        count += int(np.sum(~np.isnan(losses)))
    if count == 0:
        raise InputError("every label of the evaluated windows is ignored")
    return total / count, count


# ----------------------------------------------------------------------------- data

def read_tokens(path, fmt="auto"):
    """Tokens of one shard as int64; fmt: auto (llm.c header required), llmc, flat_u16, flat_u32."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError("%s: cannot read (%s)" % (path, exc)) from exc
    if fmt in ("flat_u16", "flat_u32"):
        size = 2 if fmt == "flat_u16" else 4
        if len(raw) % size:
            raise InputError("%s: size %d is not a multiple of %d" % (path, len(raw), size))
        return np.frombuffer(raw, dtype="<u%d" % size).astype(np.int64)
    if fmt not in ("auto", "llmc"):
        raise InputError("unknown data format %r" % fmt)
    if len(raw) < LLMC_HEADER_BYTES:
        raise InputError("%s: shorter than the llm.c header" % path)
    header = np.frombuffer(raw[:LLMC_HEADER_BYTES], dtype="<i4")
    kinds = {(LLMC_MAGIC_U16, 1): "<u2", (LLMC_MAGIC_U32, 7): "<u4"}
    if (int(header[0]), int(header[1])) not in kinds:
        raise InputError("%s: not an llm.c shard (magic %d, version %d)"
                         % (path, header[0], header[1]))
    dtype = np.dtype(kinds[(int(header[0]), int(header[1]))])
    count = int(header[2])
    if count < 0 or len(raw) != LLMC_HEADER_BYTES + count * dtype.itemsize:
        raise InputError("%s: size %d does not match the header's %d tokens"
                         % (path, len(raw), count))
    return np.frombuffer(raw[LLMC_HEADER_BYTES:], dtype=dtype).astype(np.int64)


def write_llmc_shard(path, tokens, version=1):
    """Writes an llm.c shard: version 1 (uint16) or 7 (uint32)."""
    header = np.zeros(256, dtype="<i4")
    header[0] = LLMC_MAGIC_U16 if version == 1 else LLMC_MAGIC_U32
    header[1] = version
    header[2] = len(tokens)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u2" if version == 1 else "<u4").tobytes())


def make_windows(token_arrays, seq_len, n_windows, eos_id=-1, vocab_size=None, names=None):
    """Windows k = 0..N-1 of the concatenated tokens (SPEC §9): tokens[k·T : k·T+T+1].

    Returns (inputs, targets) [N, T]; a target is -1 (ignored) where its input is eos_id.
    """
    tokens = np.concatenate([np.asarray(a, dtype=np.int64) for a in token_arrays])
    if vocab_size is not None:
        for index, array in enumerate(token_arrays):
            bad = np.nonzero(np.asarray(array) >= vocab_size)[0]
            if len(bad):
                name = names[index] if names else "shard %d" % index
                raise InputError("%s: token id %d >= vocab_size %d at token offset %d"
                                 % (name, array[bad[0]], vocab_size, bad[0]))
    if seq_len < 1 or n_windows < 1:
        raise InputError("seq_len and the number of windows must be >= 1")
    if n_windows * seq_len + 1 > len(tokens):
        raise InputError("%d windows of %d tokens need %d tokens, the data has %d"
                         % (n_windows, seq_len, n_windows * seq_len + 1, len(tokens)))
    inputs = np.stack([tokens[k * seq_len:k * seq_len + seq_len] for k in range(n_windows)])
    targets = np.stack([tokens[k * seq_len + 1:k * seq_len + seq_len + 1] for k in range(n_windows)])
    if eos_id is not None and eos_id >= 0:
        targets = np.where(inputs == eos_id, -1, targets)
    return inputs, targets


def eval_patterns(checkpoint, data_paths, seq_len, batches, patterns, eos_id=-1, fmt="auto"):
    """The `results` list of `ratplus eval` for the given files and pattern texts."""
    cfg, params = load_checkpoint(checkpoint)
    arrays = [read_tokens(p, fmt) for p in data_paths]
    inputs, targets = make_windows(arrays, seq_len, batches, eos_id, cfg["vocab_size"], data_paths)
    results = []
    for text in patterns:
        layer_patterns = parse_pattern(text, cfg["n_layers"], cfg["n_heads"])
        loss, count = evaluate(cfg, params, inputs, targets, layer_patterns)
        results.append({"pattern": text, "loss": loss, "ppl": math.exp(loss), "tokens": count})
    return results


# ------------------------------------------------------------------------ selftests

def selftest():
    """Checks of the reference against itself; returns a list of (name, ok, detail)."""
    checks = []

    def check(name, ok, detail=""):
        checks.append((name, bool(ok), detail))

    rng = np.random.default_rng(1234)
    base = {"vocab_size": 31, "d_model": 16, "n_layers": 2, "n_heads": 2, "d_ffn": 24}
    T = 21
    tokens = rng.integers(0, 31, size=T + 1)
    x, y = tokens[:-1], tokens[1:]

    def loss_of(cfg, params, text, inputs=x, targets=y):
        layer_patterns = parse_pattern(text, cfg["n_layers"], cfg["n_heads"])
        return token_losses(cfg, params, inputs, targets, layer_patterns)

    cfg = normalise_config(base)
    params = {k: v.astype(np.float64) for k, v in
              random_parameters(cfg, std=0.3, seed=5, norm_jitter=0.1).items()}

    # Masks against hand-written sets.
    expected = {
        ("dilated", 4, 0, 0): {9: [3, 7, 9], 3: [3], 2: [2]},
        ("dilated", 3, 1, 2): {9: [0, 1, 2, 5, 8, 9], 1: [0, 1]},
        ("local", 2, 1): {9: [0, 7, 8, 9], 0: [0]},
    }
    for pattern, rows in expected.items():
        mask = pattern_mask(pattern, 10)
        for t, keys in rows.items():
            check("mask %s row %d" % (pattern, t), list(np.nonzero(mask[t])[0]) == keys,
                  "got %s" % list(np.nonzero(mask[t])[0]))

    # A top-k mask against hand-computed scores: keys k_j = j·e0 and q = e0 make block scores grow with b
    # (quest and moba alike), so the K highest earlier blocks are the K latest; q = −e0 picks the earliest.
    keys = np.zeros((10, 2))
    keys[:, 0] = np.arange(10)
    for sign, t, want in ((1, 9, [4, 5, 6, 7, 8, 9]), (-1, 9, [0, 1, 2, 3, 8, 9]), (1, 3, [0, 1, 2, 3])):
        for score in ("quest", "moba"):
            mask = topk_mask(("topk", 2, 2, 0, 0, 0, score), np.tile([sign, 0.0], (10, 1)), keys)
            check("topk mask %s q=%+d row %d" % (score, sign, t), list(np.nonzero(mask[t])[0]) == want,
                  "got %s" % list(np.nonzero(mask[t])[0]))
    tied = topk_mask(("topk", 3, 1, 1, 1, 4, "quest"), np.ones((10, 2)), np.ones((10, 2)))
    check("topk ties go to the lower block, with W, P, D", list(np.nonzero(tied[9])[0]) == [0, 1, 2, 3, 7, 8, 9],
          "got %s" % list(np.nonzero(tied[9])[0]))

    # Pattern text.
    check("parse topk defaults", parse_pattern("topk", 1, 1) == [[("topk", 64, 8, 0, 0, 0, "quest")]])
    parsed = parse_pattern("layers=heads=1:dense+1:local:W=3|dilated:D=5,P=1*1", 2, 2)
    check("parse layers/heads", parsed == [[("dense",), ("local", 3, 0)],
                                           [("dilated", 5, 0, 1)] * 2], str(parsed))
    check("parse repeat", parse_pattern("layers=dense*2", 2, 2) == [[("dense",)] * 2] * 2)
    for bad in ("dilated:D=0", "bogus", "layers=dense|dense|dense", "dilated:W=3",
                "heads=1:dense", "local:W=-1", "dilated:D=2,D=3", "dense:W=1", "topk:B=0",
                "topk:score=best", "topk:K=-1", "topk:B=2,B=3", "dilated:D=2,score=quest"):
        try:
            parse_pattern(bad, 2, 2)
            check("reject pattern %r" % bad, False, "accepted")
        except InputError as exc:
            check("reject pattern %r" % bad, bad in str(exc), str(exc))

    # Equivalent patterns give identical losses.
    dense = loss_of(cfg, params, "dense")
    for text in ("dilated:D=1", "dilated:D=7,W=%d" % (T - 1), "local:W=%d" % (T - 1),
                 "local:P=%d" % T, "layers=dense*2", "heads=2:dense", "heads=1:dense+1:dense",
                 "topk:B=4,K=%d" % T, "topk:B=1,K=%d,score=moba" % T, "topk:B=5,K=0,W=%d" % T):
        check("%s == dense" % text, np.allclose(loss_of(cfg, params, text), dense, rtol=0, atol=1e-12))
    check("dilated differs from dense",
          abs(np.mean(loss_of(cfg, params, "dilated:D=4")) - np.mean(dense)) > 1e-4)
    check("topk differs from dense and from its own block alone",
          abs(np.mean(loss_of(cfg, params, "topk:B=3,K=2")) - np.mean(dense)) > 1e-4
          and abs(np.mean(loss_of(cfg, params, "topk:B=3,K=2")) - np.mean(loss_of(cfg, params, "topk:B=3,K=0"))) > 1e-4)

    # Causality: changing later tokens leaves earlier positions' losses unchanged.
    for text in ("dense", "dilated:D=3,W=1,P=1", "layers=local:W=2|dilated:D=4", "topk:B=2,K=2,score=moba"):
        changed = x.copy()
        changed[12:] = (changed[12:] + 7) % 31
        a, b = loss_of(cfg, params, text), loss_of(cfg, params, text, changed, y)
        check("causal %s" % text, np.allclose(a[:12], b[:12], rtol=0, atol=1e-12)
              and not np.allclose(a[12:], b[12:]))

    # Forget gate → 0: the recurrent model equals the attention-only model on raw k, v.
    one = normalise_config(dict(base, n_layers=1))
    p_rec = {k: v.astype(np.float64) for k, v in random_parameters(one, std=0.3, seed=7).items()}
    p_rec["embed/weight"][:, 0] = 3.0            # channel 0 of h is then always > 0 ...
    w_in = p_rec["layers/0/attn/in_proj/weight"]
    w_in[4 * 16:, :] = 0.0
    w_in[4 * 16:, 0] = -200.0                     # ... so g < -50 and a = sigmoid(g) ≈ 0
    p_att = dict(p_rec, **{"layers/0/attn/in_proj/weight": w_in[:4 * 16]})
    att = dict(one, recurrence=False)
    for text in ("dense", "dilated:D=3"):
        check("a -> 0 equals attention-only (%s)" % text,
              np.allclose(loss_of(one, p_rec, text), loss_of(att, p_att, text), rtol=0, atol=1e-10))

    # The recurrence against its closed form for a constant gate.
    k = rng.standard_normal((6, 3))
    a = np.full((6, 3), 0.25)
    k_rec, _ = gated_recurrence(k, k, a)
    closed = sum(0.25 ** (5 - s) * 0.75 * k[s] for s in range(6))
    check("recurrence closed form", np.allclose(k_rec[5], closed, rtol=0, atol=1e-12))

    # RoPE: norm preserving, and the score depends only on the position difference.
    q, kk = rng.standard_normal((1, 1, 8)), rng.standard_normal((1, 1, 8))
    s1 = np.sum(rope(q, [9], 100.0) * rope(kk, [4], 100.0))
    s2 = np.sum(rope(q, [15], 100.0) * rope(kk, [10], 100.0))
    check("rope relative", abs(s1 - s2) < 1e-12, "%r vs %r" % (s1, s2))
    check("rope norm", abs(np.linalg.norm(rope(q, [7], 100.0)) - np.linalg.norm(q)) < 1e-12)
    check("rope position 0 is identity", np.allclose(rope(q, [0], 100.0), q, rtol=0, atol=0))

    # Near-zero weights: uniform prediction, loss = ln V.
    tiny = {k: v.astype(np.float64) for k, v in random_parameters(cfg, std=1e-6, seed=3).items()}
    got = float(np.mean(loss_of(cfg, tiny, "dense")))
    check("tiny weights give ln V", abs(got - math.log(31)) < 1e-4, "%r" % got)

    # GELU exact values.
    check("gelu", np.allclose(gelu(np.array([-1.0, 0.0, 2.0])),
                              [-0.15865525393145707, 0.0, 1.9544997361036416], rtol=1e-12))

    # Windows: targets shifted by one, ignored where the input is eos.
    inputs, targets = make_windows([np.arange(10), np.arange(10, 20)], 4, 3, eos_id=5)
    check("windows", inputs[1].tolist() == [4, 5, 6, 7] and targets[1].tolist() == [5, -1, 7, 8]
          and inputs[2].tolist() == [8, 9, 10, 11] and targets[2].tolist() == [9, 10, 11, 12])
    return checks


# ------------------------------------------------------------------------------ CLI

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="loss per pattern, JSON like `ratplus eval`")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--data", required=True, nargs="+")
    ev.add_argument("--seq-len", type=int, required=True)
    ev.add_argument("--batches", type=int, required=True)
    ev.add_argument("--pattern", action="append", required=True)
    ev.add_argument("--eos-id", type=int, default=-1)
    ev.add_argument("--format", default="auto", choices=("auto", "llmc", "flat_u16", "flat_u32"))
    ev.add_argument("--json")
    ini = sub.add_parser("init", help="random inference checkpoint")
    ini.add_argument("--out", required=True)
    ini.add_argument("--std", type=float)
    ini.add_argument("--seed", type=int, default=0)
    ini.add_argument("settings", nargs="*", metavar="key=value")
    sub.add_parser("selftest", help="checks of the reference against itself")
    args = parser.parse_args(argv)

    try:
        if args.command == "selftest":
            checks = selftest()
            for name, ok, detail in checks:
                if not ok:
                    print("FAIL %s %s" % (name, detail))
            failed = sum(not ok for _, ok, _ in checks)
            print("%d passed, %d failed" % (len(checks) - failed, failed))
            return 1 if failed else 0
        if args.command == "init":
            config = dict(s.split("=", 1) for s in args.settings)
            write_checkpoint(args.out, config, std=args.std, seed=args.seed)
            return 0
        results = eval_patterns(args.checkpoint, args.data, args.seq_len, args.batches,
                                args.pattern, args.eos_id, args.format)
        text = json.dumps({"results": results})
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text + "\n")
        return 0
    except InputError as exc:
        print("ratplus_reference: %s" % exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
