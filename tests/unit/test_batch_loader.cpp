// The window order (identity, per-epoch seeded permutations) and the batch loader of SPEC §9: batches
// independent of the number of ranks, disjoint rank shares, micro-batch cut, end-of-document labels,
// resume, prefetch, errors from the data and from the options, and clean shutdown.
//
// Most tests read a stream whose token i is i itself, so every sequence of a batch tells which window it
// came from: window k starts with token k·T.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/batch_loader.h"
#include "data/synthetic.h"
#include "data/token_shard.h"
#include "core/temp_dir.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

std::vector<uint32_t> counting_tokens(int64_t n) {
  std::vector<uint32_t> tokens(static_cast<size_t>(n));
  std::iota(tokens.begin(), tokens.end(), 0u);
  return tokens;
}

// The elements [begin, begin + n) of an order.
std::vector<int64_t> order_slice(const WindowOrder& order, int64_t begin, int64_t n) {
  std::vector<int64_t> out;
  for (int64_t k = begin; k < begin + n; ++k) out.push_back(order.window(k));
  return out;
}

std::vector<int64_t> iota_vector(int64_t n) {
  std::vector<int64_t> out(static_cast<size_t>(n));
  std::iota(out.begin(), out.end(), int64_t{0});
  return out;
}

// The window each sequence of a batch read, for a counting stream.
std::vector<int64_t> window_ids(const Batch& batch) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < batch.inputs.size(); i += size_t(batch.seq_len)) {
    ids.push_back(batch.inputs[i] / batch.seq_len);
  }
  return ids;
}

// Every sequence of a batch from a counting stream without end-of-document token is a whole window.
void expect_whole_windows(const Batch& batch) {
  const int64_t T = batch.seq_len;
  ASSERT_EQ(batch.inputs.size(), size_t(batch.micro_batches * batch.micro_batch * T));
  ASSERT_EQ(batch.targets.size(), batch.inputs.size());
  for (size_t i = 0; i < batch.inputs.size(); ++i) {
    const int32_t start = batch.inputs[i - i % size_t(T)];
    ASSERT_EQ(start % T, 0) << "sequence starts off a window boundary at " << i;
    ASSERT_EQ(batch.inputs[i], start + int32_t(i % size_t(T))) << i;
    ASSERT_EQ(batch.targets[i], batch.inputs[i] + 1) << i;
  }
}

void expect_same_batch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.micro_batches, b.micro_batches);
  EXPECT_EQ(a.micro_batch, b.micro_batch);
  EXPECT_EQ(a.seq_len, b.seq_len);
  EXPECT_EQ(a.inputs, b.inputs) << "step " << a.step;
  EXPECT_EQ(a.targets, b.targets) << "step " << a.step;
}

LoaderOptions options(int64_t seq_len, int64_t global_batch, int64_t micro_batch, bool random = false) {
  LoaderOptions o;
  o.seq_len = seq_len;
  o.global_batch = global_batch;
  o.micro_batch = micro_batch;
  o.random = random;
  o.seed = 1234;
  return o;
}

// One loader for each of `ranks` ranks, all with options `o` but for the rank.
std::vector<std::unique_ptr<BatchLoader>> rank_loaders(const std::shared_ptr<const TokenStream>& data, LoaderOptions o,
                                                       int64_t ranks) {
  std::vector<std::unique_ptr<BatchLoader>> loaders;
  o.ranks = ranks;
  for (int64_t r = 0; r < ranks; ++r) {
    o.rank = r;
    loaders.push_back(std::make_unique<BatchLoader>(data, o));
  }
  return loaders;
}

class BatchLoaderTest : public ::testing::Test {
 protected:
  std::string write_shard(const std::string& name, const std::vector<uint32_t>& tokens) const {
    const std::string path = dir_.file(name);
    write_llmc_shard(path, tokens, 7);
    return path;
  }

  std::shared_ptr<const TokenStream> stream(const std::vector<uint32_t>& tokens, int64_t vocab = 1 << 20) {
    return std::make_shared<const TokenStream>(std::vector<std::string>{write_shard("tokens.bin", tokens)},
                                               ShardFormat::llmc, vocab);
  }

  TempDir dir_;
};

TEST(WindowOrder, RandomIsAPermutationInEveryEpoch) {
  for (const int64_t n : {1, 2, 7, 1000, 4097}) {
    for (const uint64_t seed : {0ull, 99ull}) {
      const WindowOrder order(n, true, seed);
      for (int64_t epoch = 0; epoch < 3; ++epoch) {
        std::vector<int64_t> windows = order_slice(order, epoch * n, n);
        std::sort(windows.begin(), windows.end());
        EXPECT_EQ(windows, iota_vector(n)) << "N " << n << " seed " << seed << " epoch " << epoch;
      }
    }
  }
}

TEST(WindowOrder, RandomDiffersAcrossEpochsAndSeeds) {
  for (const int64_t n : {1000, 4097}) {
    const WindowOrder order(n, true, 5);
    const std::vector<int64_t> first = order_slice(order, 0, n);
    EXPECT_NE(first, iota_vector(n)) << n;
    EXPECT_NE(first, order_slice(order, n, n)) << n;
    EXPECT_NE(first, order_slice(order, 2 * n, n)) << n;
    EXPECT_NE(first, order_slice(WindowOrder(n, true, 6), 0, n)) << n;
    EXPECT_EQ(first, order_slice(WindowOrder(n, true, 5), 0, n)) << n;
    int64_t fixed_points = 0;
    for (int64_t i = 0; i < n; ++i) fixed_points += first[size_t(i)] == i;
    EXPECT_LT(fixed_points, 20) << n;
  }
}

TEST(WindowOrder, OrderedIsTheIdentityAndWraps) {
  for (const int64_t n : {1, 2, 7, 1000}) {
    const WindowOrder order(n, false, 5);
    for (int64_t epoch = 0; epoch < 3; ++epoch) EXPECT_EQ(order_slice(order, epoch * n, n), iota_vector(n)) << n;
  }
}

TEST(WindowOrder, LargeDomainStaysInRange) {
  const int64_t n = 25'000'003;
  const WindowOrder order(n, true, 7);
  std::set<int64_t> seen;
  for (int64_t k = 0; k < 2000; ++k) {
    const int64_t w = order.window(k * 12'345);
    ASSERT_GE(w, 0);
    ASSERT_LT(w, n);
    seen.insert(w);
  }
  EXPECT_EQ(seen.size(), 2000u);
}

TEST(WindowOrder, RejectsBadArguments) {
  expect_input_error([] { WindowOrder(0, true, 1); }, {"0"});
  EXPECT_THROW(WindowOrder(5, false, 1).window(-1), std::out_of_range);
}

TEST_F(BatchLoaderTest, BatchesDoNotDependOnTheNumberOfRanks) {
  const int64_t T = 4, G = 8, windows = 50;  // the steps below cross epoch boundaries mid-batch
  const auto data = stream(counting_tokens(windows * T + 1));
  for (const bool random : {false, true}) {
    const WindowOrder order(windows, random, 1234);
    for (const int64_t ranks : {1, 2, 4}) {
      const auto loaders = rank_loaders(data, options(T, G, 2, random), ranks);
      for (int64_t step = 0; step < 15; ++step) {
        std::vector<int64_t> ids;
        for (auto& loader : loaders) {
          const Batch batch = loader->next();
          ASSERT_EQ(batch.step, step);
          ASSERT_EQ(batch.micro_batches, G / (ranks * 2));
          expect_whole_windows(batch);
          const std::vector<int64_t> part = window_ids(batch);
          ids.insert(ids.end(), part.begin(), part.end());
        }
        EXPECT_EQ(ids, order_slice(order, step * G, G)) << "random " << random << " ranks " << ranks;
      }
    }
  }
}

TEST_F(BatchLoaderTest, RankSharesAreDisjoint) {
  const int64_t T = 4, G = 8, ranks = 4, windows = 48;  // every batch lies inside one epoch
  const auto data = stream(counting_tokens(windows * T + 1));
  const auto loaders = rank_loaders(data, options(T, G, 1, true), ranks);
  for (int64_t step = 0; step < 2 * windows / G; ++step) {
    std::set<int64_t> seen;
    for (auto& loader : loaders) {
      const std::vector<int64_t> ids = window_ids(loader->next());
      EXPECT_EQ(ids.size(), size_t(G / ranks));
      seen.insert(ids.begin(), ids.end());
    }
    EXPECT_EQ(seen.size(), size_t(G)) << "step " << step;
  }
}

TEST_F(BatchLoaderTest, CutsTheRankShareIntoMicroBatchesInOrder) {
  const int64_t T = 5, G = 12, micro = 3, ranks = 2, windows = 40;
  const auto data = stream(counting_tokens(windows * T + 1));
  const WindowOrder order(windows, true, 1234);
  LoaderOptions o = options(T, G, micro, true);
  o.rank = 1;
  o.ranks = ranks;
  BatchLoader loader(data, o);
  for (int64_t step = 0; step < 5; ++step) {
    const Batch batch = loader.next();
    ASSERT_EQ(batch.micro_batches, 2);
    ASSERT_EQ(batch.micro_batch, micro);
    ASSERT_EQ(batch.seq_len, T);
    for (int64_t i = 0; i < batch.micro_batches; ++i) {
      EXPECT_EQ(batch.micro_inputs(i), batch.inputs.data() + i * micro * T);
      EXPECT_EQ(batch.micro_targets(i), batch.targets.data() + i * micro * T);
      for (int64_t j = 0; j < micro; ++j) {
        const int64_t k = step * G + 1 * (G / ranks) + i * micro + j;
        EXPECT_EQ(batch.micro_inputs(i)[j * T], order.window(k) * T) << "step " << step << " micro " << i;
      }
    }
    EXPECT_THROW(batch.micro_inputs(2), std::out_of_range);
    EXPECT_THROW(batch.micro_targets(-1), std::out_of_range);
  }
}

TEST_F(BatchLoaderTest, TargetsAfterEndOfDocumentAreIgnored) {
  const int64_t T = 16, G = 4, vocab = 50;
  const std::vector<uint32_t> tokens = synthesize_tokens(2000, vocab, 3);
  const auto data = stream(tokens, vocab);
  for (const int64_t eos_id : {int64_t(kSyntheticEosId), int64_t{-1}}) {
    LoaderOptions o = options(T, G, 2);
    o.eos_id = eos_id;
    BatchLoader loader(data, o);
    int64_t ignored = 0;
    for (int64_t step = 0; step < 10; ++step) {
      const Batch batch = loader.next();
      for (int64_t j = 0; j < G; ++j) {
        const int64_t begin = (step * G + j) * T;
        for (int64_t t = 0; t < T; ++t) {
          const size_t i = size_t(j * T + t);
          ASSERT_EQ(batch.inputs[i], int32_t(tokens[size_t(begin + t)]));
          const bool eos = batch.inputs[i] == eos_id;
          ASSERT_EQ(batch.targets[i], eos ? -1 : int32_t(tokens[size_t(begin + t + 1)]));
          ignored += eos;
        }
      }
    }
    if (eos_id >= 0) {
      EXPECT_GT(ignored, 0);
    }
  }
}

TEST_F(BatchLoaderTest, ResumingEqualsContinuing) {
  const auto data = stream(counting_tokens(30 * 4 + 1));
  const LoaderOptions o = options(4, 4, 2, true);
  BatchLoader full(data, o);
  std::vector<Batch> batches;
  for (int64_t step = 0; step < 20; ++step) batches.push_back(full.next());
  EXPECT_EQ(full.position(), 20);

  BatchLoader resumed(data, o, 7);
  EXPECT_EQ(resumed.position(), 7);
  for (int64_t step = 7; step < 20; ++step) {
    expect_same_batch(resumed.next(), batches[size_t(step)]);
    EXPECT_EQ(resumed.position(), step + 1);
  }
}

TEST_F(BatchLoaderTest, PrefetchDoesNotChangeTheBatches) {
  const auto data = stream(counting_tokens(25 * 8 + 3));
  LoaderOptions o = options(8, 6, 3, true);
  o.prefetch = 0;
  BatchLoader direct(data, o);
  std::vector<std::unique_ptr<BatchLoader>> prefetching;
  for (const int64_t prefetch : {1, 2, 5}) {
    o.prefetch = prefetch;
    prefetching.push_back(std::make_unique<BatchLoader>(data, o));
  }
  double waited = 0;
  for (int64_t step = 0; step < 12; ++step) {
    const Batch expected = direct.next();
    for (auto& loader : prefetching) expect_same_batch(loader->next(), expected);
    EXPECT_GE(direct.wait_seconds(), waited);
    waited = direct.wait_seconds();
  }
}

TEST_F(BatchLoaderTest, BadTokenSurfacesAsInputErrorFromNext) {
  const int64_t vocab = 1000;
  std::vector<uint32_t> second = counting_tokens(40);
  for (uint32_t& token : second) token += 40;
  second[30] = vocab;  // offset 70 of the stream: in window 17 (tokens 68..72), so in batch 8 with G = 2
  const std::vector<std::string> paths = {write_shard("a.bin", counting_tokens(40)), write_shard("b.bin", second)};
  const auto data = std::make_shared<const TokenStream>(paths, ShardFormat::llmc, vocab);
  for (const int64_t prefetch : {0, 1, 3}) {
    LoaderOptions o = options(4, 2, 1);
    o.prefetch = prefetch;
    BatchLoader loader(data, o);
    for (int64_t step = 0; step < 8; ++step) EXPECT_NO_THROW(loader.next()) << "step " << step;
    expect_input_error([&] { loader.next(); }, {"b.bin", "1000"});
    EXPECT_THROW(loader.next(), InputError);
    EXPECT_EQ(loader.position(), 8);
  }
}

TEST_F(BatchLoaderTest, RejectsInvalidOptions) {
  const auto data = stream(counting_tokens(101), 1000);
  const auto make = [&](const LoaderOptions& o, int64_t first_step = 0) {
    return [&data, o, first_step] { BatchLoader loader(data, o, first_step); };
  };
  LoaderOptions o = options(4, 10, 2);
  o.ranks = 4;
  expect_input_error(make(o), {"global_batch 10", "ranks 4", "micro_batch 2", "8"});
  o = options(4, 8, 2);
  o.ranks = 2;
  o.rank = 2;
  expect_input_error(make(o), {"rank 2", "[0, 2)"});
  o.rank = -1;
  expect_input_error(make(o), {"rank -1"});
  o = options(4, 8, 2);
  o.ranks = 0;
  expect_input_error(make(o), {"ranks", "0"});
  expect_input_error(make(options(0, 8, 2)), {"seq_len", "0"});
  expect_input_error(make(options(4, 8, 0)), {"micro_batch", "0"});
  expect_input_error(make(options(4, 0, 2)), {"global_batch", "0"});
  o = options(4, 8, 2);
  o.prefetch = -1;
  expect_input_error(make(o), {"prefetch", "-1"});
  expect_input_error(make(options(4, 8, 2), -3), {"-3"});
  o = options(4, 8, 2);
  o.eos_id = 1000;
  expect_input_error(make(o), {"eos_id 1000", "1000"});
  expect_input_error(make(options(101, 8, 2)), {"101 tokens", "102"});
  EXPECT_NO_THROW(make(options(100, 8, 2))());  // exactly one window
}

TEST_F(BatchLoaderTest, DestroysCleanlyWhileWaitingOrWorking) {
  const auto small = stream(counting_tokens(64 * 4 + 1));
  for (int i = 0; i < 20; ++i) BatchLoader(small, options(4, 8, 2, true));  // destroyed at once

  BatchLoader waiting(small, options(4, 8, 2, true));
  waiting.next();  // the worker refills the queue, then waits for room

  const auto large = std::make_shared<const TokenStream>(
      std::vector<std::string>{write_shard("large.bin", counting_tokens(300'000))}, ShardFormat::llmc, 1 << 20);
  LoaderOptions o = options(256, 512, 8, true);
  o.prefetch = 4;
  for (int i = 0; i < 3; ++i) BatchLoader working(large, o);  // destroyed while the worker reads
}

}  // namespace
}  // namespace ratplus::test
