#include "text/tokenizer/bpe_model.h"

#include <algorithm>
#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "text/tokenizer/byte_level.h"
#include "text/tokenizer/string_keys.h"
#include "text/tokenizer/utf8.h"

namespace pagedllm::tokenizer {
namespace {

// Words with more symbols than this use the heap; shorter ones the O(n^2) scan, which is faster
// for them.
constexpr size_t kHeapThreshold = 48;

constexpr std::string_view kWordMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Whether `token` has the word marker after some other character.
bool HasInnerWordMarker(std::string_view token) {
  size_t start = 0;
  while (token.substr(start, kWordMarker.size()) == kWordMarker) start += kWordMarker.size();
  return token.find(kWordMarker, start) != std::string_view::npos;
}

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

absl::Status ParseMerge(const nlohmann::json& merge, const JsonPath& at, std::string* left,
                        std::string* right) {
  if (merge.is_string()) {
    const std::string& text = merge.get_ref<const std::string&>();
    const size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      return Malformed(at, absl::StrCat("\"", text, "\" is not two tokens separated by a space"));
    }
    *left = text.substr(0, space);
    *right = text.substr(space + 1);
    return absl::OkStatus();
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    *left = merge[0].get<std::string>();
    *right = merge[1].get<std::string>();
    return absl::OkStatus();
  }
  return Malformed(at, "is neither \"a b\" nor [\"a\", \"b\"]");
}

}  // namespace

std::string BpeModel::ToModelSpace(std::string_view token) const {
  if (!byte_level_) return std::string(token);
  std::string bytes;
  if (!ByteLevelToBytes(token, &bytes)) return std::string();
  return bytes;
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Parse(const nlohmann::json& config,
                                                          const JsonPath& at, bool byte_level) {
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->byte_level_ = byte_level;
  auto type = GetStringOr(config, at, "type", "BPE");
  if (!type.ok()) return type.status();
  if (*type != "BPE") return TypeNotSupported(at, *type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto value = GetStringOr(config, at, key, "");
    if (!value.ok()) return value.status();
    if (!value->empty()) return NotSupported(at.Field(key), absl::StrCat("\"", *value, "\""));
  }
  if (auto dropout = OptionalField(config, at, "dropout"); !dropout.ok()) {
    return dropout.status();
  } else if (*dropout != nullptr && !((*dropout)->is_number() && (*dropout)->get<double>() == 0)) {
    return NotSupported(at.Field("dropout"), (*dropout)->dump());
  }
  auto byte_fallback = GetBoolOr(config, at, "byte_fallback", false);
  if (!byte_fallback.ok()) return byte_fallback.status();
  model->byte_fallback_ = *byte_fallback;
  auto ignore_merges = GetBoolOr(config, at, "ignore_merges", false);
  if (!ignore_merges.ok()) return ignore_merges.status();
  model->ignore_merges_ = *ignore_merges;
  auto fuse_unk = GetBoolOr(config, at, "fuse_unk", false);
  if (!fuse_unk.ok()) return fuse_unk.status();
  model->fuse_unk_ = *fuse_unk;

  // Vocabulary.
  auto vocab = OptionalField(config, at, "vocab");
  if (!vocab.ok()) return vocab.status();
  if (*vocab == nullptr || !(*vocab)->is_object()) {
    return Malformed(at.Field("vocab"), "is not an object of token -> id");
  }
  model->vocab_.reserve((*vocab)->size());
  for (auto it = (*vocab)->begin(); it != (*vocab)->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
      return Malformed(at.Field("vocab"), absl::StrCat("entry \"", it.key(), "\" has no valid id"));
    }
    if (it->get<int64_t>() > kMaxTokenId) {
      return Malformed(at.Field("vocab"),
                       absl::StrCat("entry \"", it.key(), "\" has id ", it->get<int64_t>(),
                                    "; ids above ", kMaxTokenId, " are not supported"));
    }
    const auto id = static_cast<int32_t>(it->get<int64_t>());
    if (static_cast<size_t>(id) >= model->id_to_token_.size()) {
      model->id_to_token_.resize(static_cast<size_t>(id) + 1);
    }
    model->id_to_token_[id] = it.key();
    std::string key = model->ToModelSpace(it.key());
    if (!key.empty()) model->vocab_[key] = id;
  }

  // Merges.
  auto merges = OptionalField(config, at, "merges");
  if (!merges.ok()) return merges.status();
  if (*merges != nullptr) {
    if (!(*merges)->is_array()) return Malformed(at.Field("merges"), "is not an array");
    model->merges_.reserve((*merges)->size());
    std::string left, right;
    for (size_t i = 0; i < (*merges)->size(); ++i) {
      const JsonPath merge_at = at.Field("merges").Index(i);
      absl::Status status = ParseMerge((**merges)[i], merge_at, &left, &right);
      if (!status.ok()) return status;
      int32_t ids[3];
      const std::string parts[3] = {left, right, left + right};
      for (int k = 0; k < 3; ++k) {
        auto found = model->vocab_.find(model->ToModelSpace(parts[k]));
        if (found == model->vocab_.end()) {
          return Malformed(merge_at, absl::StrCat("uses \"", parts[k], "\", which is not in ",
                                                  at.Field("vocab").path));
        }
        ids[k] = found->second;
      }
      model->merges_[PairKey(ids[0], ids[1])] = Merge{static_cast<int32_t>(i), ids[2]};
    }
  }

  // unk_token.
  auto unk = GetStringOr(config, at, "unk_token", "");
  if (!unk.ok()) return unk.status();
  if (!unk->empty()) {
    std::optional<int32_t> unk_id = model->TokenToId(*unk);
    if (!unk_id) {
      return Malformed(at.Field("unk_token"),
                       absl::StrCat("\"", *unk, "\" is not in ", at.Field("vocab").path));
    }
    model->unk_id_ = unk_id;
  }
  model->split_at_word_marker_ = !byte_level && model->vocab_.contains(Key(kWordMarker));
  for (const std::string& token : model->id_to_token_) model->CheckWordMarker(token);
  model->BuildByteTables();
  return model;
}

void BpeModel::AddToken(std::string_view content, int32_t id) {
  if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
  id_to_token_[id] = std::string(content);
  std::string key = ToModelSpace(content);
  if (key.empty()) return;
  vocab_[key] = id;
  CheckWordMarker(content);
  if (key.size() == 1 || (key.size() == 6 && key.compare(0, 3, "<0x") == 0)) BuildByteTables();
}

void BpeModel::CheckWordMarker(std::string_view token) {
  if (split_at_word_marker_ && HasInnerWordMarker(token)) split_at_word_marker_ = false;
}

void BpeModel::BuildByteTables() {
  for (int b = 0; b < 256; ++b) {
    auto single = vocab_.find(std::string(1, static_cast<char>(b)));
    single_byte_ids_[b] = single == vocab_.end() ? -1 : single->second;
    auto fallback = vocab_.find(absl::StrFormat("<0x%02X>", b));
    byte_fallback_ids_[b] = fallback == vocab_.end() ? -1 : fallback->second;
  }
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(ToModelSpace(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::Split(std::string_view piece, std::vector<Symbol>* symbols) const {
  symbols->clear();
  if (byte_level_) {
    for (size_t i = 0; i < piece.size(); ++i) {
      symbols->push_back(
          {single_byte_ids_[static_cast<unsigned char>(piece[i])], static_cast<uint32_t>(i), 1});
    }
    return;
  }
  for (size_t i = 0; i < piece.size();) {
    const int len = Utf8SequenceLength(static_cast<unsigned char>(piece[i]));
    int32_t id = -1;
    if (len == 1) {
      id = single_byte_ids_[static_cast<unsigned char>(piece[i])];
    } else if (auto it = vocab_.find(Key(piece.substr(i, len))); it != vocab_.end()) {
      id = it->second;
    }
    symbols->push_back({id, static_cast<uint32_t>(i), static_cast<uint32_t>(len)});
    i += len;
  }
}

void BpeModel::MergeScan(std::vector<Symbol>* symbols) const {
  std::vector<Symbol>& s = *symbols;
  if (s.size() < 2) return;
  // ranks[i]: the merge of (s[i], s[i+1]), or null.
  std::vector<const Merge*> merges(s.size() - 1);
  for (size_t i = 0; i + 1 < s.size(); ++i) merges[i] = FindMerge(s[i].id, s[i + 1].id);
  while (true) {
    size_t best = merges.size();
    int32_t best_rank = INT32_MAX;
    for (size_t i = 0; i < merges.size(); ++i) {
      if (merges[i] != nullptr && merges[i]->rank < best_rank) {
        best_rank = merges[i]->rank;
        best = i;
      }
    }
    if (best == merges.size()) return;
    s[best].id = merges[best]->id;
    s[best].length += s[best + 1].length;
    s.erase(s.begin() + static_cast<ptrdiff_t>(best) + 1);
    merges.erase(merges.begin() + static_cast<ptrdiff_t>(best));
    if (best > 0) merges[best - 1] = FindMerge(s[best - 1].id, s[best].id);
    if (best < merges.size()) merges[best] = FindMerge(s[best].id, s[best + 1].id);
  }
}

void BpeModel::MergeHeap(std::vector<Symbol>* symbols) const {
  std::vector<Symbol>& s = *symbols;
  const auto n = static_cast<int32_t>(s.size());
  if (n < 2) return;
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t left;  // node index: its original position, so equal ranks pop leftmost first
    int32_t right;
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int32_t left) {
    const int32_t right = next[left];
    if (right < 0) return;
    if (const Merge* m = FindMerge(s[left].id, s[right].id)) {
      queue.push({m->rank, left, right, s[left].id, s[right].id});
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Stale when either side was merged away or changed since the candidate was pushed.
    if (s[c.left].length == 0 || next[c.left] != c.right || s[c.left].id != c.left_id ||
        s[c.right].id != c.right_id) {
      continue;
    }
    s[c.left].id = FindMerge(c.left_id, c.right_id)->id;
    s[c.left].length += s[c.right].length;
    s[c.right].length = 0;
    s[c.right].id = -2;
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    if (prev[c.left] >= 0) push(prev[c.left]);
    push(c.left);
  }
  s.erase(std::remove_if(s.begin(), s.end(), [](const Symbol& x) { return x.length == 0; }),
          s.end());
}

void BpeModel::EmitSymbols(std::string_view piece, const std::vector<Symbol>& symbols,
                           std::vector<int32_t>* ids) const {
  for (const Symbol& symbol : symbols) {
    if (symbol.id >= 0) {
      ids->push_back(symbol.id);
      continue;
    }
    const std::string_view text = piece.substr(symbol.begin, symbol.length);
    if (byte_fallback_) {
      bool all = true;
      for (char c : text) all &= byte_fallback_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : text) ids->push_back(byte_fallback_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) ids->push_back(*unk_id_);
    // Without unk_token the symbol is dropped, as the reference does.
  }
}

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.empty()) return;
  if (!split_at_word_marker_) {
    EncodeWord(piece, ids);
    return;
  }
  if (ignore_merges_) {
    if (auto it = vocab_.find(Key(piece)); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  // Cut before every "▁" run that follows another character.
  size_t start = 0;
  for (size_t pos = piece.find(kWordMarker, 1); pos != std::string_view::npos;
       pos = piece.find(kWordMarker, pos + kWordMarker.size())) {
    if (pos >= kWordMarker.size() &&
        piece.compare(pos - kWordMarker.size(), kWordMarker.size(), kWordMarker) == 0) {
      continue;  // inside a run
    }
    EncodeWord(piece.substr(start, pos - start), ids);
    start = pos;
  }
  EncodeWord(piece.substr(start), ids);
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  const size_t hash = TokenCache::Hash(word);
  if (cache_.Lookup(word, hash, ids)) return;
  // ignore_merges: a pre-token that is itself a token stays whole. (When words are cut at "▁",
  // Encode checked the whole piece before cutting.)
  if (ignore_merges_ && !split_at_word_marker_) {
    if (auto it = vocab_.find(Key(word)); it != vocab_.end()) {
      ids->push_back(it->second);
      cache_.Insert(word, hash, &it->second, 1);
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  Split(word, &symbols);
  if (symbols.size() > kHeapThreshold) {
    MergeHeap(&symbols);
  } else {
    MergeScan(&symbols);
  }
  const size_t first = ids->size();
  EmitSymbols(word, symbols, ids);
  cache_.Insert(word, hash, ids->data() + first, ids->size() - first);
}

void BpeModel::MergeForTest(std::vector<int32_t>* symbol_ids, bool use_heap) const {
  std::vector<Symbol> symbols;
  for (size_t i = 0; i < symbol_ids->size(); ++i) {
    symbols.push_back({(*symbol_ids)[i], static_cast<uint32_t>(i), 1});
  }
  if (use_heap) {
    MergeHeap(&symbols);
  } else {
    MergeScan(&symbols);
  }
  symbol_ids->clear();
  for (const Symbol& symbol : symbols) symbol_ids->push_back(symbol.id);
}

}  // namespace pagedllm::tokenizer
