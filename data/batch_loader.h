// The training data loader of SPEC §9: the order in which windows are visited (ordered, or a seeded
// permutation re-drawn each epoch) and the loader that cuts batch s into this rank's micro-batches,
// preparing batches ahead on a background thread.
//
// Window order. Element k of the endless sequence is window order(k mod N) of epoch k / N. The random
// order never stores N entries: it is a keyed bijection on [0, N), a 4-round Feistel network on the
// smallest power-of-two domain [0, 2^b) that holds N, with cycle-walking (apply the network again until
// the value falls below N). Round keys are splitmix64 of (seed, epoch, round), so the order depends only
// on those numbers and is the same on every platform.
//
// Batches. Batch s is made of global windows k = s·G … s·G + G − 1 whatever the number of ranks R; rank r
// takes the r-th contiguous G/R of them and cuts them into micro-batches in order. The position is the
// step, so resuming is constructing with first_step.
//
// Prefetch. A worker thread builds batches position(), position() + 1, … into a queue of at most
// `prefetch` batches; next() takes them in order. An exception in the worker is stored and rethrown by
// next() (with its type) once the batches before it have been handed out.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/token_shard.h"

namespace ratplus {

// The endless sequence of windows: element k is window order(k mod N) of epoch k / N, where N is the
// number of windows; "ordered" is the identity, "random" a seeded permutation re-drawn for each epoch.
class WindowOrder {
 public:
  // InputError when num_windows < 1.
  WindowOrder(int64_t num_windows, bool random, uint64_t seed);

  // std::out_of_range for k < 0.
  int64_t window(int64_t k) const;

 private:
  uint64_t permute(uint64_t index, uint64_t epoch) const;

  int64_t num_windows_;
  bool random_;
  uint64_t seed_;
  int domain_bits_ = 0;  // smallest b with 2^b >= num_windows
};

struct Batch {
  int64_t step = 0;           // batch index s
  int64_t micro_batches = 0;  // on this rank: global_batch / (ranks * micro_batch)
  int64_t micro_batch = 0;    // sequences per micro-batch
  int64_t seq_len = 0;
  std::vector<int32_t> inputs, targets;  // micro_batches * micro_batch * seq_len, sequence-major; target -1 = ignored

  // First input / target token of micro-batch i; std::out_of_range outside [0, micro_batches).
  const int32_t* micro_inputs(int64_t i) const;
  const int32_t* micro_targets(int64_t i) const;
};

struct LoaderOptions {
  int64_t seq_len = 0;
  int64_t eos_id = -1;
  int64_t global_batch = 0;   // G sequences per batch, whatever the number of ranks
  int64_t micro_batch = 0;    // sequences per micro-batch per rank
  int64_t rank = 0, ranks = 1;
  bool random = false;
  uint64_t seed = 0;
  int64_t prefetch = 2;       // batches prepared ahead by the background thread (0 = read in next())
};

class BatchLoader {
 public:
  // Validates the options against the data (InputError naming the numbers) and starts the prefetch thread.
  BatchLoader(std::shared_ptr<const TokenStream> data, const LoaderOptions& options, int64_t first_step = 0);
  ~BatchLoader();  // stops and joins the prefetch thread
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  Batch next();                                         // the batch for position(), then position() advances by one
  int64_t position() const { return position_; }        // step of the batch next() returns
  double wait_seconds() const { return wait_seconds_; }  // total time next() has spent waiting for data

 private:
  Batch make_batch(int64_t step) const;
  Batch take_prefetched();
  void prefetch_loop(int64_t first_step);

  std::shared_ptr<const TokenStream> data_;
  LoaderOptions options_;
  WindowOrder order_;
  int64_t position_;
  double wait_seconds_ = 0;

  std::mutex mutex_;
  std::condition_variable filled_;  // a batch or an error was queued
  std::condition_variable drained_;  // a batch was taken, or stop was requested
  std::deque<Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;  // last: starts after every other member exists
};

}  // namespace ratplus
