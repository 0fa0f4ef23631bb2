#include "bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "utf8.h"

namespace t2::tokenizer::internal {
namespace {

absl::string_view Absl(std::string_view s) { return AsAbsl(s); }

}  // namespace

absl::StatusOr<BpeModel> BpeModel::Create(
    std::vector<std::string> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
    BpeOptions options) {
  BpeModel model;
  model.options_ = options;
  model.vocab_ = std::move(vocab);
  model.ids_.reserve(model.vocab_.size());
  for (size_t id = 0; id < model.vocab_.size(); ++id) {
    model.ids_[model.vocab_[id]] = static_cast<int32_t>(id);
  }
  if (options.unk_id >= model.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unk id ", options.unk_id, " outside the vocabulary"));
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = model.ids_.find(absl::string_view(name));
    model.byte_ids_[b] = it == model.ids_.end() ? -1 : it->second;
  }
  model.merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    auto a = model.ids_.find(left);
    auto b = model.ids_.find(right);
    auto merged = model.ids_.find(absl::StrCat(left, right));
    if (a == model.ids_.end() || b == model.ids_.end() || merged == model.ids_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("merge ", rank, " (\"", left, "\" \"", right,
                                                     "\") uses a token not in the vocabulary"));
    }
    // As in HF, a repeated pair takes its last rank.
    model.merges_[PairKey(a->second, b->second)] = {static_cast<int32_t>(rank), merged->second};
  }
  return model;
}

std::vector<std::pair<std::string, std::string>> BpeModel::MergesFromScores(
    const std::vector<std::string>& vocab, const std::vector<double>& scores) {
  // transformers' generate_merges: for each distinct token in first-seen order (score of its
  // last occurrence), its splits ordered by the ids of the parts; then a stable sort by score,
  // left length, right length, all descending.
  absl::flat_hash_map<std::string, int32_t> ids;
  absl::flat_hash_map<std::string, double> score_of;
  std::vector<const std::string*> order;
  for (size_t i = 0; i < vocab.size(); ++i) {
    ids[vocab[i]] = static_cast<int32_t>(i);
    if (score_of.find(vocab[i]) == score_of.end()) order.push_back(&vocab[i]);
    score_of[vocab[i]] = i < scores.size() ? scores[i] : 0.0;
  }
  struct Candidate {
    std::string left, right;
    double score;
    int32_t left_id, right_id;
  };
  std::vector<Candidate> all;
  for (const std::string* token : order) {
    const double score = score_of[*token];
    std::vector<Candidate> local;
    // Python slices by code point.
    for (size_t pos = Utf8CharLen(*token, 0); pos < token->size();
         pos += Utf8CharLen(*token, pos)) {
      auto l = ids.find(absl::string_view(token->data(), pos));
      auto r = ids.find(absl::string_view(token->data() + pos, token->size() - pos));
      if (l != ids.end() && r != ids.end()) {
        local.push_back({l->first, r->first, score, l->second, r->second});
      }
    }
    std::stable_sort(local.begin(), local.end(), [](const Candidate& x, const Candidate& y) {
      return std::pair(x.left_id, x.right_id) < std::pair(y.left_id, y.right_id);
    });
    for (auto& c : local) all.push_back(std::move(c));
  }
  auto chars = [](const std::string& s) {
    size_t n = 0;
    for (size_t pos = 0; pos < s.size(); pos += Utf8CharLen(s, pos)) ++n;
    return n;
  };
  std::vector<std::tuple<double, size_t, size_t, size_t>> keys;  // key + index
  keys.reserve(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    keys.emplace_back(all[i].score, chars(all[i].left), chars(all[i].right), i);
  }
  // Python's sorted(reverse=True) is stable: equal keys keep their order.
  std::stable_sort(keys.begin(), keys.end(), [](const auto& x, const auto& y) {
    return std::tie(std::get<0>(x), std::get<1>(x), std::get<2>(x)) >
           std::tie(std::get<0>(y), std::get<1>(y), std::get<2>(y));
  });
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(keys.size());
  for (const auto& key : keys) {
    Candidate& c = all[std::get<3>(key)];
    merges.emplace_back(std::move(c.left), std::move(c.right));
  }
  return merges;
}

std::optional<int32_t> BpeModel::Find(std::string_view piece) const {
  auto it = ids_.find(Absl(piece));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>* ids,
                              std::vector<uint32_t>* lens) const {
  int32_t pending_unk = -1;
  uint32_t pending_len = 0;
  auto flush_unk = [&] {
    if (pending_unk >= 0) {
      ids->push_back(pending_unk);
      lens->push_back(pending_len);
      pending_unk = -1;
    }
  };
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = Utf8CharLen(word, pos);
    auto it = ids_.find(Absl(word.substr(pos, len)));
    if (it != ids_.end()) {
      flush_unk();
      ids->push_back(it->second);
      lens->push_back(static_cast<uint32_t>(len));
      pos += len;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (size_t i = 0; i < len; ++i)
        all = all && byte_ids_[static_cast<uint8_t>(word[pos + i])] >= 0;
      if (all) {
        // HF adds these without flushing a pending unk first.
        for (size_t i = 0; i < len; ++i) {
          ids->push_back(byte_ids_[static_cast<uint8_t>(word[pos + i])]);
          lens->push_back(1);
        }
        pos += len;
        continue;
      }
    }
    if (options_.unk_id >= 0) {
      if (pending_unk >= 0 && options_.fuse_unk) {
        pending_len += static_cast<uint32_t>(len);
      } else {
        flush_unk();
        pending_unk = options_.unk_id;
        pending_len = static_cast<uint32_t>(len);
      }
    }
    pos += len;
  }
  flush_unk();
}

void BpeModel::Encode(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = Find(word)) {
      out->push_back(*id);
      return;
    }
  }
  std::vector<int32_t> ids;
  std::vector<uint32_t> lens;
  InitialSymbols(word, &ids, &lens);
  const int n = static_cast<int>(ids.size());
  if (n <= 1) {
    out->insert(out->end(), ids.begin(), ids.end());
    return;
  }
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(PairKey(ids[pos], ids[next[pos]]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (lens[top.pos] == 0 || next[top.pos] < 0) continue;
    const int right = next[top.pos];
    // Skip entries made stale by an earlier merge.
    auto it = merges_.find(PairKey(ids[top.pos], ids[right]));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    ids[top.pos] = top.new_id;
    lens[top.pos] += lens[right];
    lens[right] = 0;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    consider(prev[top.pos]);
    consider(top.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out->push_back(ids[i]);
}

}  // namespace t2::tokenizer::internal
