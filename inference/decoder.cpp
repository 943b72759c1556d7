// Prefill and one-token steps over compact caches (see decoder.h).
#include "inference/decoder.h"

#include <algorithm>
#include <fmt/format.h>
#include <string>
#include <tuple>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"

namespace ratplus {

namespace {

// Host i32 values as a [1, n] tensor.
Tensor host_ints(const std::vector<int32_t>& values) {
  const auto n = static_cast<int64_t>(values.size());
  return Tensor{const_cast<int32_t*>(values.data()), 1, n, n, DType::i32, Device::cpu};
}

constexpr int64_t kMaxHeadGroups = 64;  // per layer, what one cache_append call takes on the GPU

// The head groups of a layer's pattern among this rank's heads (all of them, or its share under tensor
// parallelism): runs of consecutive heads that share one key set, `first` counted from the rank's first head.
struct HeadRun {
  int64_t first, count;
  KeySet keys;
  BlockTopK topk;
};
std::vector<HeadRun> head_runs(const Model& model, const Pattern& pattern, int64_t layer) {
  const int64_t count = model.table().heads(), first = model.table().tp_rank() * count;
  const std::vector<KeySet> all = pattern.head_keys(layer, model.config().n_heads);
  const std::vector<KeySet> heads(all.begin() + first, all.begin() + first + count);
  const std::vector<BlockTopK> blocks = pattern.head_blocks(layer, model.config().n_heads);
  const auto topk = [&](int64_t h) { return blocks[first + h]; };
  std::vector<HeadRun> runs;
  for (int64_t h = 0; h < count;) {
    int64_t n = 1;
    while (h + n < count && heads[h + n] == heads[h] && topk(h + n) == topk(h)) ++n;
    runs.push_back({h, n, heads[h], topk(h)});
    h += n;
  }
  return runs;
}

// A top-k group keeps every key (the dense layout); any other group what its key set can still attend to.
CacheLayout layout_of(const HeadRun& r, int64_t max_len) {
  return CacheLayout(r.topk.active() ? KeySet{1, 0, 0} : r.keys, max_len);
}

// Rows of a sequence's block summaries in a top-k group's cache (0 for other groups).
int64_t summary_blocks(const HeadRun& r, int64_t max_len) {
  return r.topk.active() ? max_len / r.topk.block + (max_len % r.topk.block != 0) : 0;
}

// Bytes of one sequence's caches at `length` positions; read_per_step: only what a step reads of a top-k group.
size_t cache_bytes(const Model& model, const Pattern& pattern, int64_t length, CachePrecision cache,
                   bool read_per_step) {
  const ModelConfig& c = model.config();
  pattern.check_fits(c.n_layers, c.n_heads);
  // Per slot and head: a key and a value, and for an 8-bit cache their two scales.
  const size_t per_head = cache == CachePrecision::int8
                              ? 2 * (c.head_dim() + dtype_size(model.gradient_dtype()))
                              : 2 * c.head_dim() * dtype_size(model.dtype());
  const size_t per_summary = dtype_size(model.gradient_dtype());
  size_t bytes = 0;
  for (int64_t i = 0; i < c.n_layers; ++i)
    for (const HeadRun& g : head_runs(model, pattern, i)) {
      const auto width = static_cast<size_t>(g.count * block_summary_width(g.topk.score, c.head_dim()));
      if (read_per_step && g.topk.active()) {
        const int64_t blocks = length / g.topk.block;
        const int64_t keys = std::min(length, (std::min(g.topk.k, blocks) + 1) * g.topk.block + g.keys.window +
                                                  g.keys.sinks + (g.keys.dilation > 0 ? length / g.keys.dilation : 0));
        bytes += static_cast<size_t>(keys) * g.count * per_head + static_cast<size_t>(blocks) * width * per_summary;
        if (model.device() == Device::cuda)  // the selection of every slot, written and read
          bytes += 2 * sizeof(int32_t) * static_cast<size_t>(length * g.count);
      } else {
        bytes += static_cast<size_t>(layout_of(g, length).capacity()) * (g.count * per_head + sizeof(int32_t)) +
                 static_cast<size_t>(summary_blocks(g, length)) * width * per_summary;
      }
    }
  const int64_t width = model.table().heads() * c.head_dim();
  const size_t state = c.recurrence ? c.n_layers * 2 * width * dtype_size(model.gradient_dtype()) : 0;
  return bytes + state;
}

}  // namespace

size_t cache_bytes_per_sequence(const Model& model, const Pattern& pattern, int64_t max_len, CachePrecision cache) {
  return cache_bytes(model, pattern, max_len, cache, false);
}

size_t cache_bytes_read_per_step(const Model& model, const Pattern& pattern, int64_t length, CachePrecision cache) {
  return cache_bytes(model, pattern, length, cache, true);
}

Decoder::Decoder(Model& model, const Pattern& pattern, int64_t batch, int64_t max_len, CachePrecision cache)
    : model_(model),
      pattern_(pattern),
      batch_(batch),
      max_len_(max_len),
      precision_(cache),
      lengths_(batch, 0),
      graph_(model.device()) {
  const ModelConfig& c = model.config();
  require_input(!model.tp() || model.gradient_dtype() != DType::f64,
                "decoding under tensor parallelism takes f32 or bf16 models");
  require_input(batch >= 1 && max_len >= 1,
                fmt::format("decoding needs a batch and a length of at least 1, got {} and {}", batch, max_len));
  require_input(max_len < (int64_t(1) << 31), fmt::format("decoding positions stop below 2^31, got {}", max_len));
  pattern.check_fits(c.n_layers, c.n_heads);
  const bool int8 = cache == CachePrecision::int8;
  require_input(!int8 || !pattern.has_top_k(),
                fmt::format("an 8-bit cache (--cache int8) holds no top-k block summaries: pattern {}", pattern.text()));
  const ParameterTable& table = model.table();
  const int64_t d = c.d_model, dh = c.head_dim(), f = table.ffn(), width = table.heads() * dh;
  const DType act = model.dtype(), stat = model.gradient_dtype();
  const DType cached = int8 ? DType::i8 : act;
  const auto per_chunk = static_cast<int64_t>(16 / dtype_size(cached));
  require_input(model.device() != Device::cuda || gpu_cache_attention_takes(dh, cached),
                fmt::format("decoding on the GPU with a cache of {} takes heads of a power of two from {} to {} "
                            "channels; this model's heads have {}",
                            dtype_name(cached), per_chunk, std::min(kCacheMaxHeadDim, 32 * per_chunk), dh));
  require_input(model.device() != Device::cuda || !pattern.has_top_k() || dh <= kTopKMaxHeadDim,
                fmt::format("decoding on the GPU under a top-k pattern ({}) takes heads of at most {} channels; this "
                            "model's heads have {}",
                            pattern.text(), kTopKMaxHeadDim, dh));
  std::vector<std::pair<Tensor*, int>> bindings;
  auto plan = [&](Tensor& t, const std::string& name, int64_t rows, int64_t cols, DType type) {
    bindings.emplace_back(&t, memory_.reserve(name, rows, cols, type));
  };
  groups_.resize(c.n_layers);
  state_.resize(c.recurrence ? c.n_layers : 0);
  int64_t workspace = 0, selection_heads = 0, selection_slots = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::vector<HeadRun> runs = head_runs(model, pattern, i);
    require_input(static_cast<int64_t>(runs.size()) <= kMaxHeadGroups,
                  fmt::format("decoding: layer {} of the pattern has {} runs of heads with one key set; at most {}",
                              i, runs.size(), kMaxHeadGroups));
    groups_[i].reserve(runs.size());  // the plan keeps pointers into the groups
    for (const HeadRun& r : runs) {
      groups_[i].push_back(
          {std::vector<KeySet>(r.count, r.keys), std::vector<BlockTopK>(r.count, r.topk), layout_of(r, max_len), {}});
      HeadGroup& g = groups_[i].back();
      g.cache.first_head = r.first;
      g.cache.heads = r.count;
      g.cache.slots = g.layout.slots();
      g.cache.topk = r.topk;
      const int64_t rows = batch * g.layout.capacity();
      const std::string name = fmt::format("cache/{}/{}", i, r.first);
      plan(g.cache.k, name + "/k", rows, r.count * dh, int8 ? DType::i8 : act);
      plan(g.cache.v, name + "/v", rows, r.count * dh, int8 ? DType::i8 : act);
      if (int8) {
        plan(g.cache.k_scale, name + "/k_scale", r.count, rows, stat);
        plan(g.cache.v_scale, name + "/v_scale", r.count, rows, stat);
      }
      plan(g.cache.positions, name + "/positions", 1, rows, DType::i32);
      if (r.topk.active())
        plan(g.cache.summaries, name + "/summaries", batch * summary_blocks(r, max_len),
             r.count * block_summary_width(r.topk.score, dh), stat);
      workspace = std::max(workspace, cache_attention_workspace(batch, r.count, g.layout.capacity(), dh));
      if (r.topk.active()) {
        selection_heads = std::max(selection_heads, r.count);
        selection_slots = std::max(selection_slots, rows);
      }
    }
    if (c.recurrence) {
      plan(state_[i].k, fmt::format("state/{}/k", i), batch, width, stat);
      plan(state_[i].v, fmt::format("state/{}/v", i), batch, width, stat);
    }
  }
  const int64_t z_cols = (c.recurrence ? 5 : 4) * width;
  for (auto [t, name, cols] : {std::tuple{&x_, "x", d}, {&y_, "y", d}, {&h_, "h", d}, {&z_, "z", z_cols},
                               {&q_rot_, "q_rot", width}, {&att_, "att", width}, {&gated_, "gated", width},
                               {&ffn_.h, "ffn/h", d}, {&ffn_.pre, "ffn/pre", f}, {&ffn_.act, "ffn/act", f}})
    plan(*t, fmt::format("step/{}", name), batch, cols, act);
  plan(rstd_, "step/rstd", 1, batch, stat);
  plan(ffn_.rstd, "step/ffn/rstd", 1, batch, stat);
  plan(lse_, "step/lse", batch, table.heads(), stat);
  if (model.tp()) {  // this rank's vocabulary slice of the logits, and every rank's, gathered
    plan(vocab_slice_, "step/logits", batch, table.vocab_rows(), stat);
    plan(gathered_, "step/gathered_logits", 1, model.tp()->size() * batch * table.vocab_rows(), stat);
  }
  plan(step_tokens_, "step/tokens", 1, batch, DType::i32);
  plan(step_positions_, "step/positions", 1, batch, DType::i32);
  if (model.device() == Device::cuda && workspace > 0) plan(workspace_, "step/attention", 1, workspace, DType::f32);
  if (model.device() == Device::cuda && selection_heads > 0)
    plan(selection_, "step/selection", selection_heads, selection_slots, DType::i32);
  memory_.allocate(model.device());
  for (auto& [tensor, handle] : bindings) *tensor = memory_.get(handle);
  caches_.resize(c.n_layers);
  int64_t most_rows = 0;
  for (const auto& layer : groups_)
    for (const HeadGroup& g : layer) most_rows = std::max(most_rows, g.cache.positions.cols);
  const std::vector<int32_t> empty(most_rows, -1);
  for (int64_t i = 0; i < c.n_layers; ++i)
    for (HeadGroup& g : groups_[i]) {
      caches_[i].push_back(g.cache);
      const int64_t rows = g.cache.positions.cols;
      copy_tensor(g.cache.positions, Tensor{const_cast<int32_t*>(empty.data()), 1, rows, rows, DType::i32, Device::cpu});
    }
}

size_t Decoder::cache_bytes_per_sequence() const {
  return ratplus::cache_bytes_per_sequence(model_, pattern_, max_len_, precision_);
}

void Decoder::set_positions(HeadGroup& g, int64_t first, int64_t count, int64_t n) {
  const int64_t capacity = g.layout.capacity();
  std::vector<int32_t> positions(capacity * count);
  for (int64_t s = 0; s < capacity; ++s) positions[s] = static_cast<int32_t>(g.layout.position_after_prompt(s, n));
  for (int64_t b = 1; b < count; ++b) std::copy_n(positions.begin(), capacity, positions.begin() + b * capacity);
  copy_tensor(g.cache.positions.cols_slice(first * capacity, count * capacity), host_ints(positions));
}

void Decoder::store_prompt(HeadGroup& g, int64_t b, const Tensor& keys, const Tensor& values, int64_t n) {
  const int64_t dh = model_.config().head_dim(), capacity = g.layout.capacity();
  const int64_t c0 = g.cache.first_head * dh, width = g.cache.heads * dh;
  // Rows position, position + step, … of x's columns of this group, as one strided view.
  const auto rows = [&](const Tensor& x, const CacheLayout::Run& r) {
    Tensor t = x.rows_slice(r.position, 1).cols_slice(c0, width);
    t.rows = r.count;
    t.ld *= r.step;
    return t;
  };
  for (const CacheLayout::Run& r : g.layout.prompt_runs(n)) {
    const int64_t first = b * capacity + r.slot;
    for (const auto& [cache, scale, x] :
         {std::tuple{&g.cache.k, &g.cache.k_scale, &keys}, {&g.cache.v, &g.cache.v_scale, &values}}) {
      if (g.cache.int8())
        quantize_to_int8(cache->rows_slice(first, r.count), scale->cols_slice(first, r.count), rows(*x, r), dh);
      else
        copy_tensor(cache->rows_slice(first, r.count), rows(*x, r));
    }
  }
  if (g.cache.topk.active()) summarize_prompt_blocks(g.cache, b, keys.cols_slice(c0, width), n);
  set_positions(g, b, 1, n);
}

void Decoder::prefill(int64_t b, std::span<const int32_t> prompt, Tensor logits) {
  const ModelConfig& c = model_.config();
  const auto n = static_cast<int64_t>(prompt.size());
  require_input(b >= 0 && b < batch_, fmt::format("prefill: sequence {} is outside the batch of {}", b, batch_));
  require_input(n >= 1 && n <= max_len_,
                fmt::format("prefill: a prompt of {} tokens (1 to {} fit the decoder)", n, max_len_));
  for (int64_t i = 0; i < n; ++i)
    require_input(prompt[i] >= 0 && prompt[i] < c.vocab_size,
                  fmt::format("prefill: prompt token {} at offset {} is outside the vocabulary of {}", prompt[i], i,
                              c.vocab_size));
  std::vector<RecurrenceState> final_state;
  for (const RecurrenceState& s : state_) final_state.push_back({s.k.rows_slice(b, 1), s.v.rows_slice(b, 1)});
  const LayerKeys fill = [&](int64_t layer, const Tensor& keys, const Tensor& values) {
    for (HeadGroup& g : groups_[layer]) store_prompt(g, b, keys, values, n);
  };
  const std::vector<int64_t> last = {n - 1};
  const Tensor slice = model_.tp() ? vocab_slice_.rows_slice(0, 1) : logits;
  model_.forward({prompt.data(), 1, n, pattern_, {}, final_state, fill}, LogitsOutput{last, slice});
  if (model_.tp()) gather_vocabulary(slice, logits);
  lengths_[b] = n;
}

void Decoder::prefill_synthetic(int64_t n, uint64_t seed) {
  require_input(n >= 1 && n < max_len_,
                fmt::format("a synthetic prefill of {} positions (1 to {} leave room for a step)", n, max_len_ - 1));
  const int64_t dh = model_.config().head_dim();
  for (auto& layer : groups_)
    for (HeadGroup& g : layer) {
      // One block of random rows, repeated over the cache (the values do not change a step's work); an
      // 8-bit cache quantizes the block first.
      const int64_t width = g.cache.heads * dh, block = std::min<int64_t>(g.cache.k.rows, 256);
      std::vector<float> values(block * width);
      for (size_t i = 0; i < values.size(); ++i)
        values[i] = static_cast<float>(static_cast<double>(splitmix64(seed + i) >> 11) * 0x1.0p-53 * 2 - 1);
      const Buffer staging(g.cache.int8() ? block * width * dtype_size(model_.dtype()) : 0, model_.device());
      const Tensor rows{staging.data(), block, width, width, model_.dtype(), model_.device()};
      if (g.cache.int8()) from_host_floats(rows, values);
      for (const auto& [cache, scale] : {std::pair{&g.cache.k, &g.cache.k_scale}, {&g.cache.v, &g.cache.v_scale}}) {
        if (g.cache.int8()) {
          quantize_to_int8(cache->rows_slice(0, block), scale->cols_slice(0, block), rows, dh);
        } else {
          from_host_floats(cache->rows_slice(0, block), values);
        }
        for (int64_t r = block; r < cache->rows; r += block) {
          const int64_t count = std::min(block, cache->rows - r);
          copy_tensor(cache->rows_slice(r, count), cache->rows_slice(0, count));
          if (g.cache.int8()) copy_tensor(scale->cols_slice(r, count), scale->cols_slice(0, count));
        }
      }
      set_positions(g, 0, batch_, n);
      if (g.cache.topk.active())  // a top-k cache holds positions 0 … n − 1 in slots 0 … n − 1
        for (int64_t b = 0; b < batch_; ++b)
          summarize_prompt_blocks(g.cache, b, g.cache.k.rows_slice(b * g.layout.capacity(), n), n);
      seed += values.size();
    }
  for (const RecurrenceState& s : state_) {
    zero_tensor(s.k);
    zero_tensor(s.v);
  }
  std::fill(lengths_.begin(), lengths_.end(), n);
}

void Decoder::temporal_mixing_step(int64_t layer, const Tensor& x, Tensor y) {
  const ModelConfig& c = model_.config();
  const Tensor w = model_.weights();
  const LayerParameterIndex& l = model_.table().layer(layer);
  const Dims dims = step_dims();
  const int64_t width = dims.attn_width(), dh = dims.head_dim;
  rmsnorm_forward(h_, rstd_, x, model_.view(w, l.attn_norm), c.norm_eps);
  matmul(z_, h_, false, model_.view(w, l.in_proj), true);
  const Tensor o = z_.cols_slice(0, width);
  cache_append({.q = z_.cols_slice(width, width), .k = z_.cols_slice(2 * width, width),
                .v = z_.cols_slice(3 * width, width), .g = c.recurrence ? z_.cols_slice(4 * width, width) : Tensor{},
                .state = c.recurrence ? state_[layer] : RecurrenceState{}, .positions = step_positions_,
                .q_out = q_rot_, .caches = caches_[layer], .n_heads = dims.heads, .rope_base = c.rope_base});
  for (const HeadGroup& g : groups_[layer]) {
    const int64_t c0 = g.cache.first_head * dh, cols = g.cache.heads * dh;
    attention_forward({.q = q_rot_.cols_slice(c0, cols), .batch = batch_, .q_len = 1,
                       .key_layout = KeyLayout::cache, .k = g.cache.k, .v = g.cache.v, .k_len = g.layout.capacity(),
                       .head_keys = g.keys, .head_blocks = g.blocks, .block_summaries = g.cache.summaries,
                       .selection = g.cache.topk.active() && !selection_.empty()
                                        ? selection_.rows_slice(0, g.cache.heads).cols_slice(0, g.cache.positions.cols)
                                        : Tensor{},
                       .k_scale = g.cache.k_scale, .v_scale = g.cache.v_scale,
                       .key_positions = g.cache.positions.ptr<int32_t>(),
                       .query_positions = step_positions_.ptr<int32_t>(), .out = att_.cols_slice(c0, cols),
                       .lse = lse_.cols_slice(g.cache.first_head, g.cache.heads), .workspace = workspace_});
  }
  sigmoid_gate_forward(gated_, att_, o);
  row_parallel_output(dims, y, x, gated_, model_.view(w, l.out_proj));
}

Dims Decoder::step_dims() const { return Dims::of(model_.config(), model_.table(), batch_, 1, model_.tp()); }

void Decoder::gather_vocabulary(const Tensor& slice, Tensor logits) {
  Communicator& tp = *model_.tp();
  const int64_t rows = slice.rows, part = slice.rows * slice.cols;
  std::vector<int64_t> offsets(tp.size() + 1);
  for (int r = 0; r <= tp.size(); ++r) offsets[r] = r * part;
  const Tensor flat = gathered_.cols_slice(0, offsets.back());
  const auto range = [&](int r) { return flat.cols_slice(offsets[r], part).reshaped(rows, slice.cols); };
  copy_tensor(range(tp.rank()), slice);
  tp.allgather(flat, offsets);
  for (int r = 0; r < tp.size(); ++r) copy_tensor(logits.cols_slice(r * slice.cols, slice.cols), range(r));
}

void Decoder::run_step(Tensor logits) {
  const ModelConfig& c = model_.config();
  const ParameterTable& table = model_.table();
  const Tensor w = model_.weights();
  const Dims dims = step_dims();
  embedding_forward(x_, step_tokens_.ptr<int32_t>(), model_.view(w, table.embed()), dims.vocab_begin);
  tensor_parallel_sum(dims, x_);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    temporal_mixing_step(i, x_, y_);
    const LayerParameterIndex& l = table.layer(i);
    channel_mixing_forward(dims, {model_.view(w, l.ffn_norm), model_.view(w, l.fc1), model_.view(w, l.fc2)}, y_, x_,
                           ffn_);
  }
  rmsnorm_forward(h_, rstd_, x_, model_.view(w, table.final_norm()), c.norm_eps);
  matmul(model_.tp() ? vocab_slice_ : logits, h_, false, model_.view(w, table.lm_head()), true);
  if (model_.tp()) gather_vocabulary(vocab_slice_, logits);
}

void Decoder::step(std::span<const int32_t> tokens, Tensor logits) {
  const ModelConfig& c = model_.config();
  require_input(static_cast<int64_t>(tokens.size()) == batch_,
                fmt::format("step: {} tokens for a batch of {}", tokens.size(), batch_));
  std::vector<int32_t> positions(batch_);
  for (int64_t b = 0; b < batch_; ++b) {
    require_input(tokens[b] >= 0 && tokens[b] < c.vocab_size,
                  fmt::format("step: token {} of sequence {} is outside the vocabulary of {}", tokens[b], b,
                              c.vocab_size));
    require_input(lengths_[b] >= 1 && lengths_[b] < max_len_,
                  fmt::format("step: sequence {} holds {} positions (1 to {} can take another)", b, lengths_[b],
                              max_len_ - 1));
    positions[b] = static_cast<int32_t>(lengths_[b]);
  }
  copy_tensor(step_tokens_, Tensor{const_cast<int32_t*>(tokens.data()), 1, batch_, batch_, DType::i32, Device::cpu});
  copy_tensor(step_positions_, host_ints(positions));
  // Under tensor parallelism the step's collectives run on a stream of their own, outside a graph.
  if (model_.tp())
    run_step(logits);
  else
    graph_.run([&] { run_step(logits); }, logits.data);
  for (int64_t b = 0; b < batch_; ++b) ++lengths_[b];
}

}  // namespace ratplus
