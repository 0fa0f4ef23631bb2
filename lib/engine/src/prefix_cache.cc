#include "prefix_cache.h"

#include <algorithm>

#include "t2/common/status.h"

namespace t2::engine {

namespace {

int64_t CommonPrefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  return static_cast<int64_t>(std::mismatch(a.begin(), a.begin() + n, b.begin()).first - a.begin());
}

}  // namespace

PrefixCache::Match PrefixCache::Find(const std::string& adapter, std::span<const int32_t> ids) {
  Match best;
  if (!enabled() || ids.size() < 2) return best;
  ++stats_.lookups;
  auto best_it = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->adapter != adapter) continue;
    const int64_t common = std::min<int64_t>(CommonPrefix(it->ids, ids), static_cast<int64_t>(ids.size()) - 1);
    if (common > best.length) {
      best = {common, &it->cache};
      best_it = it;
    }
  }
  if (best.length < min_tokens_) return {};
  entries_.splice(entries_.begin(), entries_, best_it);  // most recently used
  return best;
}

absl::Status PrefixCache::Insert(const model::LlamaModel& model, const std::string& adapter,
                                 std::span<const int32_t> ids, const model::KvCache& source, int64_t row) {
  const auto length = static_cast<int64_t>(ids.size());
  if (!enabled() || length < min_tokens_) return absl::OkStatus();
  std::vector<std::list<Entry>::iterator> extended;  // redundant once `ids` is kept
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->adapter != adapter) continue;
    const int64_t common = CommonPrefix(it->ids, ids);
    if (common == length) {  // already covered (the same prompt, or one it begins)
      entries_.splice(entries_.begin(), entries_, it);
      return absl::OkStatus();
    }
    if (common == static_cast<int64_t>(it->ids.size())) extended.push_back(it);
  }
  T2_ASSIGN_OR_RETURN(model::KvCache copy, model.NewCache(1, length));
  const int64_t bytes = copy.bytes();
  // Larger than the whole cache: not kept, and the shorter beginnings it extends stay.
  if (bytes > budget_) return absl::OkStatus();
  for (auto it : extended) Erase(it);
  while (stats_.bytes + bytes > budget_ && !entries_.empty()) Erase(std::prev(entries_.end()));
  copy.CopyPrefixFrom(source, row, 0, length);
  entries_.push_front({adapter, std::vector<int32_t>(ids.begin(), ids.end()), std::move(copy), bytes});
  stats_.bytes += bytes;
  ++stats_.entries;
  return absl::OkStatus();
}

void PrefixCache::Forget(const std::string& adapter) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto current = it++;
    if (current->adapter == adapter) Erase(current);
  }
}

void PrefixCache::Erase(std::list<Entry>::iterator it) {
  stats_.bytes -= it->bytes;
  --stats_.entries;
  entries_.erase(it);
}

}  // namespace t2::engine
