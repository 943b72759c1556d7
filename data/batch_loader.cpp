// Window order (Feistel permutation with cycle-walking) and the prefetching batch loader; the algorithms
// are described in batch_loader.h.
#include "data/batch_loader.h"

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/rng.h"

namespace ratplus {
namespace {

constexpr int kFeistelRounds = 4;

uint64_t low_mask(int bits) { return (uint64_t{1} << bits) - 1; }

// Smallest b with 2^b >= n, for n >= 1.
int domain_bits(int64_t n) {
  int bits = 0;
  while ((uint64_t{1} << bits) < static_cast<uint64_t>(n)) ++bits;
  return bits;
}

uint64_t round_key(uint64_t seed, uint64_t epoch, int round) {
  return splitmix64(splitmix64(splitmix64(seed) + epoch) + static_cast<uint64_t>(round));
}

// One bijection of [0, 2^bits): each round splits x into a high and a low part, moves the low part up and
// replaces the old high part by itself XOR a keyed hash of the low part. The widths of the two parts swap
// from round to round, so an odd number of bits needs no special case.
uint64_t feistel(uint64_t x, int bits, const uint64_t (&keys)[kFeistelRounds]) {
  int low_bits = bits / 2;
  for (const uint64_t key : keys) {
    const int high_bits = bits - low_bits;
    const uint64_t low = x & low_mask(low_bits);
    const uint64_t high = x >> low_bits;
    x = (low << high_bits) | (high ^ (splitmix64(key ^ low) & low_mask(high_bits)));
    low_bits = high_bits;
  }
  return x;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Checks the options against the data and returns the number of windows.
int64_t checked_num_windows(const TokenStream* data, const LoaderOptions& o, int64_t first_step) {
  check_internal(data != nullptr, "BatchLoader needs a token stream");
  const auto text = [](int64_t v) { return std::to_string(v); };
  require_input(o.seq_len > 0, "seq_len must be positive, got " + text(o.seq_len));
  require_input(o.micro_batch > 0, "micro_batch must be positive, got " + text(o.micro_batch));
  require_input(o.ranks > 0, "the number of data-parallel ranks must be positive, got " + text(o.ranks));
  require_input(o.rank >= 0 && o.rank < o.ranks,
                "rank " + text(o.rank) + " is outside [0, " + text(o.ranks) + ")");
  require_input(o.global_batch > 0, "global_batch must be positive, got " + text(o.global_batch));
  require_input(o.global_batch % (o.ranks * o.micro_batch) == 0,
                "train.global_batch " + text(o.global_batch) + " is not a multiple of the data-parallel ranks " +
                    text(o.ranks) + " x train.micro_batch " + text(o.micro_batch) + " = " +
                    text(o.ranks * o.micro_batch));
  require_input(o.eos_id < data->vocab_size(), "eos_id " + text(o.eos_id) + " is not below the vocabulary size " +
                                                   text(data->vocab_size()));
  require_input(o.prefetch >= 0, "prefetch must not be negative, got " + text(o.prefetch));
  require_input(first_step >= 0, "the first step must not be negative, got " + text(first_step));
  const int64_t windows = data->num_windows(o.seq_len);
  require_input(windows > 0, "the training data holds " + text(data->size()) +
                                 " tokens, fewer than one window of seq_len + 1 = " + text(o.seq_len + 1));
  return windows;
}

}  // namespace

WindowOrder::WindowOrder(int64_t num_windows, bool random, uint64_t seed)
    : num_windows_(num_windows), random_(random), seed_(seed) {
  require_input(num_windows > 0, "a window order needs at least one window, got " + std::to_string(num_windows));
  domain_bits_ = domain_bits(num_windows);
}

int64_t WindowOrder::window(int64_t k) const {
  if (k < 0) throw std::out_of_range("window order element " + std::to_string(k) + " is negative");
  const int64_t index = k % num_windows_;
  if (!random_) return index;
  return static_cast<int64_t>(permute(static_cast<uint64_t>(index), static_cast<uint64_t>(k / num_windows_)));
}

// Cycle-walking: the network permutes [0, 2^b), so following it from a value below N returns below N
// (on the cycle through index at the latest), and values below N map one-to-one.
uint64_t WindowOrder::permute(uint64_t index, uint64_t epoch) const {
  uint64_t keys[kFeistelRounds];
  for (int r = 0; r < kFeistelRounds; ++r) keys[r] = round_key(seed_, epoch, r);
  uint64_t x = index;
  do {
    x = feistel(x, domain_bits_, keys);
  } while (x >= static_cast<uint64_t>(num_windows_));
  return x;
}

const int32_t* Batch::micro_inputs(int64_t i) const {
  if (i < 0 || i >= micro_batches) throw std::out_of_range("micro-batch " + std::to_string(i) + " out of range");
  return inputs.data() + i * micro_batch * seq_len;
}

const int32_t* Batch::micro_targets(int64_t i) const {
  if (i < 0 || i >= micro_batches) throw std::out_of_range("micro-batch " + std::to_string(i) + " out of range");
  return targets.data() + i * micro_batch * seq_len;
}

BatchLoader::BatchLoader(std::shared_ptr<const TokenStream> data, const LoaderOptions& options, int64_t first_step)
    : data_(std::move(data)),
      options_(options),
      order_(checked_num_windows(data_.get(), options, first_step), options.random, options.seed),
      position_(first_step) {
  if (options_.prefetch > 0) worker_ = std::thread([this, first_step] { prefetch_loop(first_step); });
}

BatchLoader::~BatchLoader() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  drained_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Batch BatchLoader::next() {
  const auto start = std::chrono::steady_clock::now();
  Batch batch = options_.prefetch > 0 ? take_prefetched() : make_batch(position_);
  wait_seconds_ += seconds_since(start);
  ++position_;
  return batch;
}

Batch BatchLoader::make_batch(int64_t step) const {
  const LoaderOptions& o = options_;
  const int64_t per_rank = o.global_batch / o.ranks;
  Batch batch;
  batch.step = step;
  batch.micro_batches = per_rank / o.micro_batch;
  batch.micro_batch = o.micro_batch;
  batch.seq_len = o.seq_len;
  batch.inputs.resize(static_cast<size_t>(per_rank * o.seq_len));
  batch.targets.resize(batch.inputs.size());
  const int64_t first = step * o.global_batch + o.rank * per_rank;
  for (int64_t j = 0; j < per_rank; ++j) {
    data_->window(order_.window(first + j), o.seq_len, o.eos_id, batch.inputs.data() + j * o.seq_len,
                  batch.targets.data() + j * o.seq_len);
  }
  return batch;
}

// Waits for the batch at the front of the queue, or for the error that stopped the worker.
Batch BatchLoader::take_prefetched() {
  std::unique_lock<std::mutex> lock(mutex_);
  filled_.wait(lock, [this] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  drained_.notify_one();
  return batch;
}

// Builds batches in order while the queue has room; stops on request or at the first exception, which
// it leaves for next() to rethrow.
void BatchLoader::prefetch_loop(int64_t first_step) {
  for (int64_t step = first_step;; ++step) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      drained_.wait(lock, [this] { return stop_ || static_cast<int64_t>(ready_.size()) < options_.prefetch; });
      if (stop_) return;
    }
    std::exception_ptr error;
    try {
      Batch batch = make_batch(step);
      const std::lock_guard<std::mutex> lock(mutex_);
      ready_.push_back(std::move(batch));
    } catch (...) {
      error = std::current_exception();
      const std::lock_guard<std::mutex> lock(mutex_);
      error_ = error;
    }
    filled_.notify_one();
    if (error) return;
  }
}

}  // namespace ratplus
