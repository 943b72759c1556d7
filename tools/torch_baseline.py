#!/usr/bin/env python3
"""Plain PyTorch implementation of the RAT+ model in SPEC.md, for side-by-side measurements.

It is written the way a PyTorch user would write the model today, so that the numbers of the
C++/CUDA code can be compared with a fair baseline on the same GPU:

- `RatPlus` is an nn.Module whose parameters carry the SPEC §7 names (`layers.3.attn.in_proj.weight`
  is `/model/layers/3/attn/in_proj/weight`), so it loads the project's HDF5 checkpoints (through the
  reader of tools/ratplus_reference.py). Fused in_proj (rows o, q, k, v, g), RMSNorm, exact GELU,
  RoPE (rotate-half) on q and the recurrent keys, output gate, tied or untied head,
  cross-entropy with ignore_index = -1.
- The gated recurrence (SPEC §2 step 4) is a torch.autograd.Function whose forward and backward are
  each one parallel scan over time in fp32: torch._higher_order_ops.associative_scan, compiled, on
  CUDA when that PyTorch has it; otherwise a log-depth Hillis-Steele scan made of torch ops.
- Attention: dense is F.scaled_dot_product_attention(is_causal=True). The dilated and local patterns
  of SPEC §3 run on CUDA through compiled FlexAttention: a dilated head group attends to
  [its T//D dilated keys, gathered; all T keys], with a block mask that admits a gathered key
  outside the local window and initial positions, and a full key inside them, so block sparsity
  skips the rest. Elsewhere (CPU, or a PyTorch without FlexAttention) a pattern is an explicit
  T×T boolean mask for SDPA (or for a plain softmax when SDPA is missing): correct, slower.
  Per-layer and per-head-group patterns (SPEC §10 text) run one attention call per head group.

Commands (each prints one JSON object on stdout):
  torch_baseline.py loss --checkpoint F --data F [F ...] --seq-len T --batches N --pattern P
                         [--pattern P ...] [--eos-id E] [--device cpu|cuda] [--dtype fp32|bf16]
      Loss per pattern over windows k = tokens[k·T : k·T+T+1], as `ratplus eval` computes it.
  torch_baseline.py bench-train --config-size 1.5b|2.6b|7.6b|custom [--d-model D --n-layers L
                         --n-heads H --vocab V --d-ffn F] --seq-len 4096 --micro-batch 2
                         --objective dense|joint [--arl-dilation 64] [--compile] [--steps 10 --warmup 3]
      Random weights and tokens; bf16 autocast, fp32 master weights, fused AdamW, clipping at 1.0;
      joint = dilated(L*) pass then dense pass on the same batch, each with its own update (SPEC §4).
      Reports tokens/s, median ms per step (CUDA events, after warm-up), peak memory and MFU
      (SPEC §8, against the H200/H100 SXM dense bf16 peak of 989 TFLOP/s).
  torch_baseline.py bench-attention --seq-len 4096 --heads 16 --head-dim 128 --batch 2
                         --pattern dense|dilated:D=16|... [--backward]
      Attention alone in bf16: time and TFLOP/s (4·B·H·T·k·dh per forward, k the mean keys per
      query; backward counted as 2.5× forward).
  torch_baseline.py bench-scan --seq-len 4096 --batch 2 --d-model 2048
      The recurrence (gate sigmoid and both scans) on bf16 k, v, g: time and effective GB/s for the
      bytes it must move (read k, v, g; write k̃, ṽ; bf16).

Exit codes: 0 ok, 2 bad input (message on stderr).
"""

import argparse
import contextlib
import itertools
import json
import math
import statistics
import sys
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import ratplus_reference as ref

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    create_block_mask = flex_attention = None
try:
    from torch._higher_order_ops.associative_scan import associative_scan
except ImportError:
    associative_scan = None

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
HAS_COMPILE = hasattr(torch, "compile")
PEAK_TFLOPS = 989.0  # H200 / H100 SXM dense bf16
MODEL_SIZES = {  # SPEC §2: name -> (n_layers, d_model, n_heads)
    "1.5b": (24, 2048, 16),
    "2.6b": (28, 2560, 20),
    "7.6b": (32, 4096, 32),
}


# ------------------------------------------------------------------------ recurrence

def _combine(earlier, later):
    """Composition of two steps of h ← a·h + b (for keys and values, one gate)."""
    a1, k1, v1 = earlier
    a2, k2, v2 = later
    return a1 * a2, a2 * k1 + k2, a2 * v1 + v2


def _associative_scan(a, bk, bv, reverse):
    _, hk, hv = associative_scan(_combine, (a, bk, bv), 1, reverse=reverse)
    return hk, hv


def _doubling_scan(a, bk, bv, reverse):
    """Hillis-Steele: after the step with offset s, position t holds the composition of the steps
    (t − 2s, t]; log2(T) steps of whole-tensor ops."""
    if reverse:
        hk, hv = _doubling_scan(a.flip(1), bk.flip(1), bv.flip(1), False)
        return hk.flip(1), hv.flip(1)
    b = torch.stack((bk, bv))
    s = 1
    while s < a.shape[1]:
        b = torch.cat((b[:, :, :s], torch.addcmul(b[:, :, s:], a[:, s:], b[:, :, :-s])), dim=2)
        a = torch.cat((a[:, :s], a[:, s:] * a[:, :-s]), dim=1)
        s *= 2
    return b[0], b[1]


if HAS_COMPILE:
    _cuda_scan = torch.compile(_associative_scan if associative_scan else _doubling_scan, dynamic=False)
    CUDA_SCAN_NAME = "associative_scan (compiled)" if associative_scan else "hillis-steele (compiled)"
else:
    _cuda_scan = _doubling_scan
    CUDA_SCAN_NAME = "hillis-steele"


def linear_scan(a, bk, bv, reverse=False):
    """h_t = a_t·h_{t−1} + b_t along dim 1 from h = 0 (from the end when reverse), for bk and bv."""
    return (_cuda_scan if a.is_cuda else _doubling_scan)(a, bk, bv, reverse)


def scan_name(device):
    return CUDA_SCAN_NAME if torch.device(device).type == "cuda" else "hillis-steele"


class GatedRecurrence(torch.autograd.Function):
    """k̃_t = a_t k̃_{t−1} + (1 − a_t) k_t, ṽ likewise, a = sigmoid(g); tensors [B, T, d].

    Computed in fp32 (fp64 inputs stay fp64), returned in the input dtype. The backward is the
    reverse scan δ_t = ∂L/∂h_t + a_{t+1} δ_{t+1}; then ∂L/∂x_t = (1 − a_t) δ_t and
    ∂L/∂a_t = δ_t (h_{t−1} − x_t), summed over keys and values."""

    @staticmethod
    def forward(ctx, k, v, g):
        acc = torch.promote_types(g.dtype, torch.float32)
        a = torch.sigmoid(g.to(acc))
        hk, hv = linear_scan(a, (1 - a) * k.to(acc), (1 - a) * v.to(acc))
        hk, hv = hk.to(k.dtype), hv.to(v.dtype)
        ctx.save_for_backward(k, v, g, hk, hv)
        return hk, hv

    @staticmethod
    def backward(ctx, grad_hk, grad_hv):
        k, v, g, hk, hv = ctx.saved_tensors
        acc = torch.promote_types(g.dtype, torch.float32)
        a = torch.sigmoid(g.to(acc))
        a_next = F.pad(a[:, 1:], (0, 0, 0, 1))
        delta_k, delta_v = linear_scan(a_next, grad_hk.to(acc), grad_hv.to(acc), reverse=True)
        prev_k = F.pad(hk[:, :-1].to(acc), (0, 0, 1, 0))
        prev_v = F.pad(hv[:, :-1].to(acc), (0, 0, 1, 0))
        grad_a = delta_k * (prev_k - k.to(acc)) + delta_v * (prev_v - v.to(acc))
        return ((1 - a) * delta_k).to(k.dtype), ((1 - a) * delta_v).to(v.dtype), \
            (grad_a * a * (1 - a)).to(g.dtype)


# ------------------------------------------------------------------------- attention

class HeadGroup(NamedTuple):
    """Heads [start, stop) of one layer that share a base pattern (ratplus_reference form)."""
    start: int
    stop: int
    pattern: tuple
    n_gathered: int  # FlexAttention: dilated keys gathered in front of the T keys
    mask: object     # BlockMask (FlexAttention), bool [T, T] (masked SDPA), or None (dense)


def canonical_pattern(pattern, T):
    """Patterns whose key set is the whole causal set become ("dense",)."""
    if pattern[0] == "dilated":
        _, D, W, P = pattern
        if D == 1 or W >= T - 1 or P >= T:
            return ("dense",)
    if pattern[0] == "local" and (pattern[1] >= T - 1 or pattern[2] >= T):
        return ("dense",)
    return pattern


def pattern_mask(pattern, T, device):
    """SPEC §3 predicate as a T×T boolean mask (True: query t may attend to key j)."""
    t = torch.arange(T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    allowed = j <= t
    if pattern[0] == "dense":
        return allowed
    W, P = pattern[-2:]
    near = (t - j <= W) | (j < P)
    if pattern[0] == "dilated":
        near = near | ((j + 1) % pattern[1] == 0)
    return allowed & near


def gathered_mask_mod(n_gathered, D, W, P):
    """Mask over the keys [gathered dilated keys; all T keys]: gathered key c is position
    (c + 1)·D − 1 and counts where neither the local window nor the initial P cover it."""
    def mask_mod(b, h, q_idx, kv_idx):
        pos = (kv_idx + 1) * D - 1
        j = kv_idx - n_gathered
        dilated = (kv_idx < n_gathered) & (pos <= q_idx) & (q_idx - pos > W) & (pos >= P)
        near = (kv_idx >= n_gathered) & (j <= q_idx) & ((q_idx - j <= W) | (j < P))
        return dilated | near
    return mask_mod


def uses_flex(device):
    return torch.device(device).type == "cuda" and flex_attention is not None and HAS_COMPILE


def attention_kernel(pattern, device):
    """Name of what computes a base pattern on this device."""
    if pattern == ("dense",) and HAS_SDPA:
        return "sdpa (causal)"
    if pattern != ("dense",) and uses_flex(device):
        return "flex_attention (compiled, gathered dilated keys)"
    return "sdpa (boolean mask)" if HAS_SDPA else "softmax (boolean mask)"


def head_group(start, stop, pattern, T, device, cache):
    pattern = canonical_pattern(pattern, T)
    if pattern not in cache:
        n_gathered, mask = 0, None
        if pattern != ("dense",) and uses_flex(device):
            D = pattern[1] if pattern[0] == "dilated" else 1
            W, P = pattern[-2:]
            n_gathered = T // D if pattern[0] == "dilated" else 0
            mask = create_block_mask(gathered_mask_mod(n_gathered, D, W, P), None, None,
                                     T, n_gathered + T, device=device)
        elif pattern != ("dense",) or not HAS_SDPA:
            mask = pattern_mask(pattern, T, device)
        cache[pattern] = (n_gathered, mask)
    return HeadGroup(start, stop, pattern, *cache[pattern])


def attention_plan(layer_patterns, T, device):
    """Per layer, the head groups (with their masks) of ratplus_reference.parse_pattern output."""
    cache, plan = {}, []
    for heads in layer_patterns:
        groups, start = [], 0
        for pattern, run in itertools.groupby(heads):
            stop = start + len(list(run))
            groups.append(head_group(start, stop, pattern, T, device, cache))
            start = stop
        plan.append(tuple(groups))
    return plan


if flex_attention is not None and HAS_COMPILE:
    _flex_attention = torch.compile(flex_attention, dynamic=False)


def attend(q, k, v, group):
    """Softmax attention of q, k, v [B, h, T, dh] (one head group) under its pattern."""
    if group.pattern == ("dense",) and group.mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if group.pattern != ("dense",) and uses_flex(q.device):
        if group.n_gathered:
            D = group.pattern[1]
            k = torch.cat((k[:, :, D - 1:group.n_gathered * D:D], k), dim=2)
            v = torch.cat((v[:, :, D - 1:group.n_gathered * D:D], v), dim=2)
        return _flex_attention(q, k, v, block_mask=group.mask)
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=group.mask)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    probs = scores.masked_fill(~group.mask, float("-inf")).softmax(dim=-1)
    return torch.matmul(probs.to(v.dtype), v)


def attend_groups(q, k, v, groups):
    if len(groups) == 1:
        return attend(q, k, v, groups[0])
    return torch.cat([attend(q[:, g.start:g.stop], k[:, g.start:g.stop], v[:, g.start:g.stop], g)
                      for g in groups], dim=1)


def mean_keys(pattern, T):
    """Mean number of keys per query of a base pattern over positions 0 … T−1 (SPEC §3)."""
    if pattern[0] == "dense":
        return (T + 1) / 2
    W, P = pattern[-2:]
    t = np.arange(T)
    lo = np.maximum(t - W, 0)  # the local window is [lo, t]
    count = t - lo + 1 + np.minimum(P, lo)  # plus the initial positions below the window
    if pattern[0] == "dilated":  # plus positions j in [P, lo) with (j + 1) mod D = 0
        D = pattern[1]
        count += np.maximum(lo // D - np.minimum(P, lo) // D, 0)
    return float(count.mean())


def plan_mean_keys(layer_patterns, T):
    return float(np.mean([[mean_keys(p, T) for p in heads] for heads in layer_patterns]))


# ----------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, d, eps, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d, device=device))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, dh, base, device):
    """cos, sin [T, dh/2] in fp32 of angle = pos · base^(−2c/dh), computed in fp64."""
    inv_freq = base ** (-2.0 * torch.arange(dh // 2, dtype=torch.float64, device=device) / dh)
    angle = torch.arange(T, dtype=torch.float64, device=device)[:, None] * inv_freq
    return angle.cos().float(), angle.sin().float()


def rope(x, cos, sin):
    """Rotate-half RoPE over the full head width of x [B, H, T, dh]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg, device=None):
        super().__init__()
        d = cfg["d_model"]
        self.n_heads = cfg["n_heads"]
        self.recurrence = cfg["recurrence"]
        self.in_proj = nn.Linear(d, (5 if self.recurrence else 4) * d, bias=False, device=device)
        self.out_proj = nn.Linear(d, d, bias=False, device=device)

    def forward(self, x, groups, cos, sin):
        B, T, d = x.shape
        o, q, k, v, *g = self.in_proj(x).split(d, dim=-1)
        if self.recurrence:
            k, v = GatedRecurrence.apply(k, v, g[0])

        def heads(t):
            return t.reshape(B, T, self.n_heads, d // self.n_heads).transpose(1, 2)
        v = heads(v)
        q = rope(heads(q), cos, sin).to(v.dtype)
        k = rope(heads(k), cos, sin).to(v.dtype)
        out = attend_groups(q, k, v, groups).transpose(1, 2).reshape(B, T, d)
        return self.out_proj(out * torch.sigmoid(o))


class FeedForward(nn.Module):
    def __init__(self, cfg, device=None):
        super().__init__()
        self.fc1 = nn.Linear(cfg["d_model"], cfg["d_ffn"], bias=False, device=device)
        self.fc2 = nn.Linear(cfg["d_ffn"], cfg["d_model"], bias=False, device=device)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg, device=None):
        super().__init__()
        self.attn_norm = RMSNorm(cfg["d_model"], cfg["norm_eps"], device)
        self.attn = Attention(cfg, device)
        self.ffn_norm = RMSNorm(cfg["d_model"], cfg["norm_eps"], device)
        self.ffn = FeedForward(cfg, device)

    def forward(self, x, groups, cos, sin):
        x = x + self.attn(self.attn_norm(x), groups, cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class RatPlus(nn.Module):
    """The SPEC §2 model; state_dict names are the SPEC §7 paths with '/' written as '.'."""

    def __init__(self, cfg, device=None):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg["vocab_size"], cfg["d_model"], device=device)
        self.layers = nn.ModuleList(Block(cfg, device) for _ in range(cfg["n_layers"]))
        self.final_norm = RMSNorm(cfg["d_model"], cfg["norm_eps"], device)
        if not cfg["tie_embeddings"]:
            self.lm_head = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False, device=device)

    def forward(self, tokens, plan, targets=None):
        """Logits [B, T, V] of tokens [B, T], or the mean loss over targets ≥ 0 when given."""
        cfg = self.cfg
        cos, sin = rope_tables(tokens.shape[1], cfg["d_model"] // cfg["n_heads"], cfg["rope_base"],
                               tokens.device)
        x = self.embed(tokens)
        for layer, groups in zip(self.layers, plan):
            x = layer(x, groups, cos, sin)
        head = self.embed.weight if cfg["tie_embeddings"] else self.lm_head.weight
        logits = F.linear(self.final_norm(x), head)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1)


def load_model(path, device):
    cfg, params = ref.load_checkpoint(path)
    model = RatPlus(cfg, device)
    state = {name.replace("/", "."): torch.from_numpy(array.astype(np.float32))
             for name, array in params.items()}
    model.load_state_dict(state, strict=True)
    return cfg, model


def matmul_params(cfg):
    """N_mat of SPEC §8."""
    d, f = cfg["d_model"], cfg["d_ffn"]
    in_rows = 5 if cfg["recurrence"] else 4
    return cfg["n_layers"] * ((in_rows + 1) * d * d + 2 * d * f) + cfg["vocab_size"] * d


def train_flops_per_token(cfg, keys):
    """3 · (2·N_mat + 4·L·d·k) for one training pass with k mean keys per query (SPEC §8)."""
    return 3 * (2 * matmul_params(cfg) + 4 * cfg["n_layers"] * cfg["d_model"] * keys)


# ------------------------------------------------------------------------ commands

def autocast(device, dtype):
    if dtype == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Timer:
    """Per-step times in ms: CUDA events on a GPU, wall clock on the CPU."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.pending = []

    @contextlib.contextmanager
    def step(self):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.pending.append((start, end))
        else:
            start = time.perf_counter()
            yield
            self.pending.append((start, time.perf_counter()))

    def times_ms(self):
        if self.cuda:
            torch.cuda.synchronize()
            return [s.elapsed_time(e) for s, e in self.pending]
        return [(e - s) * 1e3 for s, e in self.pending]


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def device_info(device):
    info = {"torch": torch.__version__, "device": str(device)}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cmd_loss(args):
    device = torch.device(args.device)
    cfg, model = load_model(args.checkpoint, device)
    model.eval()
    arrays = [ref.read_tokens(path, args.format) for path in args.data]
    inputs, targets = ref.make_windows(arrays, args.seq_len, args.batches, args.eos_id,
                                       cfg["vocab_size"], args.data)
    results = []
    for text in args.pattern:
        plan = attention_plan(ref.parse_pattern(text, cfg["n_layers"], cfg["n_heads"]),
                              args.seq_len, device)
        total, count = 0.0, 0
        for start in range(0, args.batches, args.micro_batch):
            x = torch.from_numpy(inputs[start:start + args.micro_batch]).to(device)
            y = torch.from_numpy(targets[start:start + args.micro_batch]).to(device)
            with torch.no_grad(), autocast(device, args.dtype):
                logits = model(x, plan)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=-1,
                                     reduction="sum").item()
            count += int((y >= 0).sum())
        if count == 0:
            raise ref.InputError("every label of the evaluated windows is ignored")
        results.append({"pattern": text, "loss": total / count, "ppl": math.exp(total / count),
                        "tokens": count})
    return dict({"results": results, "dtype": args.dtype, "scan": scan_name(device)},
                **device_info(device))


def bench_config(args):
    if args.config_size == "custom":
        missing = [n for n in ("d_model", "n_layers", "n_heads") if getattr(args, n) is None]
        if missing:
            raise ref.InputError("--config-size custom needs " +
                                 ", ".join("--" + n.replace("_", "-") for n in missing))
        L, d, H = args.n_layers, args.d_model, args.n_heads
    else:
        L, d, H = MODEL_SIZES[args.config_size]
        L, d, H = args.n_layers or L, args.d_model or d, args.n_heads or H
    return ref.normalise_config({"vocab_size": args.vocab, "d_model": d, "n_layers": L, "n_heads": H,
                                 "d_ffn": args.d_ffn or 4 * d, "tie_embeddings": True,
                                 "recurrence": True})


def cmd_bench_train(args):
    device = torch.device(args.device)
    if args.compile and not HAS_COMPILE:
        raise ref.InputError("--compile needs PyTorch 2")
    cfg = bench_config(args)
    L, H, T, B = cfg["n_layers"], cfg["n_heads"], args.seq_len, args.micro_batch
    torch.manual_seed(args.seed)
    model = RatPlus(cfg, device)
    for p in model.parameters():
        if p.dim() == 2:
            nn.init.normal_(p, 0.0, cfg["init_std"])
    fused = {"fused": True} if device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                                  weight_decay=0.1, **fused)
    run = torch.compile(model) if args.compile else model
    tokens = torch.randint(0, cfg["vocab_size"], (B, T + 1), device=device)
    x, y = tokens[:, :-1], tokens[:, 1:]

    passes = {"dense": [[("dense",)] * H] * L}
    if args.objective == "joint":
        passes = {"sparse": [[("dilated", args.arl_dilation, 0, 0)] * H] * L, **passes}
    plans = {name: attention_plan(p, T, device) for name, p in passes.items()}
    keys = {name: plan_mean_keys(p, T) for name, p in passes.items()}

    def train_pass(plan):
        with autocast(device, "bf16"):
            loss = run(x, plan, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    synchronize(device)
    start = time.perf_counter()
    losses = {name: train_pass(plan) for name, plan in plans.items()}
    synchronize(device)
    first_step_s = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        losses = {name: train_pass(plan) for name, plan in plans.items()}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timer = Timer(device)
    for _ in range(args.steps):
        with timer.step():
            losses = {name: train_pass(plan) for name, plan in plans.items()}
    ms = statistics.median(timer.times_ms())
    tokens_per_s = B * T / (ms / 1e3)
    flops = {name: train_flops_per_token(cfg, k) for name, k in keys.items()}
    result = {
        "mode": "bench-train", "config_size": args.config_size,
        "model": {k: cfg[k] for k in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ffn")},
        "params": sum(p.numel() for p in model.parameters()),
        "objective": args.objective, "seq_len": T, "micro_batch": B, "compile": args.compile,
        "steps": args.steps, "warmup": args.warmup,
        "ms_per_step": ms, "tokens_per_s": tokens_per_s, "first_step_s": first_step_s,
        "mean_keys": keys, "flops_per_token": sum(flops.values()),
        "mfu": sum(flops.values()) * tokens_per_s / (PEAK_TFLOPS * 1e12), "mfu_peak_tflops": PEAK_TFLOPS,
        "scan": scan_name(device),
        "attention": {name: attention_kernel(p[0][0], device) for name, p in passes.items()},
        **{"loss_" + name: float(loss) for name, loss in losses.items()},
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return dict(result, **device_info(device))


def timed(device, fn, warmup, iters, before=None):
    """Median ms of fn() over iters calls after warmup calls; before() runs untimed each time."""
    timer = Timer(device)
    for i in range(warmup + iters):
        state = before() if before else None
        if i < warmup:
            fn(state)
            continue
        with timer.step():
            fn(state)
    return statistics.median(timer.times_ms())


def cmd_bench_attention(args):
    device = torch.device(args.device)
    B, H, T, dh = args.batch, args.heads, args.seq_len, args.head_dim
    layer = ref.parse_pattern(args.pattern, 1, H)
    groups = attention_plan(layer, T, device)[0]
    torch.manual_seed(args.seed)
    q, k, v = (torch.randn(B, H, T, dh, device=device, dtype=torch.bfloat16,
                           requires_grad=args.backward) for _ in range(3))
    with torch.no_grad():
        fwd_ms = timed(device, lambda _: attend_groups(q, k, v, groups), args.warmup, args.iters)
    keys = plan_mean_keys(layer, T)
    fwd_flops = 4 * B * H * T * keys * dh
    result = {"mode": "bench-attention", "pattern": args.pattern, "batch": B, "heads": H,
              "seq_len": T, "head_dim": dh, "mean_keys": keys,
              "kernel": sorted({attention_kernel(g.pattern, device) for g in groups}),
              "forward_ms": fwd_ms, "forward_tflops": fwd_flops / fwd_ms / 1e9}
    if args.backward:
        grad = torch.randn(B, H, T, dh, device=device, dtype=torch.bfloat16)

        def forward():
            q.grad = k.grad = v.grad = None
            return attend_groups(q, k, v, groups)
        bwd_ms = timed(device, lambda out: out.backward(grad), args.warmup, args.iters, forward)
        result.update(backward_ms=bwd_ms, backward_tflops=2.5 * fwd_flops / bwd_ms / 1e9)
    return dict(result, **device_info(device))


def cmd_bench_scan(args):
    device = torch.device(args.device)
    B, T, d = args.batch, args.seq_len, args.d_model
    torch.manual_seed(args.seed)
    k, v, g = (torch.randn(B, T, d, device=device, dtype=torch.bfloat16) for _ in range(3))
    with torch.no_grad():
        ms = timed(device, lambda _: GatedRecurrence.apply(k, v, g), args.warmup, args.iters)
    moved = 5 * B * T * d * 2
    return dict({"mode": "bench-scan", "batch": B, "seq_len": T, "d_model": d,
                 "scan": scan_name(device), "ms": ms, "bytes": moved, "gb_per_s": moved / ms / 1e6},
                **device_info(device))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    loss = sub.add_parser("loss", help="loss per pattern, like `ratplus eval`")
    loss.add_argument("--checkpoint", required=True)
    loss.add_argument("--data", required=True, nargs="+")
    loss.add_argument("--seq-len", type=int, required=True)
    loss.add_argument("--batches", type=int, required=True)
    loss.add_argument("--pattern", action="append", required=True)
    loss.add_argument("--eos-id", type=int, default=-1)
    loss.add_argument("--format", default="auto", choices=("auto", "llmc", "flat_u16", "flat_u32"))
    loss.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    loss.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    loss.add_argument("--micro-batch", type=int, default=8, help="windows per forward pass")

    train = sub.add_parser("bench-train", help="training step throughput, random weights and tokens")
    train.add_argument("--config-size", required=True, choices=sorted(MODEL_SIZES) + ["custom"])
    train.add_argument("--d-model", type=int)
    train.add_argument("--n-layers", type=int)
    train.add_argument("--n-heads", type=int)
    train.add_argument("--d-ffn", type=int, help="default 4·d_model")
    train.add_argument("--vocab", type=int, default=32000)
    train.add_argument("--seq-len", type=int, default=4096)
    train.add_argument("--micro-batch", type=int, default=2)
    train.add_argument("--objective", default="dense", choices=("dense", "joint"))
    train.add_argument("--arl-dilation", type=int, default=64)
    train.add_argument("--compile", action="store_true", help="torch.compile the whole model")
    train.add_argument("--steps", type=int, default=10, help="timed steps")
    train.add_argument("--warmup", type=int, default=3)
    train.add_argument("--lr", type=float, default=1e-4)

    attn = sub.add_parser("bench-attention", help="attention forward (and backward) alone")
    attn.add_argument("--seq-len", type=int, default=4096)
    attn.add_argument("--heads", type=int, default=16)
    attn.add_argument("--head-dim", type=int, default=128)
    attn.add_argument("--batch", type=int, default=2)
    attn.add_argument("--pattern", default="dense")
    attn.add_argument("--backward", action="store_true")

    scan = sub.add_parser("bench-scan", help="the recurrence scan alone")
    scan.add_argument("--seq-len", type=int, default=4096)
    scan.add_argument("--batch", type=int, default=2)
    scan.add_argument("--d-model", type=int, default=2048)

    for p in (train, attn, scan):
        p.add_argument("--device", default="cuda")
        p.add_argument("--seed", type=int, default=0)
    for p in (attn, scan):
        p.add_argument("--warmup", type=int, default=5)
        p.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)
    for name in ("seq_len", "batches", "micro_batch", "steps", "warmup", "iters", "batch", "heads",
                 "head_dim", "d_model", "n_layers", "n_heads", "d_ffn", "vocab", "arl_dilation"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            parser.error("--%s must be >= 1" % name.replace("_", "-"))
    return args


def main(argv=None):
    args = parse_args(argv)
    commands = {"loss": cmd_loss, "bench-train": cmd_bench_train,
                "bench-attention": cmd_bench_attention, "bench-scan": cmd_bench_scan}
    try:
        print(json.dumps(commands[args.command](args)))
    except ref.InputError as exc:
        print("torch_baseline: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
