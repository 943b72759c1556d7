// Data-parallel gradient reduction in buckets that start while the backward pass is still running. The flat
// gradient vector is cut into buckets from its end (the backward finishes gradients from the end towards the
// start); as soon as every gradient of a bucket is final the bucket's sum over the data-parallel ranks is
// started: an all-reduce, or with ZeRO-1 a reduce-scatter that leaves each rank the sums of the parameters it
// owns. finish() starts what is left and orders all of it before later device work.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/communicator.h"

namespace ratplus {

class GradientReducer {
 public:
  // grads: the flat [1, N] gradient vector; shards: empty (all-reduce) or the ZeRO-1 ranges, rank r owning
  // [shards[r], shards[r+1]); bucket_elements: the size of a bucket.
  GradientReducer(Communicator& dp, Tensor grads, std::vector<int64_t> shards, int64_t bucket_elements);

  // Gradients [offset, N) are final: starts the reduction of every bucket inside that range not yet started.
  void ready(int64_t offset);
  // Starts the remaining buckets and waits for all (in device order).
  void finish();

 private:
  void start(int64_t begin, int64_t end);

  Communicator& dp_;
  Tensor grads_;
  std::vector<int64_t> shards_;
  int64_t bucket_;
  int64_t next_end_;  // the buckets [next_end_, N) have been started
};

}  // namespace ratplus
