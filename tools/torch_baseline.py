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
- Decoding (SPEC §6): per layer the fp32 recurrent state and a compact cache of post-RoPE keys and
  values that keeps only what the pattern can still attend to (the P sinks, the dilated positions,
  a ring of the last W + 1; dense keeps all T), with the position of every slot beside it. The one
  query of a step attends over the whole cache through SDPA with a boolean mask built from those
  positions, so every shape is static and torch.compile(mode="reduce-overhead") replays a step as
  a CUDA graph.

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
  torch_baseline.py bench-decode --config-size 1.5b|2.6b|7.6b|custom [--d-model D ...] --context T
                         --gen G --batch B --pattern P [--compile] [--dtype bf16|fp32] [--check]
      Greedy decoding as the paper's benchmark does it: random weights (bf16 on the GPU), every
      sequence's cache filled as if T − G tokens had been prefilled (slot positions, random keys
      and values, zero state), then G steps of the whole batch timed after --warmup steps (eager,
      or compiled with CUDA graphs: compile time reported apart). One pattern for all layers and
      heads. Reports tokens/s, ms per step, cache bytes per sequence, weight bytes, peak memory.
      --check (small fp32 models): prefills a random prompt from one forward of the model instead,
      decodes G given tokens and compares every step's logits with the forward over the whole
      sequence (max_abs_logit_diff; exit 1 above 1e-4).

Exit codes: 0 ok, 1 a --check failed, 2 bad input (message on stderr).
"""

import argparse
import contextlib
import itertools
import json
import math
import resource
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
CHECK_TOLERANCE = 1e-4  # bench-decode --check: largest |logit difference| allowed (fp32)
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


def masked_attention(q, k, v, mask):
    """SDPA with a boolean mask (True: attend), or a plain softmax where PyTorch lacks SDPA."""
    if HAS_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    probs = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return torch.matmul(probs.to(v.dtype), v)


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
    return masked_attention(q, k, v, group.mask)


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
        """Normalised in fp32, returned in the dtype of x."""
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
        return y.to(x.dtype)


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
        self.trace = None  # or a list: forward appends (post-RoPE k, v, last state) to it (see traced)

    def forward(self, x, groups, cos, sin):
        B, T, d = x.shape
        o, q, k, v, *g = self.in_proj(x).split(d, dim=-1)
        if self.recurrence:
            k, v = GatedRecurrence.apply(k, v, g[0])
        last_state = (k[:, -1], v[:, -1]) if self.recurrence else None

        def heads(t):
            return t.reshape(B, T, self.n_heads, d // self.n_heads).transpose(1, 2)
        v = heads(v)
        q = rope(heads(q), cos, sin).to(v.dtype)
        k = rope(heads(k), cos, sin).to(v.dtype)
        if self.trace is not None:
            self.trace.append((k, v, last_state))
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
        logits = self.logits(x)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1)

    def logits(self, x):
        """Final norm and LM head of the residual stream x [..., d]."""
        head = self.embed.weight if self.cfg["tie_embeddings"] else self.lm_head.weight
        return F.linear(self.final_norm(x), head)


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


# -------------------------------------------------------------------------- decoding

class CacheLayout(NamedTuple):
    """Slots of a compact decoding cache for up to T positions of one base pattern (SPEC §3, §6).

    Sink j < P in slot j; the dilated positions (j + 1) mod D = 0 at or after P in the next
    n_dilated slots, in order; every other position in a ring of W + 1 slots after them, slot
    j mod (W + 1). Dense is dilation 1 (every position is a dilated one: slot j, no ring); local
    has dilation 0. A reused ring slot's old position has left the window of every later query,
    so attention can select slots by their positions alone."""
    dilation: int
    window: int
    sinks: int
    first_multiple: int  # the first m with m·D − 1 ≥ P
    n_dilated: int
    size: int

    def slot(self, j):
        """Slots of the positions j (an integer tensor)."""
        slot = self.sinks + self.n_dilated + j % (self.window + 1)
        if self.dilation:
            dilated = self.sinks + (j + 1) // self.dilation - self.first_multiple
            slot = torch.where((j + 1) % self.dilation == 0, dilated, slot)
        return torch.where(j < self.sinks, j, slot)

    def visible(self, positions, t):
        """Which slots hold a key of query t's key set, from their positions (−1: empty)."""
        causal = (positions >= 0) & (positions <= t)
        if self.dilation == 1:
            return causal
        near = (t - positions <= self.window) | (positions < self.sinks)
        if self.dilation:
            near = near | ((positions + 1) % self.dilation == 0)
        return causal & near

    def prompt_positions(self, n, device):
        """The positions of a prompt of n tokens that still hold their slot after it (in order)."""
        j = torch.arange(n, device=device)
        kept = (j < self.sinks) | (j >= n - self.window - 1)
        if self.dilation:
            kept = kept | ((j + 1) % self.dilation == 0)
        return j[kept]


def cache_layout(pattern, T):
    """The CacheLayout of a base pattern (ratplus_reference form) for T positions."""
    pattern = canonical_pattern(pattern, T)
    D, W, P = {"dense": (1, T - 1, 0), "dilated": pattern[1:], "local": (0,) + pattern[1:]}[pattern[0]]
    first = (P + D) // D if D else 0
    n_dilated = T // D - first + 1 if D else 0
    ring = 0 if D == 1 else W + 1
    return CacheLayout(D, W, P, first, n_dilated, P + n_dilated + ring)


class LayerCache(nn.Module):
    """One layer's decoding state for a batch: keys (post-RoPE) and values [B, H, S, dh] in the
    model dtype and, with the recurrence, k̃ and ṽ of the last position [B, d] in fp32."""

    def __init__(self, cfg, batch, size, dtype, device):
        super().__init__()
        H, d = cfg["n_heads"], cfg["d_model"]
        for name in ("k", "v"):
            self.register_buffer(name, torch.zeros(batch, H, size, d // H, dtype=dtype, device=device))
        self.recurrence = cfg["recurrence"]
        if self.recurrence:
            for name in ("k_state", "v_state"):
                self.register_buffer(name, torch.zeros(batch, d, dtype=torch.float32, device=device))

    def advance(self, k, v, g):
        """One step of the gated recurrence from the stored state, in fp32: the new k̃, ṽ."""
        a = torch.sigmoid(g.float())
        self.k_state.copy_(a * self.k_state + (1 - a) * k.float())
        self.v_state.copy_(a * self.v_state + (1 - a) * v.float())
        return self.k_state, self.v_state


@contextlib.contextmanager
def traced(model):
    """Within, every forward of the model appends, per layer in order, the post-RoPE keys and the
    values [B, H, T, dh] and the recurrent state (k̃, ṽ) of the last position (None without
    recurrence) to the list it yields."""
    entries = []
    for layer in model.layers:
        layer.attn.trace = entries
    try:
        yield entries
    finally:
        for layer in model.layers:
            layer.attn.trace = None


class Decoder(nn.Module):
    """Decoding of a RatPlus model, one base pattern in every layer and head, for a batch of
    sequences up to T positions: a LayerCache per layer and one slot-position tensor [B, S]
    (int32, −1 empty) shared by the layers, since they share the layout.

    A step (forward) takes one token per sequence at position t, a one-element tensor, so that
    every shape is static and torch.compile(mode="reduce-overhead") can replay it as a CUDA graph."""

    def __init__(self, model, pattern, batch, T):
        super().__init__()
        cfg = model.cfg
        dtype, device = model.embed.weight.dtype, model.embed.weight.device
        self.model = model
        self.layer_patterns = [[pattern] * cfg["n_heads"]] * cfg["n_layers"]
        self.layout = cache_layout(pattern, T)
        self.caches = nn.ModuleList(LayerCache(cfg, batch, self.layout.size, dtype, device)
                                    for _ in range(cfg["n_layers"]))
        self.register_buffer("positions", torch.full((batch, self.layout.size), -1, dtype=torch.int32,
                                                     device=device))
        cos, sin = rope_tables(T, cfg["d_model"] // cfg["n_heads"], cfg["rope_base"], device)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def cache_bytes_per_sequence(self):
        """Keys, values and states of every layer and the slot positions, for one sequence."""
        tensors = list(self.caches.buffers()) + [self.positions]
        return sum(b.numel() * b.element_size() for b in tensors) // self.positions.shape[0]

    def _place_prompt(self, n):
        """Slot positions as a prompt of n tokens leaves them; returns its kept positions and slots."""
        kept = self.layout.prompt_positions(n, self.positions.device)
        slots = self.layout.slot(kept)
        self.positions.fill_(-1)
        self.positions[:, slots] = kept.to(torch.int32)
        return kept, slots

    def fake_prefill(self, n):
        """Every sequence as if n tokens had been prefilled: their slot positions, random keys and
        values, zero recurrent state."""
        self._place_prompt(n)
        for cache in self.caches:
            cache.k.normal_()
            cache.v.normal_()
            if cache.recurrence:
                cache.k_state.zero_()
                cache.v_state.zero_()

    def prefill(self, prompt):
        """Fills the caches from one forward of the model over prompt [B, n]."""
        plan = attention_plan(self.layer_patterns, prompt.shape[1], prompt.device)
        with traced(self.model) as entries:
            self.model(prompt, plan)
        kept, slots = self._place_prompt(prompt.shape[1])
        for cache, (k, v, state) in zip(self.caches, entries):
            cache.k[:, :, slots] = k[:, :, kept]
            cache.v[:, :, slots] = v[:, :, kept]
            if state is not None:
                cache.k_state.copy_(state[0])
                cache.v_state.copy_(state[1])

    def forward(self, tokens, t):
        """Logits [B, V] after tokens [B] at position t; writes position t into every cache."""
        slot = self.layout.slot(t)
        self.positions[:, slot] = t.to(torch.int32)
        mask = self.layout.visible(self.positions, t)[:, None, None, :]
        cos, sin = self.cos[t], self.sin[t]
        x = self.model.embed(tokens)
        for layer, cache in zip(self.model.layers, self.caches):
            x = x + self._attention(layer.attn, cache, layer.attn_norm(x), slot, mask, cos, sin)
            x = x + layer.ffn(layer.ffn_norm(x))
        return self.model.logits(x)

    def greedy(self, tokens, t):
        """The next token of every sequence (argmax of the step's logits)."""
        return self(tokens, t).argmax(dim=-1)

    @staticmethod
    def _attention(attn, cache, x, slot, mask, cos, sin):
        """A layer's attention for one query per sequence, x [B, d]: recurrence step, RoPE, cache
        write, SDPA over the cache's visible slots, output gate."""
        B, d = x.shape
        o, q, k, v, *g = attn.in_proj(x).split(d, dim=-1)
        if attn.recurrence:
            k, v = cache.advance(k, v, g[0])

        def heads(u):
            return u.reshape(B, attn.n_heads, 1, d // attn.n_heads)
        q = rope(heads(q), cos, sin).to(x.dtype)
        cache.k[:, :, slot] = rope(heads(k), cos, sin).to(x.dtype)
        cache.v[:, :, slot] = heads(v).to(x.dtype)
        out = masked_attention(q, cache.k, cache.v, mask).reshape(B, d)
        return attn.out_proj(out * torch.sigmoid(o))


def decode_step(fn, compile):
    """fn, or fn compiled for CUDA-graph replay with static shapes."""
    return torch.compile(fn, mode="reduce-overhead", fullgraph=True) if compile else fn


def timed_greedy_decode(decoder, step, first, n, steps):
    """Fake prefill of n positions, then `steps` greedy steps from tokens `first` [B]; the
    seconds the steps took, between device synchronisations."""
    decoder.fake_prefill(n)
    t = torch.tensor([n], device=first.device)
    tokens = first
    synchronize(first.device)
    start = time.perf_counter()
    for _ in range(steps):
        tokens = step(tokens, t).clone()  # a CUDA graph's output is overwritten by its next replay
        t += 1
    synchronize(first.device)
    return time.perf_counter() - start


def decode_logit_diff(decoder, step, prompt, tokens):
    """Largest |logit difference| between decoding tokens [B, G] after prefilling prompt [B, n]
    and one forward of the model over the whole sequence under the same pattern."""
    decoder.prefill(prompt)
    t = torch.tensor([prompt.shape[1]], device=prompt.device)
    logits = []
    for i in range(tokens.shape[1]):
        logits.append(step(tokens[:, i], t).clone())
        t += 1
    whole = torch.cat((prompt, tokens), dim=1)
    full = decoder.model(whole, attention_plan(decoder.layer_patterns, whole.shape[1], whole.device))
    return (torch.stack(logits, dim=1).float() - full[:, prompt.shape[1]:].float()).abs().max().item()


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


def random_model(cfg, device, seed):
    """RatPlus with every matrix drawn from N(0, init_std²) after torch.manual_seed(seed); norms at 1."""
    torch.manual_seed(seed)
    model = RatPlus(cfg, device)
    for p in model.parameters():
        if p.dim() == 2:
            nn.init.normal_(p, 0.0, cfg["init_std"])
    return model


def cmd_bench_train(args):
    device = torch.device(args.device)
    if args.compile and not HAS_COMPILE:
        raise ref.InputError("--compile needs PyTorch 2")
    cfg = bench_config(args)
    L, H, T, B = cfg["n_layers"], cfg["n_heads"], args.seq_len, args.micro_batch
    model = random_model(cfg, device, args.seed)
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


def uniform_pattern(text, cfg):
    """The base pattern of a pattern text that gives every layer and head the same one."""
    layers = ref.parse_pattern(text, cfg["n_layers"], cfg["n_heads"])
    if any(p != layers[0][0] for heads in layers for p in heads):
        raise ref.InputError("bench-decode takes one pattern for every layer and head, not %r" % text)
    return layers[0][0]


def peak_memory_bytes(device):
    """The most GPU memory PyTorch allocated, or the process's peak resident set on the CPU."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def decode_dtype(args, device):
    """Checks the bench-decode options; the model's dtype (default bf16 on the GPU, fp32 on the CPU)."""
    if args.compile and not HAS_COMPILE:
        raise ref.InputError("--compile needs PyTorch 2")
    if args.context <= args.gen:
        raise ref.InputError("--context %d must exceed --gen %d" % (args.context, args.gen))
    if args.warmup > args.gen:
        raise ref.InputError("--warmup %d must not exceed --gen %d" % (args.warmup, args.gen))
    args.dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    if args.check and args.dtype != "fp32":
        raise ref.InputError("--check compares logits to %g: it needs --dtype fp32" % CHECK_TOLERANCE)
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]


def check_decoding(decoder, args, vocab, device):
    """bench-decode --check: a random prompt of T − G tokens, then G given random tokens."""
    T, G = args.context, args.gen
    prompt, tokens = torch.randint(0, vocab, (args.batch, T), device=device).split([T - G, G], dim=1)
    diff = decode_logit_diff(decoder, decode_step(decoder, args.compile), prompt, tokens)
    return {"max_abs_logit_diff": diff, "check": "passed" if diff <= CHECK_TOLERANCE else "failed"}


def bench_decoding(decoder, args, vocab, device):
    """bench-decode: warm-up steps, then G timed greedy steps, each run from a fake prefill of T − G."""
    B, G = args.batch, args.gen
    step = decode_step(decoder.greedy, args.compile)
    first = torch.randint(0, vocab, (B,), device=device)
    warmup_s = timed_greedy_decode(decoder, step, first, args.context - G, args.warmup)
    seconds = timed_greedy_decode(decoder, step, first, args.context - G, G)
    return {"tokens_per_s": B * G / seconds, "ms_per_step": 1e3 * seconds / G,
            "compile_s": warmup_s if args.compile else None,
            "peak_memory_bytes": peak_memory_bytes(device)}


def cmd_bench_decode(args):
    device = torch.device(args.device)
    dtype = decode_dtype(args, device)
    cfg = bench_config(args)
    model = random_model(cfg, device, args.seed).to(dtype)
    decoder = Decoder(model, uniform_pattern(args.pattern, cfg), args.batch, args.context)
    with torch.no_grad():
        run = check_decoding if args.check else bench_decoding
        measured = run(decoder, args, cfg["vocab_size"], device)
    return dict({
        "impl": "torch", "variant": "compiled" if args.compile else "eager", "config": args.config_size,
        "model": {k: cfg[k] for k in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ffn",
                                      "recurrence")},
        "context": args.context, "gen": args.gen, "batch": args.batch, "pattern": args.pattern,
        "dtype": args.dtype, **measured,
        "cache_bytes_per_sequence": decoder.cache_bytes_per_sequence(),
        "weight_bytes": sum(p.numel() * p.element_size() for p in model.parameters())},
        **device_info(device))


def add_model_options(parser):
    """The model of the benchmarks with random weights (see bench_config)."""
    parser.add_argument("--config-size", required=True, choices=sorted(MODEL_SIZES) + ["custom"])
    parser.add_argument("--d-model", type=int)
    parser.add_argument("--n-layers", type=int)
    parser.add_argument("--n-heads", type=int)
    parser.add_argument("--d-ffn", type=int, help="default 4·d_model")
    parser.add_argument("--vocab", type=int, default=32000)


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
    add_model_options(train)
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

    decode = sub.add_parser("bench-decode", help="greedy decoding throughput with compact caches")
    add_model_options(decode)
    decode.add_argument("--context", type=int, required=True, help="positions at the end (T)")
    decode.add_argument("--gen", type=int, required=True, help="timed decoding steps (G)")
    decode.add_argument("--batch", type=int, required=True, help="sequences decoded together")
    decode.add_argument("--pattern", required=True, help="one base pattern for every layer and head")
    decode.add_argument("--compile", action="store_true",
                        help="torch.compile the step (mode reduce-overhead: CUDA graphs)")
    decode.add_argument("--dtype", choices=("bf16", "fp32"), help="default bf16 on cuda, fp32 on cpu")
    decode.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    decode.add_argument("--check", action="store_true",
                        help="prefill a random prompt, compare each step's logits with a full forward")

    for p in (train, attn, scan, decode):
        p.add_argument("--device", default="cuda")
        p.add_argument("--seed", type=int, default=0)
    for p in (attn, scan):
        p.add_argument("--warmup", type=int, default=5)
        p.add_argument("--iters", type=int, default=20)
    args = parser.parse_args(argv)
    for name in ("seq_len", "batches", "micro_batch", "steps", "warmup", "iters", "batch", "heads",
                 "head_dim", "d_model", "n_layers", "n_heads", "d_ffn", "vocab", "arl_dilation",
                 "context", "gen"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            parser.error("--%s must be >= 1" % name.replace("_", "-"))
    return args


def main(argv=None):
    args = parse_args(argv)
    commands = {"loss": cmd_loss, "bench-train": cmd_bench_train, "bench-attention": cmd_bench_attention,
                "bench-scan": cmd_bench_scan, "bench-decode": cmd_bench_decode}
    try:
        result = commands[args.command](args)
    except ref.InputError as exc:
        print("torch_baseline: %s" % exc, file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 1 if result.get("check") == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
