// The BPE model shared by byte-level and SentencePiece vocabularies: a vocabulary, ranked
// merges, and the merge loop of HF tokenizers' BPE (lowest rank first, leftmost on ties).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace t2::tokenizer::internal {

struct BpeOptions {
  bool byte_fallback = false;  // unknown characters become <0xXX> byte tokens
  bool fuse_unk = false;       // consecutive unknown characters give one unk
  bool ignore_merges = false;  // a word spelled exactly like a token is that token
  int32_t unk_id = -1;         // -1: unknown characters are dropped
};

class BpeModel {
 public:
  // `vocab[id]` spells token `id`; where a spelling repeats, the later id wins lookups.
  // InvalidArgumentError naming the merge whose parts or result are not in the vocabulary.
  static absl::StatusOr<BpeModel> Create(
      std::vector<std::string> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // Merges for a vocabulary that has scores but no merge list, as transformers derives them
  // for SentencePiece GGUF files: every split of a token into two tokens, best score first.
  static std::vector<std::pair<std::string, std::string>> MergesFromScores(
      const std::vector<std::string>& vocab, const std::vector<double>& scores);

  // Appends the ids of `word` (spelled in the vocabulary's alphabet).
  void Encode(std::string_view word, std::vector<int32_t>* out) const;

  std::optional<int32_t> Find(std::string_view piece) const;
  const std::string& Piece(int32_t id) const { return vocab_[id]; }
  int32_t size() const { return static_cast<int32_t>(vocab_.size()); }
  const BpeOptions& options() const { return options_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Appends the initial symbols of `word`: one per character, or its byte tokens, or unk.
  void InitialSymbols(std::string_view word, std::vector<int32_t>* ids,
                      std::vector<uint32_t>* lens) const;

  std::vector<std::string> vocab_;
  absl::flat_hash_map<std::string, int32_t> ids_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];
  BpeOptions options_;
};

}  // namespace t2::tokenizer::internal
