// Keys and values of recently prefilled prompts, so that a new prompt that begins like one of
// them — the same system prompt, the first pass's fixed classification instructions — only
// prefills what differs. A sequence's keys and values at position i depend only on tokens
// [0, i] and on the weights, so any common beginning of two prompts under the same adapter
// can be copied instead of computed.
//
// Entries are whole prompts, per adapter name; a lookup takes the longest common beginning
// with any of them (a linear scan: the cache holds tens of entries, comparing token ids is
// far cheaper than one prefill). Least recently used entries go first when the byte budget
// is reached. Not thread-safe: the scheduler thread owns it.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "t2/model/llama.h"

namespace t2::engine {

class PrefixCache {
 public:
  // `budget_bytes` 0 disables the cache. Prompts shorter than `min_tokens` are not kept,
  // and matches shorter than it are not worth copying.
  PrefixCache(int64_t budget_bytes, int64_t min_tokens) : budget_(budget_bytes), min_tokens_(min_tokens) {}

  bool enabled() const { return budget_ > 0; }

  // The longest beginning of `ids` cached for `adapter` (0 if none worth using), at most
  // ids.size() - 1 positions: the last prompt token must run to give the next token's
  // logits. `source` row 0 holds them; it stays valid until the next Insert or Forget.
  struct Match {
    int64_t length = 0;
    const model::KvCache* source = nullptr;
  };
  Match Find(const std::string& adapter, std::span<const int32_t> ids);
  // Counts a match that was used (copied into a row).
  void CountReuse(int64_t length) {
    ++stats_.hits;
    stats_.reused_tokens += length;
  }

  // Keeps row `row` of `source`, which holds exactly `ids`' keys and values, under `adapter`.
  // A prompt already covered by an entry only refreshes it; an entry that `ids` extends is
  // replaced.
  absl::Status Insert(const model::LlamaModel& model, const std::string& adapter, std::span<const int32_t> ids,
                      const model::KvCache& source, int64_t row);

  // An adapter replaced or removed under this name: its entries are stale.
  void Forget(const std::string& adapter);

  struct Stats {
    int64_t bytes = 0;
    int64_t entries = 0;
    int64_t lookups = 0;         // Find calls while enabled
    int64_t hits = 0;            // lookups that reused a prefix
    int64_t reused_tokens = 0;   // prompt positions copied instead of computed
  };
  Stats stats() const { return stats_; }

 private:
  struct Entry {
    std::string adapter;
    std::vector<int32_t> ids;
    model::KvCache cache;  // one row, ids.size() positions
    int64_t bytes = 0;
  };
  void Erase(std::list<Entry>::iterator it);

  int64_t budget_;
  int64_t min_tokens_;
  std::list<Entry> entries_;  // most recently used first
  Stats stats_;
};

}  // namespace t2::engine
