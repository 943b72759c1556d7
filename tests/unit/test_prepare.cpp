// `data prepare` (data/prepare.h): token counts with suffixes, the hash split, the .txt and .jsonl readers,
// shard sizing, and the whole pipeline with a SentencePiece model trained here by spm_train: the shards hold
// every document as BOS + its ids (+ EOS) in input order, split by the hash rule, byte-identical for any
// thread count, and a failure leaves no file behind.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/temp_dir.h"
#include "data/prepare.h"
#include "data/token_shard.h"
#include "inference/tokenizer.h"
#include "test_util.h"

namespace ratplus::test {
namespace {

namespace fs = std::filesystem;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<std::string> read_documents(const std::string& path, const std::string& field = "text") {
  DocumentReader reader(path, field);
  std::vector<std::string> documents;
  for (std::string text; reader.next(text);) documents.push_back(text);
  return documents;
}

TEST(Prepare, TokenCountsTakeSuffixes) {
  EXPECT_EQ(parse_token_count("7", "--n"), 7);
  EXPECT_EQ(parse_token_count("5K", "--n"), 5'000);
  EXPECT_EQ(parse_token_count("100M", "--n"), 100'000'000);
  EXPECT_EQ(parse_token_count("2B", "--n"), 2'000'000'000);
  for (const char* bad : {"", "0", "0M", "M", "1.5M", "10X", "-3", "5KB", "99999999999999999B"})
    expect_input_error([&] { parse_token_count(bad, "--shard-tokens"); }, {"--shard-tokens", std::string("'") + bad + "'"});
}

TEST(Prepare, HashIsFnv1aAndSplitIsUniform) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
  int below = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = split_position("document " + std::to_string(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    below += u < 0.1;
  }
  EXPECT_GT(below, 850);
  EXPECT_LT(below, 1150);
  EXPECT_EQ(split_position("same text"), split_position(std::string("same text")));
}

TEST(Prepare, TextDocumentsAreSeparatedByFormFeedsOrTwoBlankLines) {
  const TempDir dir;
  const std::string text = "\n\nfirst line\n\nsecond paragraph\n\n \nsecond document\n\f\r\nthird document\n\f\n\f\n"
                           "fourth\n  \n\t\n\n";
  write_file(dir.file("a.txt"), text);
  EXPECT_EQ(read_documents(dir.file("a.txt")),
            (std::vector<std::string>{"first line\n\nsecond paragraph", "second document", "third document", "fourth"}));
  write_file(dir.file("one.txt"), "one document\n\nwith two paragraphs\n");
  EXPECT_EQ(read_documents(dir.file("one.txt")), std::vector<std::string>{"one document\n\nwith two paragraphs"});
  DocumentReader reader(dir.file("a.txt"), "text");
  for (std::string doc; reader.next(doc);) {
  }
  EXPECT_EQ(reader.bytes_read(), text.size());
}

TEST(Prepare, JsonLinesHoldOneDocumentPerLine) {
  const TempDir dir;
  write_file(dir.file("a.jsonl"), "{\"text\": \"first\\nline\", \"id\": 1}\n\n{\"text\": \"\"}\n{\"id\": 3, \"text\": \"x\"}");
  EXPECT_EQ(read_documents(dir.file("a.jsonl")), (std::vector<std::string>{"first\nline", "x"}));
  write_file(dir.file("b.jsonl"), "{\"body\": \"b\", \"text\": \"t\"}\n");
  EXPECT_EQ(read_documents(dir.file("b.jsonl"), "body"), std::vector<std::string>{"b"});
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"text\": 1}", "field \"text\" is not a string"},
      {"{\"text\": \"unterminated}", "not valid JSON"},
      {"{\"text\": \"t\", \"id\": 22222e2222}", "not valid JSON"},  // a number beyond a double's range
      {"[\"text\"]", "not a JSON object"},
      {"{\"body\": \"b\"}", "no field \"text\""}};
  for (const auto& [line, message] : bad) {
    write_file(dir.file("bad.jsonl"), "{\"text\": \"fine\"}\n" + line + "\n");
    expect_input_error([&] { read_documents(dir.file("bad.jsonl")); }, {dir.file("bad.jsonl") + ":2: ", message});
  }
  expect_input_error([&] { DocumentReader(dir.file("a.csv"), "text"); }, {"a.csv", "unknown extension"});
}

TEST(Prepare, ShardsHoldExactlyShardTokensButTheLast) {
  const TempDir dir;
  ShardWriter writer(dir.path(), "train", 4, 1);
  writer.append({1, 2, 3});
  writer.append({4, 5, 6, 7, 8});
  writer.append({9});
  writer.finish();
  EXPECT_EQ(writer.documents(), 3);
  EXPECT_EQ(writer.tokens(), 9);
  ASSERT_EQ(writer.shards().size(), 3u);
  const std::vector<std::string> names = {"train_000000.bin", "train_000001.bin", "train_000002.bin"};
  const std::vector<int64_t> sizes = {4, 4, 1};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(writer.shards()[i].file, names[i]);
    EXPECT_EQ(writer.shards()[i].tokens, sizes[i]);
    EXPECT_EQ(TokenShard(dir.file(names[i]), ShardFormat::llmc).size(), sizes[i]);
  }
  const TokenStream stream({dir.file("train_*.bin")}, ShardFormat::llmc, 10);
  std::vector<int32_t> all(9);
  stream.read(0, 9, all.data());
  EXPECT_EQ(all, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));

  ShardWriter wide(dir.path(), "wide", 100, 7);
  wide.append({70000, 1});
  wide.finish();
  EXPECT_EQ(TokenShard(dir.file("wide_000000.bin"), ShardFormat::llmc).token_bytes(), 4);
  ShardWriter none(dir.path(), "none", 100, 1);
  none.finish();
  EXPECT_TRUE(none.shards().empty());
  EXPECT_FALSE(fs::exists(dir.file("none_000000.bin")));
}

#ifdef RATPLUS_HAVE_SENTENCEPIECE

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A corpus of generated sentences, a SentencePiece model trained on it by spm_train (skips the test when
// the program is missing), a .txt input of a few documents and a .jsonl input of many.
class PreparePipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v spm_train >/dev/null 2>&1") != 0) GTEST_SKIP() << "spm_train not installed";
    const char* words[] = {"the", "model", "reads", "text", "and", "writes", "tokens", "while", "every", "layer"};
    uint64_t state = 1;
    const auto sentence = [&] {
      std::string s;
      for (int w = 0; w < 3 + int(state % 7); ++w) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        if (w) s += ' ';
        s += words[(state >> 33) % 10];
      }
      return s;
    };
    std::string corpus;
    for (int i = 0; i < 300; ++i) corpus += sentence() + "\n";
    write_file(dir_.file("corpus.txt"), corpus);
    const std::string train = "spm_train --input=" + dir_.file("corpus.txt") + " --model_prefix=" + dir_.file("sp") +
                              " --vocab_size=40 --hard_vocab_limit=false --model_type=unigram --character_coverage=1.0 >/dev/null 2>&1";
    ASSERT_EQ(std::system(train.c_str()), 0);
    std::string text;
    for (int d = 0; d < 5; ++d) {
      documents_.push_back(sentence() + "\n\n" + sentence());
      text += documents_.back() + "\n\f\n";
    }
    write_file(dir_.file("a.txt"), text);
    std::string jsonl;
    for (int d = 0; d < 400; ++d) {
      documents_.push_back(sentence());
      jsonl += nlohmann::json{{"text", documents_.back()}}.dump() + "\n";
    }
    write_file(dir_.file("b.jsonl"), jsonl);
  }

  PrepareOptions options(const std::string& out, int threads) const {
    PrepareOptions o;
    o.tokenizer = dir_.file("sp.model");
    o.inputs = {dir_.file("a.txt"), dir_.file("b.jsonl")};
    o.out_dir = dir_.file(out);
    o.val_fraction = 0.2;
    o.shard_tokens = 500;
    o.eos = true;
    o.threads = threads;
    return o;
  }

  // Every token of the split's shards, in order.
  std::vector<int32_t> split_tokens(const std::string& out, const std::string& split, int64_t vocab) const {
    const TokenStream stream({dir_.file(out + "/" + split + "_*.bin")}, ShardFormat::llmc, vocab);
    std::vector<int32_t> tokens(size_t(stream.size()));
    stream.read(0, stream.size(), tokens.data());
    return tokens;
  }

  TempDir dir_;
  std::vector<std::string> documents_;
};

TEST_F(PreparePipeline, ShardsHoldEveryDocumentInOrderSplitByHash) {
  const nlohmann::json manifest = prepare_dataset(options("out", 3), [](const PrepareProgress&) {});
  const Tokenizer tokenizer(dir_.file("sp.model"));
  std::vector<int32_t> expected_train, expected_val;
  int64_t val_documents = 0;
  for (const std::string& text : documents_) {
    const bool val = split_position(text) < 0.2;
    std::vector<int32_t>& split = val ? expected_val : expected_train;
    const std::vector<int32_t> ids = tokenizer.encode(text, true);
    ASSERT_EQ(ids.front(), tokenizer.bos_id());
    split.insert(split.end(), ids.begin(), ids.end());
    split.push_back(tokenizer.eos_id());
    val_documents += val;
  }
  EXPECT_EQ(split_tokens("out", "train", tokenizer.vocab_size()), expected_train);
  EXPECT_EQ(split_tokens("out", "val", tokenizer.vocab_size()), expected_val);
  EXPECT_GT(val_documents, 40);
  EXPECT_EQ(manifest["val"]["documents"], val_documents);
  EXPECT_EQ(manifest["train"]["documents"], int64_t(documents_.size()) - val_documents);
  EXPECT_EQ(manifest["train"]["tokens"], int64_t(expected_train.size()));
  EXPECT_EQ(manifest["inputs"][0]["documents"], 5);
  EXPECT_EQ(manifest["inputs"][1]["documents"], 400);
  const auto& shards = manifest["train"]["shards"];
  ASSERT_GT(shards.size(), 2u);
  for (size_t i = 0; i + 1 < shards.size(); ++i) EXPECT_EQ(shards[i]["tokens"], 500);
  EXPECT_EQ(nlohmann::json::parse(read_file(dir_.file("out/manifest.json"))), manifest);
}

TEST_F(PreparePipeline, OutputIsTheSameForAnyThreadCount) {
  prepare_dataset(options("one", 1), [](const PrepareProgress&) {});
  prepare_dataset(options("four", 4), [](const PrepareProgress&) {});
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir_.file("one"))) files.push_back(entry.path().filename());
  EXPECT_GT(files.size(), 3u);
  for (const std::string& name : files)
    EXPECT_EQ(read_file(dir_.file("one/" + name)), read_file(dir_.file("four/" + name))) << name;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_.file("four")), fs::directory_iterator()),
            std::ptrdiff_t(files.size()));
}

TEST_F(PreparePipeline, FailuresLeaveNoFiles) {
  write_file(dir_.file("bad.jsonl"), "{\"text\": \"fine\"}\n{\"text\": \"fine\"}\n{oops\n");
  PrepareOptions o = options("out", 2);
  o.inputs.push_back(dir_.file("bad.jsonl"));
  expect_input_error([&] { prepare_dataset(o, [](const PrepareProgress&) {}); }, {"bad.jsonl:3: not valid JSON"});
  EXPECT_FALSE(fs::exists(o.out_dir));
  fs::create_directory(o.out_dir);
  o.inputs.pop_back();
  write_file(dir_.file("out/other"), "x");
  expect_input_error([&] { prepare_dataset(o, [](const PrepareProgress&) {}); }, {"--out", "not empty"});
  fs::remove(dir_.file("out/other"));
  for (const double bad : {1.0, -0.1}) {
    o.val_fraction = bad;
    expect_input_error([&] { prepare_dataset(o, [](const PrepareProgress&) {}); }, {"--val-fraction"});
  }
  o.val_fraction = 0.2;
  o.inputs = {dir_.file("corpus.txt"), dir_.file("none.txt")};
  expect_input_error([&] { prepare_dataset(o, [](const PrepareProgress&) {}); }, {"none.txt", "does not exist"});
  write_file(dir_.file("blank.txt"), "\n \n");
  o.inputs = {dir_.file("corpus.txt"), dir_.file("blank.txt")};
  expect_input_error([&] { prepare_dataset(o, [](const PrepareProgress&) {}); }, {"blank.txt", "holds no document"});
  EXPECT_TRUE(fs::is_empty(o.out_dir));
}

#else

TEST(Prepare, NeedsSentencePiece) {
  PrepareOptions o;
  o.tokenizer = "tokenizer.model";
  o.inputs = {"a.txt"};
  o.out_dir = "out";
  expect_input_error([&] { prepare_dataset(o, [](const PrepareProgress&) {}); }, {"no SentencePiece library"});
}

#endif

}  // namespace
}  // namespace ratplus::test
