// The decoding kernels against the CPU reference on awkward sizes: cache_append (several head groups with
// different layouts, positions crossing sinks, dilated slots and the ring, with and without the recurrence,
// heads narrow and wide enough to take more than one block of threads)
// and attention over a compact cache (empty, stale and future slots; one run and several merged runs), in f32
// and with bf16 activations, each also with an 8-bit cache; a top-k cache's block summaries, appended to and
// filled from a prompt.
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "inference/key_cache.h"
#include "kernels/attention.h"
#include "kernels/cache_append.h"

namespace ratplus::test {
namespace {

// i32 [1, n] on the CPU and the GPU, the same values.
struct IntPair {
  std::vector<int32_t> host;
  Buffer device;
  Tensor h, d;
  explicit IntPair(std::vector<int32_t> values)
      : host(std::move(values)),
        device(host.size() * 4, Device::cuda),
        h{host.data(), 1, static_cast<int64_t>(host.size()), static_cast<int64_t>(host.size()), DType::i32,
          Device::cpu},
        d{device.data(), 1, h.cols, h.cols, DType::i32, Device::cuda} {
    copy_tensor(d, h);
  }
  std::vector<int32_t> from_gpu() const {
    std::vector<int32_t> out(host.size());
    copy_tensor(Tensor{out.data(), 1, h.cols, h.cols, DType::i32, Device::cpu}, d);
    return out;
  }
};

// i8 [rows, cols] on the CPU and the GPU, the same values (uniform in −127 … 127, or zero).
struct Int8Pair {
  std::vector<int8_t> host;
  Buffer device;
  Tensor h, d;
  Int8Pair(int64_t rows, int64_t cols, uint64_t seed, bool zero = false)
      : host(rows * cols), device(rows * cols, Device::cuda), h{host.data(), rows, cols, cols, DType::i8, Device::cpu},
        d{device.data(), rows, cols, cols, DType::i8, Device::cuda} {
    if (!zero)
      for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<int8_t>(splitmix64(seed * 1000003 + i) % 255) - 127;
    copy_tensor(d, h);
  }
  std::vector<int8_t> from_gpu() const {
    std::vector<int8_t> out(host.size());
    copy_tensor(Tensor{out.data(), h.rows, h.cols, h.cols, DType::i8, Device::cpu}, d);
    return out;
  }
};

// The GPU result x.d (or a bf16 tensor converted into it) against x.h, to tol · max(1, |cpu|).
void expect_matches(Pair& x, const Tensor& gpu, double tol, const char* what) {
  if (gpu.data != x.d.data) convert_tensor(x.d, gpu);
  x.expect_matches(tol, what);
}

class GpuCacheAppend : public ::testing::TestWithParam<bool> {};  // with the recurrence or not

TEST_P(GpuCacheAppend, MatchesCpuInF32AndBf16) {
  RATPLUS_REQUIRE_GPU();
  const bool recurrent = GetParam();
  // Heads of 10 channels (the three in one block of threads), of 200 (two blocks of two heads' threads, the
  // second block's second head idle) and of 700 (a block per head).
  for (const int64_t dh : {int64_t{10}, int64_t{200}, int64_t{700}}) {
    SCOPED_TRACE(::testing::Message() << "dh " << dh);
    const int64_t batch = 4, heads = 3, width = heads * dh, max_len = 200;
    const CacheLayout dilated({16, 5, 2}, max_len), dense({1, 0, 0}, max_len);
    const std::vector<int32_t> positions = {0, 15, 63, 199};
    for (const bool bf16 : {false, true}) {
      SCOPED_TRACE(bf16 ? "bf16" : "f32");
      Pair z(batch, 5 * width, 3, 1, 2), state(batch, 2 * width, 4), q_out(batch, width, 5);
      Pair cache_a(batch * dilated.capacity(), 2 * dh, 6), cache_b(batch * dense.capacity(), 2 * 2 * dh, 7);
      IntPair at(positions), slots_a(std::vector<int32_t>(batch * dilated.capacity(), -1)),
          slots_b(std::vector<int32_t>(batch * dense.capacity(), -1));
      const auto args = [&](const Tensor& zt, const Tensor& st, const Tensor& qo, const Tensor& ca, const Tensor& cb,
                            const Tensor& pos, const Tensor& pa, const Tensor& pb, std::vector<CacheView>& views) {
        views = {{ca.cols_slice(0, dh), ca.cols_slice(dh, dh), pa, 0, 1, dilated.slots()},
                 {cb.cols_slice(0, 2 * dh), cb.cols_slice(2 * dh, 2 * dh), pb, 1, 2, dense.slots()}};
        return CacheAppendArgs{.q = zt.cols_slice(width, width), .k = zt.cols_slice(2 * width, width),
                               .v = zt.cols_slice(3 * width, width),
                               .g = recurrent ? zt.cols_slice(4 * width, width) : Tensor{},
                               .state = recurrent ? RecurrenceState{st.cols_slice(0, width), st.cols_slice(width, width)}
                                                  : RecurrenceState{},
                               .positions = pos, .q_out = qo, .caches = views, .n_heads = heads, .rope_base = 10000};
      };
      std::vector<CacheView> host_views, device_views;
      if (!bf16) {
        cache_append(args(z.h, state.h, q_out.h, cache_a.h, cache_b.h, at.h, slots_a.h, slots_b.h, host_views));
        cache_append(args(z.d, state.d, q_out.d, cache_a.d, cache_b.d, at.d, slots_a.d, slots_b.d, device_views));
        q_out.expect_matches(1e-5, "q_out");
        cache_a.expect_matches(1e-5, "cache of head 0");
        cache_b.expect_matches(1e-5, "cache of heads 1, 2");
      } else {
        const DeviceBf16 z16 = round_to_bf16(z, 5 * width + 2), a16 = round_to_bf16(cache_a, 2 * dh),
                         b16 = round_to_bf16(cache_b, 4 * dh), q16(batch, width, width);
        cache_append(args(z.h, state.h, q_out.h, cache_a.h, cache_b.h, at.h, slots_a.h, slots_b.h, host_views));
        cache_append(args(z16.t, state.d, q16.t, a16.t, b16.t, at.d, slots_a.d, slots_b.d, device_views));
        expect_matches(q_out, q16.t, 1e-2, "q_out");
        expect_matches(cache_a, a16.t, 1e-2, "cache of head 0");
        expect_matches(cache_b, b16.t, 1e-2, "cache of heads 1, 2");
      }
      if (recurrent) state.expect_matches(1e-5, "state");
      EXPECT_EQ(slots_a.from_gpu(), slots_a.host);
      EXPECT_EQ(slots_b.from_gpu(), slots_b.host);
      // Each position landed where the layout says, and only there.
      for (int64_t b = 0; b < batch; ++b) {
        EXPECT_EQ(slots_a.host[b * dilated.capacity() + dilated.slot(positions[b])], positions[b]);
        EXPECT_EQ(slots_b.host[b * dense.capacity() + positions[b]], positions[b]);
      }
      EXPECT_EQ(std::count_if(slots_b.host.begin(), slots_b.host.end(), [](int32_t p) { return p >= 0; }), batch);
    }
  }
}

// Into 8-bit caches (f32 activations): the same rotated queries and state as the CPU, and in every cache the
// CPU's scales (to 1e-5) and integers (within one step of the grid, where the two round a value lying on a
// half step differently).
TEST_P(GpuCacheAppend, Int8MatchesCpu) {
  RATPLUS_REQUIRE_GPU();
  const bool recurrent = GetParam();
  // Heads of 10 channels (the three in one block of threads), of 200 (two blocks of two heads' threads, the
  // second block's second head idle) and of 700 (a block per head).
  for (const int64_t dh : {int64_t{10}, int64_t{200}, int64_t{700}}) {
    SCOPED_TRACE(::testing::Message() << "dh " << dh);
    const int64_t batch = 4, heads = 3, width = heads * dh, max_len = 200;
    const CacheLayout dilated({16, 5, 2}, max_len), dense({1, 0, 0}, max_len);
    const int64_t rows_a = batch * dilated.capacity(), rows_b = batch * dense.capacity();
    const std::vector<int32_t> positions = {0, 15, 63, 199};
    Pair z(batch, 5 * width, 3, 1, 2), state(batch, 2 * width, 4), q_out(batch, width, 5);
    Int8Pair cache_a(rows_a, 2 * dh, 0, true), cache_b(rows_b, 2 * 2 * dh, 0, true);
    Pair scales_a(2, rows_a, 6), scales_b(2 * 2, rows_b, 7);  // k's heads, then v's
    IntPair at(positions), slots_a(std::vector<int32_t>(rows_a, -1)), slots_b(std::vector<int32_t>(rows_b, -1));
    const auto args = [&](bool gpu, std::vector<CacheView>& views) {
      const auto pick = [&](const auto& x) { return gpu ? x.d : x.h; };
      const Tensor ca = pick(cache_a), cb = pick(cache_b), sa = pick(scales_a), sb = pick(scales_b), zt = pick(z),
                   st = pick(state);
      views = {{ca.cols_slice(0, dh), ca.cols_slice(dh, dh), pick(slots_a), 0, 1, dilated.slots(), {}, {},
                sa.rows_slice(0, 1), sa.rows_slice(1, 1)},
               {cb.cols_slice(0, 2 * dh), cb.cols_slice(2 * dh, 2 * dh), pick(slots_b), 1, 2, dense.slots(), {}, {},
                sb.rows_slice(0, 2), sb.rows_slice(2, 2)}};
      return CacheAppendArgs{.q = zt.cols_slice(width, width), .k = zt.cols_slice(2 * width, width),
                             .v = zt.cols_slice(3 * width, width),
                             .g = recurrent ? zt.cols_slice(4 * width, width) : Tensor{},
                             .state = recurrent ? RecurrenceState{st.cols_slice(0, width), st.cols_slice(width, width)}
                                                : RecurrenceState{},
                             .positions = pick(at), .q_out = pick(q_out), .caches = views, .n_heads = heads,
                             .rope_base = 10000};
    };
    std::vector<CacheView> host_views, device_views;
    cache_append(args(false, host_views));
    cache_append(args(true, device_views));
    q_out.expect_matches(1e-5, "q_out");
    if (recurrent) state.expect_matches(1e-5, "state");
    scales_a.expect_matches(1e-5, "scales of head 0");
    scales_b.expect_matches(1e-5, "scales of heads 1, 2");
    for (const Int8Pair* c : {&cache_a, &cache_b}) {
      const std::vector<int8_t> gpu = c->from_gpu();
      int written = 0;
      for (size_t i = 0; i < gpu.size(); ++i) {
        ASSERT_LE(std::abs(gpu[i] - c->host[i]), 1) << "integer " << i;
        written += c->host[i] != 0;
      }
      EXPECT_GT(written, batch * dh) << "the appended rows hold integers";
    }
    EXPECT_EQ(slots_a.from_gpu(), slots_a.host);
    EXPECT_EQ(slots_b.from_gpu(), slots_b.host);
  }
}

// Into top-k caches (one quest head of B = 4, one moba head of B = 5, f32): each appended key folded into its
// block's summary as the CPU folds it — starting a block at positions 0 and 10 (moba), folding into the
// earlier summary elsewhere — and a prompt's keys (23, not a multiple of either B) summarized block by block.
TEST_P(GpuCacheAppend, TopKSummariesMatchCpu) {
  RATPLUS_REQUIRE_GPU();
  const bool recurrent = GetParam();
  const int64_t batch = 3, heads = 2, dh = 10, width = heads * dh, max_len = 40, prompt = 23;
  const CacheLayout dense({1, 0, 0}, max_len);
  const BlockTopK quest{4, 2, BlockScore::quest}, moba{5, 1, BlockScore::moba};
  const int64_t rows = batch * dense.capacity(), quest_blocks = max_len / 4, moba_blocks = max_len / 5;
  const std::vector<int32_t> positions = {0, 7, 10};
  Pair z(batch, 5 * width, 3, 1, 2), state(batch, 2 * width, 4), q_out(batch, width, 5), keys(prompt, width, 8);
  Pair cache_a(rows, 2 * dh, 6), cache_b(rows, 2 * dh, 7);
  Pair sums_a(batch * quest_blocks, 2 * dh, 9), sums_b(batch * moba_blocks, dh, 10);  // earlier contents: noise
  IntPair at(positions), slots_a(std::vector<int32_t>(rows, -1)), slots_b(std::vector<int32_t>(rows, -1));
  const auto views = [&](bool gpu) {
    const auto pick = [&](const auto& x) { return gpu ? x.d : x.h; };
    const Tensor ca = pick(cache_a), cb = pick(cache_b);
    return std::vector<CacheView>{
        {ca.cols_slice(0, dh), ca.cols_slice(dh, dh), pick(slots_a), 0, 1, dense.slots(), quest, pick(sums_a)},
        {cb.cols_slice(0, dh), cb.cols_slice(dh, dh), pick(slots_b), 1, 1, dense.slots(), moba, pick(sums_b)}};
  };
  for (const bool gpu : {false, true}) {
    const auto pick = [&](const Pair& x) { return gpu ? x.d : x.h; };
    const Tensor zt = pick(z), st = pick(state);
    const std::vector<CacheView> caches = views(gpu);
    cache_append({.q = zt.cols_slice(width, width), .k = zt.cols_slice(2 * width, width),
                  .v = zt.cols_slice(3 * width, width), .g = recurrent ? zt.cols_slice(4 * width, width) : Tensor{},
                  .state = recurrent ? RecurrenceState{st.cols_slice(0, width), st.cols_slice(width, width)}
                                     : RecurrenceState{},
                  .positions = gpu ? at.d : at.h, .q_out = pick(q_out), .caches = caches, .n_heads = heads,
                  .rope_base = 10000});
  }
  cache_a.expect_matches(1e-5, "cache of head 0");
  sums_a.expect_matches(1e-5, "quest summaries after the append");
  sums_b.expect_matches(1e-5, "moba summaries after the append");
  for (const bool gpu : {false, true}) {  // sequence 1's prompt, over what the append left
    const std::vector<CacheView> caches = views(gpu);
    const Tensor k = gpu ? keys.d : keys.h;
    summarize_prompt_blocks(caches[0], 1, k.cols_slice(0, dh), prompt);
    summarize_prompt_blocks(caches[1], 1, k.cols_slice(dh, dh), prompt);
  }
  sums_a.expect_matches(1e-5, "quest summaries of a prompt");
  sums_b.expect_matches(1e-5, "moba summaries of a prompt");
}

INSTANTIATE_TEST_SUITE_P(Recurrence, GpuCacheAppend, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "rat" : "attention_only"; });

struct CacheCase {
  std::string name;
  int64_t batch, k_len, dh;
  std::vector<KeySet> heads;
};

void PrintTo(const CacheCase& c, std::ostream* os) { *os << c.name; }

class GpuCacheAttention : public ::testing::TestWithParam<CacheCase> {};

TEST_P(GpuCacheAttention, MatchesCpuInF32AndBf16) {
  RATPLUS_REQUIRE_GPU();
  const CacheCase& c = GetParam();
  const int64_t heads = static_cast<int64_t>(c.heads.size()), width = heads * c.dh;
  // Query positions below, at and far beyond the cache's size; slots hold positions from −5 (empty) to
  // 60 past the query (not yet valid), and each query's own position somewhere.
  std::vector<int32_t> queries(c.batch), slots(c.batch * c.k_len);
  for (int64_t b = 0; b < c.batch; ++b) {
    queries[b] = static_cast<int32_t>(std::vector<int64_t>{5, c.k_len - 1, 3 * c.k_len + 17}[b % 3]);
    for (int64_t s = 0; s < c.k_len; ++s) {
      const auto p = static_cast<int32_t>(splitmix64(b * c.k_len + s) % (queries[b] + 65)) - 5;
      slots[b * c.k_len + s] = std::max(p, -1);
    }
    slots[b * c.k_len + (7 * b + 3) % c.k_len] = queries[b];
  }
  const IntPair query_positions(queries), key_positions(slots);
  const DeviceWorkspace workspace(std::max<int64_t>(1, cache_attention_workspace(c.batch, heads, c.k_len, c.dh)));
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    Pair q(c.batch, width, 40), kv(c.batch * c.k_len, 2 * width, 41), out(c.batch, width, 42), lse(c.batch, heads, 43);
    const auto args = [&](const Tensor& qt, const Tensor& kvt, const Tensor& o, const Tensor& l,
                          const IntPair& keys_at, const IntPair& query_at, bool gpu) {
      return AttentionArgs{.q = qt, .batch = c.batch, .q_len = 1, .key_layout = KeyLayout::cache,
                           .k = kvt.cols_slice(0, width), .v = kvt.cols_slice(width, width), .k_len = c.k_len,
                           .head_keys = c.heads, .key_positions = gpu ? keys_at.d.ptr<int32_t>() : keys_at.host.data(),
                           .query_positions = gpu ? query_at.d.ptr<int32_t>() : query_at.host.data(), .out = o,
                           .lse = l, .workspace = gpu ? workspace.t : Tensor{}};
    };
    if (!bf16) {
      attention_forward(args(q.h, kv.h, out.h, lse.h, key_positions, query_positions, false));
      attention_forward(args(q.d, kv.d, out.d, lse.d, key_positions, query_positions, true));
      out.expect_matches(1e-5, "out");
    } else {
      const DeviceBf16 q16 = round_to_bf16(q, width), kv16 = round_to_bf16(kv, 2 * width), out16(c.batch, width, width);
      attention_forward(args(q.h, kv.h, out.h, lse.h, key_positions, query_positions, false));
      attention_forward(args(q16.t, kv16.t, out16.t, lse.d, key_positions, query_positions, true));
      expect_matches(out, out16.t, 2e-2, "out");
    }
    lse.expect_matches(1e-4, "lse");
  }
}

// Over an 8-bit cache (random integers, a random positive scale per slot and head): the CPU reads s · q, the
// GPU scales the integer dot products and the weights; f32 queries to 1e-5, bf16 ones to bf16 accuracy.
TEST_P(GpuCacheAttention, Int8MatchesCpu) {
  RATPLUS_REQUIRE_GPU();
  const CacheCase& c = GetParam();
  const int64_t heads = static_cast<int64_t>(c.heads.size()), width = heads * c.dh, rows = c.batch * c.k_len;
  std::vector<int32_t> queries(c.batch), slots(rows);
  for (int64_t b = 0; b < c.batch; ++b) {
    queries[b] = static_cast<int32_t>(std::vector<int64_t>{5, c.k_len - 1, 3 * c.k_len + 17}[b % 3]);
    for (int64_t s = 0; s < c.k_len; ++s)
      slots[b * c.k_len + s] = std::max(static_cast<int32_t>(splitmix64(b * c.k_len + s) % (queries[b] + 65)) - 5, -1);
    slots[b * c.k_len + (7 * b + 3) % c.k_len] = queries[b];
  }
  const IntPair query_positions(queries), key_positions(slots);
  const DeviceWorkspace workspace(std::max<int64_t>(1, cache_attention_workspace(c.batch, heads, c.k_len, c.dh)));
  const Int8Pair k(rows, width, 44), v(rows, width, 45);
  Pair scales(2 * heads, rows, 46);
  for (int64_t i = 0; i < 2 * heads * rows; ++i)  // positive, about 1/127 of a unit-normal row's largest value
    scales.h.ptr<float>()[i] = 0.02f * (1.0f + 0.5f * std::abs(scales.h.ptr<float>()[i]));
  copy_tensor(scales.d, scales.h);
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    Pair q(c.batch, width, 40), out(c.batch, width, 42), lse(c.batch, heads, 43);
    const auto args = [&](const Tensor& qt, const Tensor& o, const Tensor& l, bool gpu) {
      const Tensor s = gpu ? scales.d : scales.h;
      return AttentionArgs{.q = qt, .batch = c.batch, .q_len = 1, .key_layout = KeyLayout::cache,
                           .k = gpu ? k.d : k.h, .v = gpu ? v.d : v.h, .k_len = c.k_len, .head_keys = c.heads,
                           .k_scale = s.rows_slice(0, heads), .v_scale = s.rows_slice(heads, heads),
                           .key_positions = gpu ? key_positions.d.ptr<int32_t>() : key_positions.host.data(),
                           .query_positions = gpu ? query_positions.d.ptr<int32_t>() : query_positions.host.data(),
                           .out = o, .lse = l, .workspace = gpu ? workspace.t : Tensor{}};
    };
    if (!bf16) {
      attention_forward(args(q.h, out.h, lse.h, false));
      attention_forward(args(q.d, out.d, lse.d, true));
      out.expect_matches(1e-5, "out");
    } else {
      const DeviceBf16 q16 = round_to_bf16(q, width), out16(c.batch, width, width);
      attention_forward(args(q.h, out.h, lse.h, false));
      attention_forward(args(q16.t, out16.t, lse.d, true));
      expect_matches(out, out16.t, 2e-2, "out");
    }
    lse.expect_matches(1e-4, "lse");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Caches, GpuCacheAttention,
    ::testing::Values(CacheCase{"one_run_dh128", 3, 300, 128, {{1, 0, 0}, {16, 40, 3}}},
                      CacheCase{"three_runs_dh64", 3, 1100, 64, {{1, 0, 0}, {0, 9, 2}, {64, 0, 0}}},
                      CacheCase{"exactly_two_runs_dh32", 4, 2 * kCacheSplitSlots, 32, {{4, 2, 1}}},
                      CacheCase{"one_slot_dh16", 2, 1, 16, {{1, 0, 0}}}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace ratplus::test
