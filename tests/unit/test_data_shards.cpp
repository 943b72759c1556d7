// Token shard readers, the concatenated stream and its windows (SPEC §5, §9), the shard writers and the
// synthetic data generator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "data/synthetic.h"
#include "data/token_shard.h"
#include "core/temp_dir.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

class DataShardsTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return dir_.file(name); }

  std::string write_bytes(const std::string& name, const std::vector<unsigned char>& bytes) const {
    const std::string p = path(name);
    std::ofstream file(p, std::ios::binary);
    file.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return p;
  }

  std::string write_llmc(const std::string& name, const std::vector<uint32_t>& tokens, int version = 1) const {
    write_llmc_shard(path(name), tokens, version);
    return path(name);
  }

  TempDir dir_;
};

std::vector<unsigned char> llmc_header(int32_t magic, int32_t version, int32_t count) {
  std::vector<unsigned char> bytes(1024, 0);
  const int32_t fields[3] = {magic, version, count};
  for (int f = 0; f < 3; ++f) {
    for (int b = 0; b < 4; ++b) bytes[size_t(4 * f + b)] = static_cast<unsigned char>(uint32_t(fields[f]) >> (8 * b));
  }
  return bytes;
}

std::vector<int32_t> read_all(const TokenStream& stream) {
  std::vector<int32_t> out(size_t(stream.size()));
  stream.read(0, stream.size(), out.data());
  return out;
}

std::vector<int32_t> as_ids(const std::vector<uint32_t>& tokens) { return {tokens.begin(), tokens.end()}; }

TEST(DataShardFormat, ParsesEveryName) {
  EXPECT_EQ(parse_shard_format("auto"), ShardFormat::automatic);
  EXPECT_EQ(parse_shard_format("llmc"), ShardFormat::llmc);
  EXPECT_EQ(parse_shard_format("flat_u16"), ShardFormat::flat_u16);
  EXPECT_EQ(parse_shard_format("flat_u32"), ShardFormat::flat_u32);
  expect_input_error([] { parse_shard_format("u16"); }, {"'u16'", "flat_u16"});
}

TEST_F(DataShardsTest, LlmcVersion1RoundTrips) {
  const std::vector<uint32_t> tokens = {0, 1, 255, 256, 65535, 7};
  const std::string p = write_llmc("v1.bin", tokens, 1);
  EXPECT_EQ(fs::file_size(p), 1024u + 2 * tokens.size());
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  for (ShardFormat format : {ShardFormat::llmc, ShardFormat::automatic}) {
    TokenShard shard(p, format);
    EXPECT_EQ(shard.path(), p);
    EXPECT_EQ(shard.format(), ShardFormat::llmc);
    EXPECT_EQ(shard.token_bytes(), 2);
    ASSERT_EQ(shard.size(), int64_t(tokens.size()));
    for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(shard.token(int64_t(i)), tokens[i]);
  }
}

TEST_F(DataShardsTest, LlmcVersion7RoundTrips) {
  const std::vector<uint32_t> tokens = {0, 65536, 100000, 4000000000u, 3};
  const std::string p = write_llmc("v7.bin", tokens, 7);
  EXPECT_EQ(fs::file_size(p), 1024u + 4 * tokens.size());
  for (ShardFormat format : {ShardFormat::llmc, ShardFormat::automatic}) {
    TokenShard shard(p, format);
    EXPECT_EQ(shard.format(), ShardFormat::llmc);
    EXPECT_EQ(shard.token_bytes(), 4);
    ASSERT_EQ(shard.size(), int64_t(tokens.size()));
    for (size_t i = 0; i < tokens.size(); ++i) EXPECT_EQ(shard.token(int64_t(i)), tokens[i]);
  }
}

TEST_F(DataShardsTest, FlatFormatsRoundTrip) {
  const std::vector<uint32_t> small = {9, 0, 65535, 42};
  const std::vector<uint32_t> wide = {9, 0, 65536, 4294967295u, 42};
  write_flat_shard(path("u16.bin"), small, false);
  write_flat_shard(path("u32.bin"), wide, true);
  EXPECT_EQ(fs::file_size(path("u16.bin")), 2 * small.size());
  EXPECT_EQ(fs::file_size(path("u32.bin")), 4 * wide.size());
  EXPECT_FALSE(fs::exists(path("u16.bin.tmp")));

  TokenShard a(path("u16.bin"), ShardFormat::flat_u16);
  EXPECT_EQ(a.format(), ShardFormat::flat_u16);
  EXPECT_EQ(a.token_bytes(), 2);
  ASSERT_EQ(a.size(), int64_t(small.size()));
  for (size_t i = 0; i < small.size(); ++i) EXPECT_EQ(a.token(int64_t(i)), small[i]);

  TokenShard b(path("u32.bin"), ShardFormat::flat_u32);
  EXPECT_EQ(b.format(), ShardFormat::flat_u32);
  EXPECT_EQ(b.token_bytes(), 4);
  ASSERT_EQ(b.size(), int64_t(wide.size()));
  for (size_t i = 0; i < wide.size(); ++i) EXPECT_EQ(b.token(int64_t(i)), wide[i]);
}

TEST_F(DataShardsTest, FlatBytesAreLittleEndian) {
  const std::string p = write_bytes("le.bin", {0x34, 0x12, 0x78, 0x56});
  TokenShard u16(p, ShardFormat::flat_u16);
  EXPECT_EQ(u16.token(0), 0x1234u);
  EXPECT_EQ(u16.token(1), 0x5678u);
  TokenShard u32(p, ShardFormat::flat_u32);
  EXPECT_EQ(u32.token(0), 0x56781234u);
}

TEST_F(DataShardsTest, AutomaticRejectsHeaderlessFiles) {
  write_flat_shard(path("flat.bin"), {1, 2, 3, 4}, true);
  expect_input_error([&] { TokenShard(path("flat.bin"), ShardFormat::automatic); },
                     {path("flat.bin"), "first int32 is 1", "flat_u16", "flat_u32"});
  const std::string tiny = write_bytes("tiny.bin", {1, 2});
  expect_input_error([&] { TokenShard(tiny, ShardFormat::automatic); }, {tiny, "2 bytes", "flat_u16"});
}

TEST_F(DataShardsTest, BadMagicNamesFileAndValue) {
  const std::string p = write_bytes("magic.bin", llmc_header(12345, 1, 0));
  expect_input_error([&] { TokenShard(p, ShardFormat::llmc); }, {p, "bad magic 12345"});
}

TEST_F(DataShardsTest, BadVersionNamesFileAndValue) {
  const std::string a = write_bytes("v7_with_u16_magic.bin", llmc_header(kLlmcMagicU16, 7, 0));
  expect_input_error([&] { TokenShard(a, ShardFormat::llmc); }, {a, "unsupported version 7"});
  const std::string b = write_bytes("v1_with_u32_magic.bin", llmc_header(kLlmcMagicU32, 1, 0));
  expect_input_error([&] { TokenShard(b, ShardFormat::automatic); }, {b, "unsupported version 1"});
}

TEST_F(DataShardsTest, SizeMismatchGivesBothSizes) {
  std::vector<unsigned char> bytes = llmc_header(kLlmcMagicU16, 1, 10);
  bytes.resize(1024 + 18);  // two bytes short of 10 uint16 tokens
  const std::string truncated = write_bytes("truncated.bin", bytes);
  expect_input_error([&] { TokenShard(truncated, ShardFormat::llmc); }, {truncated, "1044", "1042"});

  bytes = llmc_header(kLlmcMagicU32, 7, 2);
  bytes.resize(1024 + 12);  // one uint32 too many
  const std::string longer = write_bytes("longer.bin", bytes);
  expect_input_error([&] { TokenShard(longer, ShardFormat::automatic); }, {longer, "1032", "1036"});

  bytes = llmc_header(kLlmcMagicU16, 1, 0);
  bytes.resize(100);
  const std::string short_header = write_bytes("short_header.bin", bytes);
  expect_input_error([&] { TokenShard(short_header, ShardFormat::llmc); }, {short_header, "100 bytes", "1024"});

  const std::string negative = write_bytes("negative.bin", llmc_header(kLlmcMagicU16, 1, -4));
  expect_input_error([&] { TokenShard(negative, ShardFormat::llmc); }, {negative, "-4"});
}

TEST_F(DataShardsTest, FlatSizeMustBeWholeTokens) {
  const std::string odd = write_bytes("odd.bin", {1, 2, 3, 4, 5});
  expect_input_error([&] { TokenShard(odd, ShardFormat::flat_u16); }, {odd, "5 bytes", "2"});
  const std::string six = write_bytes("six.bin", {1, 2, 3, 4, 5, 6});
  expect_input_error([&] { TokenShard(six, ShardFormat::flat_u32); }, {six, "6 bytes", "4"});
}

TEST_F(DataShardsTest, EmptyFileIsRejectedInEveryFormat) {
  const std::string p = write_bytes("empty.bin", {});
  for (ShardFormat format : {ShardFormat::automatic, ShardFormat::llmc, ShardFormat::flat_u16, ShardFormat::flat_u32}) {
    expect_input_error([&] { TokenShard(p, format); }, {p, "empty"});
  }
}

TEST_F(DataShardsTest, MissingFileAndDirectoryAreRejected) {
  const std::string missing = path("missing.bin");
  expect_input_error([&] { TokenShard(missing, ShardFormat::llmc); }, {missing, std::strerror(ENOENT)});
  expect_input_error([&] { TokenStream({missing}, ShardFormat::llmc, 10); }, {missing, std::strerror(ENOENT)});
  expect_input_error([&] { TokenShard(dir_.path(), ShardFormat::flat_u16); }, {dir_.path(), "not a regular file"});
}

TEST_F(DataShardsTest, GlobThatMatchesNothingIsRejected) {
  write_llmc("present.bin", {1, 2});
  const std::string pattern = path("nothing_*.bin");
  expect_input_error([&] { TokenStream({path("present.bin"), pattern}, ShardFormat::llmc, 10); }, {pattern});
  expect_input_error([] { TokenStream({}, ShardFormat::llmc, 10); }, {"no token files"});
}

TEST_F(DataShardsTest, GlobsExpandSortedAndKeepListOrder) {
  write_llmc("shard_b.bin", {20, 21});
  write_llmc("shard_a.bin", {10, 11, 12});
  write_llmc("shard_c.bin", {30});
  write_llmc("extra.bin", {40, 41});
  const TokenStream stream({path("shard_*.bin"), path("extra.bin")}, ShardFormat::automatic, 100);
  ASSERT_EQ(stream.shards().size(), 4u);
  EXPECT_EQ(stream.shards()[0].path(), path("shard_a.bin"));
  EXPECT_EQ(stream.shards()[3].path(), path("extra.bin"));
  EXPECT_EQ(read_all(stream), (std::vector<int32_t>{10, 11, 12, 20, 21, 30, 40, 41}));
}

TEST_F(DataShardsTest, ReadsAcrossShardBoundaries) {
  // Sizes 5, 0, 7, 1, 3: an empty shard and a one-token shard sit between others.
  const std::vector<std::vector<uint32_t>> parts = {{0, 1, 2, 3, 4}, {}, {5, 6, 7, 8, 9, 10, 11}, {12}, {13, 14, 15}};
  std::vector<std::string> paths;
  for (size_t i = 0; i < parts.size(); ++i) {
    paths.push_back(write_llmc("part" + std::to_string(i) + ".bin", parts[i], i % 2 == 0 ? 1 : 7));
  }
  const TokenStream stream(paths, ShardFormat::llmc, 16);
  ASSERT_EQ(stream.size(), 16);
  for (int64_t offset = 0; offset <= 16; ++offset) {
    for (int64_t n = 0; offset + n <= 16; ++n) {
      std::vector<int32_t> out(size_t(n) + 1, -7);
      stream.read(offset, n, out.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], offset + i) << "offset " << offset << " n " << n;
      ASSERT_EQ(out[size_t(n)], -7) << "wrote past the end";
    }
  }
  int32_t sink[2];
  EXPECT_THROW(stream.read(15, 2, sink), std::out_of_range);
  EXPECT_THROW(stream.read(-1, 1, sink), std::out_of_range);
}

TEST_F(DataShardsTest, TokenOutsideVocabularyNamesFileAndOffset) {
  const std::string good = write_llmc("good.bin", {1, 2, 3, 4});
  const std::string bad = write_llmc("bad.bin", {5, 6, 7, 8, 9, 10, 11, 300, 12, 13});
  const TokenStream stream({good, bad}, ShardFormat::llmc, 256);
  std::vector<int32_t> out(14);
  stream.read(0, 11, out.data());  // stops just before the bad token
  expect_input_error([&] { stream.read(0, 14, out.data()); }, {bad, "offset 7", "300", "256"});
  expect_input_error([&] { stream.read(11, 1, out.data()); }, {bad, "offset 7"});

  const TokenStream at_limit({bad}, ShardFormat::llmc, 300);  // id == vocab is also out of range
  expect_input_error([&] { read_all(at_limit); }, {bad, "offset 7", "300"});
  const TokenStream fits({bad}, ShardFormat::llmc, 301);
  EXPECT_EQ(read_all(fits)[7], 300);
}

TEST_F(DataShardsTest, WindowsMatchHandComputation) {
  // Tokens 5 3 9 | 1 5 7 2 8 | 4 6 across three shards; T = 3 gives (10 - 1) / 3 = 3 windows.
  const TokenStream stream({write_llmc("w0.bin", {5, 3, 9}), write_llmc("w1.bin", {1, 5, 7, 2, 8}),
                            write_llmc("w2.bin", {4, 6})},
                           ShardFormat::llmc, 10);
  ASSERT_EQ(stream.num_windows(3), 3);
  std::vector<int32_t> inputs(3), targets(3);

  stream.window(0, 3, -1, inputs.data(), targets.data());
  EXPECT_EQ(inputs, (std::vector<int32_t>{5, 3, 9}));
  EXPECT_EQ(targets, (std::vector<int32_t>{3, 9, 1}));

  stream.window(1, 3, -1, inputs.data(), targets.data());
  EXPECT_EQ(inputs, (std::vector<int32_t>{1, 5, 7}));
  EXPECT_EQ(targets, (std::vector<int32_t>{5, 7, 2}));

  stream.window(2, 3, -1, inputs.data(), targets.data());
  EXPECT_EQ(inputs, (std::vector<int32_t>{2, 8, 4}));
  EXPECT_EQ(targets, (std::vector<int32_t>{8, 4, 6}));

  // End-of-document id 5: the position whose input is 5 predicts nothing.
  stream.window(1, 3, 5, inputs.data(), targets.data());
  EXPECT_EQ(inputs, (std::vector<int32_t>{1, 5, 7}));
  EXPECT_EQ(targets, (std::vector<int32_t>{5, -1, 2}));
  stream.window(0, 3, 5, inputs.data(), targets.data());
  EXPECT_EQ(targets, (std::vector<int32_t>{-1, 9, 1}));
  // A target equal to the end-of-document id is still predicted: with eos 3, t = 0 (target 3) counts and
  // t = 1 (input 3) is ignored.
  stream.window(0, 3, 3, inputs.data(), targets.data());
  EXPECT_EQ(targets, (std::vector<int32_t>{3, -1, 1}));

  EXPECT_THROW(stream.window(3, 3, -1, inputs.data(), targets.data()), std::out_of_range);
  EXPECT_THROW(stream.window(-1, 3, -1, inputs.data(), targets.data()), std::out_of_range);
}

TEST_F(DataShardsTest, WindowCountEdgeCases) {
  const auto windows = [&](size_t tokens, int64_t seq_len) {
    std::vector<uint32_t> ids(tokens);
    std::iota(ids.begin(), ids.end(), 0u);
    const std::string name = "n" + std::to_string(tokens) + ".bin";
    return TokenStream({write_llmc(name, ids, 7)}, ShardFormat::llmc, 1000).num_windows(seq_len);
  };
  EXPECT_EQ(windows(0, 4), 0);
  EXPECT_EQ(windows(1, 4), 0);
  EXPECT_EQ(windows(4, 4), 0);
  EXPECT_EQ(windows(5, 4), 1);
  EXPECT_EQ(windows(8, 4), 1);
  EXPECT_EQ(windows(9, 4), 2);
  EXPECT_EQ(windows(2, 1), 1);
  EXPECT_EQ(windows(9, 1), 8);

  const TokenStream stream({write_llmc("five.bin", {1, 2, 3, 4, 5})}, ShardFormat::llmc, 10);
  std::vector<int32_t> inputs(4), targets(4);
  stream.window(0, 4, -1, inputs.data(), targets.data());  // the one window uses every token
  EXPECT_EQ(targets, (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_THROW(stream.num_windows(0), std::invalid_argument);
}

TEST_F(DataShardsTest, ShardsMoveButDoNotCopy) {
  static_assert(!std::is_copy_constructible_v<TokenShard>);
  static_assert(std::is_nothrow_move_constructible_v<TokenShard>);
  const std::string p = write_llmc("move.bin", {4, 5, 6});
  TokenShard a(p, ShardFormat::llmc);
  TokenShard b(std::move(a));
  EXPECT_EQ(b.token(2), 6u);
  TokenShard c(write_llmc("other.bin", {1}), ShardFormat::llmc);
  c = std::move(b);
  EXPECT_EQ(c.size(), 3);
  EXPECT_EQ(c.token(0), 4u);
  EXPECT_THROW(c.token(3), std::out_of_range);
}

TEST_F(DataShardsTest, WritersRejectWhatTheFormatCannotHold) {
  const std::string p = path("wide.bin");
  expect_input_error([&] { write_llmc_shard(p, {1, 70000}, 1); }, {p, "70000", "offset 1"});
  expect_input_error([&] { write_flat_shard(p, {70000}, false); }, {p, "70000"});
  expect_input_error([&] { write_llmc_shard(p, {1}, 3); }, {p, "version 3"});
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  const std::string nowhere = path("no_such_dir/x.bin");
  expect_input_error([&] { write_flat_shard(nowhere, {1}, true); }, {nowhere});
}

TEST_F(DataShardsTest, WriterReplacesExistingFile) {
  const std::string p = write_llmc("replace.bin", {1, 2, 3, 4, 5});
  write_llmc_shard(p, {9}, 7);
  TokenShard shard(p, ShardFormat::automatic);
  EXPECT_EQ(shard.size(), 1);
  EXPECT_EQ(shard.token(0), 9u);
}

TEST(DataSynthetic, DeterministicPerSeedAndDifferentAcrossSeeds) {
  const std::vector<uint32_t> a = synthesize_tokens(5000, 256, 1);
  EXPECT_EQ(a, synthesize_tokens(5000, 256, 1));
  EXPECT_NE(a, synthesize_tokens(5000, 256, 2));
  // A prefix is the same whatever the length asked for.
  const std::vector<uint32_t> longer = synthesize_tokens(8000, 256, 1);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), longer.begin()));
}

TEST(DataSynthetic, IdsStayInsideVocabulary) {
  for (int64_t vocab : {2, 3, 17, 256, 50257}) {
    const std::vector<uint32_t> tokens = synthesize_tokens(20000, vocab, uint64_t(vocab));
    ASSERT_EQ(tokens.size(), 20000u);
    for (uint32_t t : tokens) ASSERT_LT(t, uint32_t(vocab)) << "vocab " << vocab;
  }
  EXPECT_TRUE(synthesize_tokens(0, 256, 1).empty());
  expect_input_error([] { synthesize_tokens(10, 1, 1); }, {"vocabulary"});
  expect_input_error([] { synthesize_tokens(-1, 256, 1); }, {"-1"});
}

TEST(DataSynthetic, HasLearnableStructure) {
  const int64_t vocab = 256;
  const std::vector<uint32_t> tokens = synthesize_tokens(200000, vocab, 7);
  int64_t documents = 0, arithmetic = 0;
  for (size_t i = 1; i < tokens.size(); ++i) {
    documents += tokens[i] == kSyntheticEosId;
    const int64_t step = (int64_t(tokens[i]) - int64_t(tokens[i - 1]) + (vocab - 1)) % (vocab - 1);
    arithmetic += tokens[i] != kSyntheticEosId && tokens[i - 1] != kSyntheticEosId && step >= 1 && step <= 3;
  }
  EXPECT_GT(documents, 200000 / 600);
  EXPECT_LT(documents, 200000 / 30);
  // Uniform tokens would step by 1..3 about 1.2% of the time.
  EXPECT_GT(double(arithmetic) / double(tokens.size()), 0.15);

  // The bigram table makes the next token far more predictable than the unigram distribution:
  // compare the empirical conditional entropy with the unigram entropy.
  std::vector<double> unigram(size_t(vocab), 0.0), bigram(size_t(vocab * vocab), 0.0);
  for (size_t i = 1; i < tokens.size(); ++i) {
    unigram[tokens[i]] += 1;
    bigram[size_t(tokens[i - 1]) * size_t(vocab) + tokens[i]] += 1;
  }
  const double total = double(tokens.size() - 1);
  double h_unigram = 0, h_joint = 0, h_previous = 0;
  std::vector<double> previous(size_t(vocab), 0.0);
  for (size_t i = 0; i < bigram.size(); ++i) previous[i / size_t(vocab)] += bigram[i];
  for (double c : unigram) h_unigram -= c > 0 ? c / total * std::log(c / total) : 0;
  for (double c : bigram) h_joint -= c > 0 ? c / total * std::log(c / total) : 0;
  for (double c : previous) h_previous -= c > 0 ? c / total * std::log(c / total) : 0;
  EXPECT_LT(h_joint - h_previous, 0.75 * h_unigram) << "H(next | previous) " << h_joint - h_previous
                                                    << " vs H(next) " << h_unigram;
}

TEST_F(DataShardsTest, SyntheticDataLoadsThroughTheStream) {
  const std::vector<uint32_t> tokens = synthesize_tokens(3000, 512, 3);
  write_llmc_shard(path("syn.bin"), tokens, 1);
  const TokenStream stream({path("syn.bin")}, ShardFormat::automatic, 512);
  EXPECT_EQ(read_all(stream), as_ids(tokens));
}

}  // namespace
}  // namespace ratplus::test
