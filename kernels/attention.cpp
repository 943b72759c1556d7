// Attention's entry points (kernels/attention.h): every argument is checked once, then the call runs on the
// CPU reference (kernels/cpu/attention.cpp) or the CUDA kernels (kernels/cuda/attention.cu, flash_*.cu).
#include "kernels/attention.h"

#include <fmt/format.h>
#include <stdexcept>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/flash_tiles.h"

namespace ratplus {

namespace {

[[noreturn]] void invalid(const std::string& why) { throw std::logic_error("attention: " + why); }

// `name` must be a rows × cols matrix of `dtype` on q's device.
void check_matrix(const Tensor& t, const char* name, int64_t rows, int64_t cols, DType dtype, const Tensor& q) {
  if (t.empty() && rows * cols > 0) invalid(fmt::format("{} is missing", name));
  if (t.rows != rows || t.cols != cols)
    invalid(fmt::format("{} is {} × {}, expected {} × {}", name, t.rows, t.cols, rows, cols));
  if (t.ld < t.cols) invalid(fmt::format("{} has row stride {} below its {} columns", name, t.ld, t.cols));
  if (t.device != q.device)
    invalid(fmt::format("{} is on {}, q on {}", name, device_name(t.device), device_name(q.device)));
  if (t.dtype != dtype) invalid(fmt::format("{} is {}, expected {}", name, dtype_name(t.dtype), dtype_name(dtype)));
}

// head_blocks: none or one per head; a cache call's top-k heads share one BlockTopK and its summaries (the
// statistics type: f32 on the GPU).
void validate_top_k(const AttentionArgs& a) {
  const auto heads = static_cast<int64_t>(a.head_keys.size());
  if (a.head_blocks.empty()) return;
  if (static_cast<int64_t>(a.head_blocks.size()) != heads)
    invalid(fmt::format("{} top-k entries for {} heads", a.head_blocks.size(), heads));
  for (const BlockTopK& t : a.head_blocks)
    if (t.block < 0 || t.k < 0) invalid(fmt::format("top-k block B={} K={} has a negative field", t.block, t.k));
  if (!has_top_k(a)) return;
  if (a.key_layout != KeyLayout::cache) return;
  for (const BlockTopK& t : a.head_blocks)
    if (t != a.head_blocks[0]) invalid("a cache's heads share one top-k block term");
  const int64_t width = heads * block_summary_width(a.head_blocks[0].score, a.q.cols / heads);
  const Tensor& s = a.block_summaries;
  const DType stat = a.q.device == Device::cuda ? DType::f32 : a.q.dtype;
  if (s.empty() || s.rows % a.batch != 0 || s.rows / a.batch * a.head_blocks[0].block < a.k_len || s.cols != width ||
      s.ld < s.cols || s.dtype != stat || s.device != a.q.device)
    invalid(fmt::format("a top-k cache of {} slots needs block summaries [batch · blocks, {}] of {} on the {}",
                        a.k_len, width, dtype_name(stat), device_name(a.q.device)));
  if (a.q.device == Device::cuda) check_matrix(a.selection, "selection", heads, a.batch * a.k_len, DType::i32, a.q);
}

void validate(const AttentionArgs& a) {
  const int64_t heads = static_cast<int64_t>(a.head_keys.size());
  if (heads == 0) invalid("no heads (head_keys is empty)");
  if (a.q.cols % heads != 0) invalid(fmt::format("q has {} columns, not a multiple of {} heads", a.q.cols, heads));
  if (a.q.cols == 0) invalid("heads of width 0");
  if (a.batch < 1 || a.q_len < 0) invalid(fmt::format("batch {} and q_len {}", a.batch, a.q_len));
  if (a.key_layout != KeyLayout::sequence && a.key_layout != KeyLayout::cache) invalid("unknown key layout");
  if (a.key_layout == KeyLayout::cache) {
    if (!a.key_positions || !a.query_positions) invalid("the cache key layout needs key and query positions");
    if (a.q_pos0 != 0) invalid("the cache key layout takes query positions, not q_pos0");
    if (a.q_len != 1) invalid(fmt::format("the cache key layout takes one query per sequence, got q_len {}", a.q_len));
    if (a.q.device == Device::cuda) {
      const int64_t heads = static_cast<int64_t>(a.head_keys.size());
      const int64_t need = cache_attention_workspace(a.batch, heads, a.k_len, a.q.cols / heads);
      if (need > 0 && (a.workspace.dtype != DType::f32 || a.workspace.device != Device::cuda ||
                       a.workspace.numel() < need))
        invalid(fmt::format("a GPU cache of {} slots needs an f32 workspace of {} elements on the GPU", a.k_len,
                            need));
    }
  } else if (a.q_pos0 < 0 || a.q_pos0 + a.q_len > a.k_len) {
    invalid(fmt::format("queries at positions {} … {} need keys beyond k_len {}", a.q_pos0, a.q_pos0 + a.q_len - 1,
                        a.k_len));
  }
  for (const KeySet& s : a.head_keys)
    if (s.dilation < 0 || s.window < 0 || s.sinks < 0)
      invalid(fmt::format("key set D={} W={} P={} has a negative field", s.dilation, s.window, s.sinks));
  validate_top_k(a);
  if (a.q.dtype != DType::f32 && a.q.dtype != DType::f64 && a.q.dtype != DType::bf16)
    invalid(fmt::format("activations of type {}", dtype_name(a.q.dtype)));
  const int64_t q_rows = a.batch * a.q_len, k_rows = a.batch * a.k_len;
  const DType act = a.q.dtype, stat = a.q.device == Device::cuda ? DType::f32 : act;
  check_matrix(a.q, "q", q_rows, a.q.cols, act, a.q);
  const bool int8 = a.k.dtype == DType::i8;
  if (int8 && a.key_layout != KeyLayout::cache) invalid("8-bit keys come from a decoding cache only");
  if (int8 && has_top_k(a)) invalid("an 8-bit cache holds no top-k block summaries");
  if (int8 != !a.k_scale.empty() || int8 != !a.v_scale.empty()) invalid("8-bit keys and values come with their scales");
  check_matrix(a.k, "k", k_rows, a.q.cols, int8 ? DType::i8 : act, a.q);
  check_matrix(a.v, "v", k_rows, a.q.cols, int8 ? DType::i8 : act, a.q);
  if (int8) {
    check_matrix(a.k_scale, "k_scale", heads, k_rows, stat, a.q);
    check_matrix(a.v_scale, "v_scale", heads, k_rows, stat, a.q);
  }
  check_matrix(a.out, "out", q_rows, a.q.cols, act, a.q);
  check_matrix(a.lse, "lse", q_rows, heads, stat, a.q);
}

void validate(const AttentionArgs& a, const AttentionGrads& g) {
  validate(a);
  if (a.key_layout != KeyLayout::sequence) invalid("the backward takes the sequence key layout only");
  if (has_top_k(a)) invalid("top-k block attention is for inference: it has no backward");
  if (a.q.device == Device::cuda) {
    const int64_t need = attention_backward_workspace(a.batch, a.q_len, a.k_len,
                                                      static_cast<int64_t>(a.head_keys.size()), a.q.cols);
    if (g.workspace.dtype != DType::f32 || g.workspace.device != Device::cuda || g.workspace.numel() < need)
      invalid(fmt::format("the GPU backward needs an f32 workspace of {} elements on the GPU", need));
  }
  check_matrix(g.dout, "dout", a.out.rows, a.out.cols, a.q.dtype, a.q);
  check_matrix(g.dq, "dq", a.q.rows, a.q.cols, a.q.dtype, a.q);
  check_matrix(g.dk, "dk", a.k.rows, a.k.cols, a.q.dtype, a.q);
  check_matrix(g.dv, "dv", a.v.rows, a.v.cols, a.q.dtype, a.q);
}

}  // namespace

int64_t attention_backward_workspace(int64_t batch, int64_t q_len, int64_t k_len, int64_t heads, int64_t width) {
  const int64_t padded = (q_len + cuda::kBwdQueries - 1) / cuda::kBwdQueries * cuda::kBwdQueries;
  return batch * (q_len * width + 2 * heads * padded + 2 * k_len * width);
}

void attention_forward(const AttentionArgs& a) {
  validate(a);
  RATPLUS_DISPATCH(a.q, attention_forward(a));
}

void attention_backward(const AttentionArgs& a, const AttentionGrads& g) {
  validate(a, g);
  RATPLUS_DISPATCH(a.q, attention_backward(a, g));
}

}  // namespace ratplus
