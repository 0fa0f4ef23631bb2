#include "bpe_tokenizer.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "utf8.h"

namespace t2::tokenizer::internal {
namespace {
constexpr int32_t kMaxTokenId = 1 << 24;
}  // namespace

absl::Status BpeTokenizer::Init(BpeTokenizerParts parts,
                                const std::function<std::string(std::string_view)>& normalize) {
  vocab_size_ = model_.size();
  // HF matches tokens with normalized=false in the raw input first, then the others in the
  // normalized text left between them, spelled as the normalizer would write them; that
  // spelling is also what HF decodes them to, while their id is found under the original.
  std::vector<AddedToken> raw, normalized;
  for (const AddedToken& t : parts.added) {
    if (t.id < 0) {
      return absl::InvalidArgumentError(absl::StrCat("added token \"", t.content, "\" has no id"));
    }
    // Tables are sized by the largest id: a stray huge id would allocate gigabytes (and
    // INT_MAX + 1 overflows). The largest real vocabularies are a few hundred thousand.
    if (t.id >= kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrCat("added token \"", t.content, "\" has id ",
                                                     t.id, ", at most ", kMaxTokenId - 1));
    }
    vocab_size_ = std::max(vocab_size_, t.id + 1);
    added_ids_[t.content] = t.id;
    if (!t.normalized) {
      raw.push_back(t);
    } else {
      normalized.push_back(t);
      if (normalize) normalized.back().content = normalize(t.content);
    }
    added_content_[t.id] = t.normalized ? normalized.back().content : t.content;
  }
  T2_ASSIGN_OR_RETURN(added_raw_, AddedTokenMatcher::Create(std::move(raw)));
  T2_ASSIGN_OR_RETURN(added_normalized_, AddedTokenMatcher::Create(std::move(normalized)));

  skip_flags_.assign(vocab_size_, 0);
  for (const AddedToken& t : parts.added) {
    if (t.special) skip_flags_[t.id] = 1;
  }
  for (int32_t id : {parts.special.bos, parts.special.eos, parts.special.unk, parts.special.pad}) {
    if (id >= vocab_size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("special token id ", id, " outside the vocabulary of ", vocab_size_));
    }
    if (id >= 0) skip_flags_[id] = 1;
  }
  special_ = std::move(parts.special);
  chat_template_ = std::move(parts.chat_template);
  special_.stop_ids = StopIds(*this, special_.eos);
  return absl::OkStatus();
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text, bool add_special) const {
  std::string sanitized;
  if (!IsValidUtf8(text)) {
    sanitized = LossyUtf8(text);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  const SpecialTokens& sp = special_;
  if (add_special && sp.add_bos && sp.bos >= 0) ids.push_back(sp.bos);
  for (const auto& seg : added_raw_.Split(text)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else {
      EncodeText(text.substr(seg.begin, seg.end - seg.begin), seg.begin, &ids);
    }
  }
  if (add_special && sp.add_eos && sp.eos >= 0) ids.push_back(sp.eos);
  return ids;
}

std::string BpeTokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  uint32_t state = 0;
  DecodePrefix(ids, skip_special, /*final=*/true, &state, &out);
  return out;
}

bool BpeTokenizer::IsControl(int32_t id) const {
  return id >= 0 && id < vocab_size_ && skip_flags_[id] != 0;
}

std::optional<int32_t> BpeTokenizer::TokenId(std::string_view piece) const {
  auto it = added_ids_.find(AsAbsl(piece));
  if (it != added_ids_.end()) return it->second;
  return model_.Find(piece);
}

const std::string* BpeTokenizer::TokenString(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return nullptr;
  auto it = added_content_.find(id);
  if (it != added_content_.end()) return &it->second;
  if (id < model_.size()) return &model_.Piece(id);
  return nullptr;
}

bool BpeTokenizer::Skipped(int32_t id, bool skip_special) const {
  return TokenString(id) == nullptr || (skip_special && skip_flags_[id] != 0);
}

std::vector<int32_t> StopIds(const Tokenizer& tokenizer, int32_t eos) {
  std::vector<int32_t> ids;
  if (eos >= 0) ids.push_back(eos);
  for (std::string_view piece :
       {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>"}) {
    if (auto id = tokenizer.TokenId(piece)) ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace t2::tokenizer::internal
