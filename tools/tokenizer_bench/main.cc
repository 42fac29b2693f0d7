// pagedllm-tokenizer-bench: single-thread encode throughput of the tokenizer on a corpus file
// (a JSON array of documents, e.g. from make_bench_corpus.mjs). bench.mjs is the JavaScript twin
// (@huggingface/tokenizers) with the same timing method: one untimed warm-up pass over the first
// 5% of the documents, then one timed pass over all of them, add_special_tokens=false.
//
//   pagedllm-tokenizer-bench --model_dir DIR --corpus FILE [--dump OUT.json]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "text/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, model_dir, "", "directory with tokenizer.json (+ tokenizer_config.json)");
ABSL_FLAG(std::string, corpus, "", "JSON array of documents to encode");
ABSL_FLAG(std::string, dump, "",
          "instead of timing: write, per document, the ids with special tokens added and the "
          "text they decode to (skip_special_tokens) as a JSON array to this file, for comparing "
          "with another implementation (tests/gpu/compare_tokenizers.py)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  const std::string corpus_path = absl::GetFlag(FLAGS_corpus);
  if (model_dir.empty() || corpus_path.empty()) {
    std::fprintf(stderr, "usage: pagedllm-tokenizer-bench --model_dir DIR --corpus FILE\n");
    return 2;
  }
  std::ifstream in(corpus_path);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json json = nlohmann::json::parse(text.str(), nullptr, false);
  if (!json.is_array()) {
    std::fprintf(stderr, "%s: not a JSON array of strings\n", corpus_path.c_str());
    return 2;
  }
  std::vector<std::string> docs;
  size_t bytes = 0;
  for (const auto& doc : json) {
    docs.push_back(doc.get<std::string>());
    bytes += docs.back().size();
  }

  const auto load_start = std::chrono::steady_clock::now();
  auto tokenizer = pagedllm::tokenizer::Tokenizer::Load(model_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  if (!absl::GetFlag(FLAGS_dump).empty()) {
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& doc : docs) {
      absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode(doc, true);
      if (!ids.ok()) {
        out.push_back({{"error", std::string(ids.status().message())}});
        continue;
      }
      absl::StatusOr<std::string> decoded = (*tokenizer)->Decode(*ids, true);
      out.push_back({{"ids", *ids}, {"text", decoded.ok() ? *decoded : std::string()}});
    }
    std::ofstream(absl::GetFlag(FLAGS_dump))
        << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return 0;
  }
  for (size_t i = 0; i < docs.size() / 20; ++i) (void)(*tokenizer)->Encode(docs[i], false);
  size_t tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& doc : docs) tokens += (*tokenizer)->Encode(doc, false).value().size();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"impl\": \"pagedllm C++\", \"model_dir\": \"%s\", \"docs\": %zu, \"bytes\": %zu, "
      "\"tokens\": %zu, \"seconds\": %.3f, \"encode_mb_per_s\": %.2f, \"load_seconds\": %.2f}\n",
      model_dir.c_str(), docs.size(), bytes, tokens, seconds, bytes / seconds / 1e6, load_s);
  return 0;
}
