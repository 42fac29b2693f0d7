// Small tokenizer.json documents for unit tests, built in code so that each test states the
// vocabulary it relies on.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/tokenizer/byte_level.h"
#include "text/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace pagedllm::tokenizer::testing {

// A byte-level BPE (GPT-2 style): ids 0..255 are the single bytes (in byte order), then the
// merges' results in order. `merges` are written in raw text ("h", "e"); the vocabulary is
// spelled in the byte-level alphabet as real files are.
inline nlohmann::json ByteLevelJson(const std::vector<std::pair<std::string, std::string>>& merges,
                                    bool use_regex = true, bool ignore_merges = false) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    vocab[BytesToByteLevel(std::string(1, static_cast<char>(b)))] = b;
  }
  nlohmann::json merge_list = nlohmann::json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    const std::string merged = BytesToByteLevel(a + b);
    if (!vocab.contains(merged)) vocab[merged] = next++;
    merge_list.push_back(BytesToByteLevel(a) + " " + BytesToByteLevel(b));
  }
  return {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", use_regex}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", merge_list},
        {"ignore_merges", ignore_merges}}},
  };
}

// A SentencePiece-style BPE (Llama 2 style): <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF> = 3..258,
// then `pieces` (written with "▁"), then the merges' results; normalizer Prepend("▁") +
// Replace(" " -> "▁"), decoder Replace, ByteFallback, Fuse, Strip.
inline nlohmann::json SentencePieceJson(
    const std::vector<std::string>& pieces,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  nlohmann::json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int next = 259;
  for (const std::string& piece : pieces) {
    if (!vocab.contains(piece)) vocab[piece] = next++;
  }
  nlohmann::json merge_list = nlohmann::json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    merge_list.push_back({a, b});  // the new ["a", "b"] spelling
  }
  auto special = [](int id, const std::string& content) {
    return nlohmann::json{{"id", id},        {"content", content}, {"single_word", false},
                          {"lstrip", false}, {"rstrip", false},    {"normalized", false},
                          {"special", true}};
  };
  return {
      {"version", "1.0"},
      {"added_tokens", {special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", merge_list},
        {"unk_token", "<unk>"},
        {"byte_fallback", true},
        {"fuse_unk", true}}},
  };
}

inline nlohmann::json AddedTokenJson(int id, const std::string& content, bool special,
                                     bool lstrip = false, bool rstrip = false,
                                     bool single_word = false, bool normalized = false) {
  return {{"id", id},          {"content", content}, {"single_word", single_word},
          {"lstrip", lstrip},  {"rstrip", rstrip},   {"normalized", normalized},
          {"special", special}};
}

inline std::unique_ptr<Tokenizer> MakeTokenizer(const nlohmann::json& json,
                                                const nlohmann::json& config = nullptr) {
  auto tokenizer = Tokenizer::FromJson(json.dump(), config.is_null() ? "" : config.dump());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

}  // namespace pagedllm::tokenizer::testing
