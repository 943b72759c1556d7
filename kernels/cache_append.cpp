// The cache_append entry point: checks, then the CPU composition or the fused GPU kernel.
#include "kernels/cache_append.h"

#include "kernels/backend.h"

namespace ratplus {

namespace {

// A top-k group's summaries: of the statistics type, [batch · blocks, heads · width], blocks covering the cache.
void check_summaries(const OpCheck& check, const CacheView& c, int64_t batch, int64_t dh, const Tensor& q) {
  check.that(c.topk.active() == !c.summaries.empty(), "a top-k cache comes with its block summaries");
  if (!c.topk.active()) return;
  check.that(c.slots.dilation == 1 && c.slots.ring == 0, "a top-k cache holds every position in its slot");
  check.device(q.device, {&c.summaries});
  check.statistics(c.summaries, "block summaries", q);
  const int64_t blocks = c.slots.capacity() / c.topk.block + (c.slots.capacity() % c.topk.block != 0);
  check.shape(c.summaries, "block summaries", batch * blocks, c.heads * block_summary_width(c.topk.score, dh));
}

}  // namespace

void summarize_prompt_blocks(const CacheView& c, int64_t b, const Tensor& keys, int64_t n) {
  const OpCheck check("summarize_prompt_blocks");
  check.activations(keys, "keys");
  check.that(c.heads > 0 && keys.cols % c.heads == 0, "keys are the group's heads");
  const int64_t dh = keys.cols / c.heads, batch = c.batch();
  check_summaries(check, c, batch, dh, keys);
  check.that(c.topk.active() && b >= 0 && b < batch && n >= 0 && n <= keys.rows && n <= c.slots.capacity(),
             fmt::format("{} keys of sequence {} into a top-k cache", n, b));
  RATPLUS_DISPATCH(keys, summarize_prompt_blocks(c, b, keys, n));
}

void cache_append(const CacheAppendArgs& a) {
  const OpCheck check("cache_append");
  const int64_t batch = a.q.rows, width = a.q.cols;
  check.activations(a.q, "q");
  check.that(a.n_heads > 0 && width % a.n_heads == 0 && width / a.n_heads % 2 == 0,
             fmt::format("{} columns are not {} heads of an even width", width, a.n_heads));
  const bool recurrent = !a.state.empty();
  for (const auto& [t, name] : {std::pair{&a.k, "k"}, {&a.v, "v"}, {&a.q_out, "q_out"}}) {
    check.device(a.q.device, {t});
    check.dtype(*t, name, a.q.dtype);
    check.shape(*t, name, batch, width);
  }
  check.that(recurrent == !a.g.empty(), "the gate g and the recurrent state come together");
  if (recurrent) {
    check.device(a.q.device, {&a.g, &a.state.k, &a.state.v});
    check.dtype(a.g, "g", a.q.dtype);
    check.shape(a.g, "g", batch, width);
    for (const Tensor* s : {&a.state.k, &a.state.v}) {
      check.statistics(*s, "state", a.q);
      check.shape(*s, "state", batch, width);
    }
  }
  check.device(a.q.device, {&a.positions});
  check.dtype(a.positions, "positions", DType::i32);
  check.shape(a.positions, "positions", 1, batch);
  check.apart(a.q_out, "q_out", a.k, "k");
  check.apart(a.q_out, "q_out", a.v, "v");
  const int64_t dh = width / a.n_heads;
  for (const CacheView& c : a.caches) {
    const int64_t capacity = c.slots.capacity();
    check.that(c.first_head >= 0 && c.heads > 0 && c.first_head + c.heads <= a.n_heads,
               fmt::format("a cache of heads {} … {} among {}", c.first_head, c.first_head + c.heads - 1, a.n_heads));
    check.that(capacity > 0 && (c.slots.ring > 0 || c.slots.dilation == 1),
               "a cache layout without a ring holds every position (dilation 1)");
    for (const auto& [t, name] : {std::pair{&c.k, "cache k"}, {&c.v, "cache v"}}) {
      check.device(a.q.device, {t});
      check.dtype(*t, name, c.int8() ? DType::i8 : a.q.dtype);
      check.shape(*t, name, batch * capacity, c.heads * dh);
    }
    check.that(c.int8() == !c.k_scale.empty() && c.int8() == !c.v_scale.empty(),
               "an 8-bit cache (i8 keys) comes with its scales");
    if (c.int8())
      for (const auto& [t, name] : {std::pair{&c.k_scale, "cache k scales"}, {&c.v_scale, "cache v scales"}}) {
        check.device(a.q.device, {t});
        check.statistics(*t, name, a.q);
        check.shape(*t, name, c.heads, batch * capacity);
      }
    check.device(a.q.device, {&c.positions});
    check.dtype(c.positions, "cache positions", DType::i32);
    check.shape(c.positions, "cache positions", 1, batch * capacity);
    check_summaries(check, c, batch, dh, a.q);
    check.that(!c.int8() || !c.topk.active(), "an 8-bit cache holds no top-k block summaries");
  }
  if (batch == 0) return;
  RATPLUS_DISPATCH(a.q, cache_append(a));
}

void quantize_to_int8(Tensor q, Tensor scales, const Tensor& x, int64_t head_dim) {
  const OpCheck check("quantize_to_int8");
  check.activations(x, "x");
  check.that(head_dim > 0 && x.cols % head_dim == 0,
             fmt::format("{} columns are not heads of width {}", x.cols, head_dim));
  check.device(x.device, {&q, &scales});
  check.dtype(q, "q", DType::i8);
  check.shape(q, "q", x.rows, x.cols);
  check.statistics(scales, "scales", x);
  check.shape(scales, "scales", x.cols / head_dim, x.rows);
  if (x.rows == 0) return;
  RATPLUS_DISPATCH(x, quantize_to_int8(q, scales, x, head_dim));
}

}  // namespace ratplus
