// Tokenizer::FromGguf: the tokenizer.ggml.* metadata llama.cpp's converters write.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "byte_level.h"
#include "byte_level_tokenizer.h"
#include "spm_tokenizer.h"
#include "t2/common/status.h"
#include "t2/formats/gguf.h"
#include "t2/tokenizer/tokenizer.h"

namespace t2::tokenizer {
namespace {

using formats::GgufFile;
using internal::AddedToken;
using internal::BpeTokenizerParts;

// llama.cpp's token types.
constexpr int64_t kControl = 3;
constexpr int64_t kUserDefined = 4;

// `key`'s value, or `fallback` when the key is absent; errors (a wrong type) name the key.
template <typename T, typename Getter>
absl::StatusOr<T> Optional(const GgufFile& file, const std::string& key, T fallback, Getter get) {
  if (!file.Has(key)) return fallback;
  return (file.*get)(key);
}

absl::StatusOr<int32_t> OptionalId(const GgufFile& file, const std::string& key, size_t n_tokens) {
  if (!file.Has(key)) return -1;
  T2_ASSIGN_OR_RETURN(uint64_t id, file.GetUint(key));
  if (id >= n_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": token id ", id, " outside the vocabulary of ", n_tokens));
  }
  return static_cast<int32_t>(id);
}

absl::Status ReadSpecial(const GgufFile& file, size_t n_tokens, bool add_bos_default,
                         BpeTokenizerParts* parts) {
  SpecialTokens& s = parts->special;
  T2_ASSIGN_OR_RETURN(s.bos, OptionalId(file, "tokenizer.ggml.bos_token_id", n_tokens));
  T2_ASSIGN_OR_RETURN(s.eos, OptionalId(file, "tokenizer.ggml.eos_token_id", n_tokens));
  T2_ASSIGN_OR_RETURN(s.unk, OptionalId(file, "tokenizer.ggml.unknown_token_id", n_tokens));
  T2_ASSIGN_OR_RETURN(s.pad, OptionalId(file, "tokenizer.ggml.padding_token_id", n_tokens));
  T2_ASSIGN_OR_RETURN(s.add_bos, Optional(file, "tokenizer.ggml.add_bos_token", add_bos_default,
                                          &GgufFile::GetBool));
  T2_ASSIGN_OR_RETURN(s.add_eos,
                      Optional(file, "tokenizer.ggml.add_eos_token", false, &GgufFile::GetBool));
  T2_ASSIGN_OR_RETURN(parts->chat_template, Optional(file, "tokenizer.chat_template", std::string(),
                                                     &GgufFile::GetString));
  return absl::OkStatus();
}

// transformers registers bos/eos/unk/pad as special tokens too, so they are matched whole in
// text (an UNKNOWN-typed "<unk>" included).
void AddSpecialIds(BpeTokenizerParts* parts) {
  const SpecialTokens& s = parts->special;
  for (int32_t id : {s.bos, s.eos, s.unk, s.pad}) {
    if (id < 0) continue;
    bool present = false;
    for (const AddedToken& t : parts->added) present = present || t.id == id;
    if (present) continue;
    AddedToken t;
    t.id = id;
    t.content = parts->model.Piece(id);
    t.special = true;
    parts->added.push_back(std::move(t));
  }
}

absl::StatusOr<std::vector<int64_t>> TokenTypes(const GgufFile& file, size_t n_tokens) {
  const std::string key = "tokenizer.ggml.token_type";
  if (!file.Has(key)) return std::vector<int64_t>(n_tokens, 1);
  T2_ASSIGN_OR_RETURN(auto types, file.GetIntArray(key));
  if (types.size() != n_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": ", types.size(), " entries for ", n_tokens, " tokens"));
  }
  return types;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Merges(const GgufFile& file) {
  const std::string key = "tokenizer.ggml.merges";
  T2_ASSIGN_OR_RETURN(auto lines, file.GetStringArray(key));
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const size_t space = lines[i].find(' ');
    if (space == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, "[", i, "]: \"", lines[i], "\" is not two tokens"));
    }
    merges.emplace_back(lines[i].substr(0, space), lines[i].substr(space + 1));
  }
  return merges;
}


// Control and user-defined tokens of the vocabulary, registered as added tokens (matched
// before the model runs); control tokens are the special ones.
void AppendAddedTokens(std::vector<std::pair<std::string, int64_t>> added, BpeTokenizerParts* parts) {
  for (auto& [content, type] : added) {
    AddedToken t;
    t.id = *parts->model.Find(content);  // every entry was taken from the model's vocabulary
    t.content = std::move(content);
    t.special = type == kControl;
    parts->added.push_back(std::move(t));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> ByteLevelFromGguf(const GgufFile& file,
                                                             std::vector<std::string> tokens) {
  T2_ASSIGN_OR_RETURN(auto types, TokenTypes(file, tokens.size()));
  T2_ASSIGN_OR_RETURN(auto merges, Merges(file));
  T2_ASSIGN_OR_RETURN(std::string pre, Optional(file, "tokenizer.ggml.pre", std::string("default"),
                                                &GgufFile::GetString));
  T2_ASSIGN_OR_RETURN(auto pre_tokenizer, internal::PreTokenizer::ForGgufPre(pre));

  BpeTokenizerParts parts;
  // Control and user-defined tokens are matched whole in text. As in transformers, only those
  // spelled in the byte-level alphabet (a control token with other characters is a converter
  // mislabel); any other token is respelled into the alphabet for the vocabulary.
  std::vector<std::pair<std::string, int64_t>> added;
  for (size_t id = 0; id < tokens.size(); ++id) {
    const bool spelled = internal::IsByteLevelSpelled(tokens[id]);
    if ((types[id] == kControl || types[id] == kUserDefined) && spelled) {
      added.emplace_back(tokens[id], types[id]);
    }
    if (!spelled) tokens[id] = internal::BytesToByteLevel(tokens[id]);
  }
  const size_t n_tokens = tokens.size();
  // Llama-3's vocabulary comes from tiktoken, which takes a word spelled exactly like a token
  // as that token (its tokenizer.json's ignore_merges).
  internal::BpeOptions options;
  options.ignore_merges = pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe";
  T2_ASSIGN_OR_RETURN(parts.model, internal::BpeModel::Create(std::move(tokens), merges, options));
  AppendAddedTokens(std::move(added), &parts);
  T2_RETURN_IF_ERROR(ReadSpecial(file, n_tokens, /*add_bos_default=*/false, &parts));
  AddSpecialIds(&parts);
  return internal::ByteLevelTokenizer::Create(std::move(parts), std::move(pre_tokenizer));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> SentencePieceFromGguf(const GgufFile& file,
                                                                 std::vector<std::string> tokens) {
  T2_ASSIGN_OR_RETURN(auto types, TokenTypes(file, tokens.size()));
  std::vector<std::pair<std::string, std::string>> merges;
  if (file.Has("tokenizer.ggml.merges")) {
    T2_ASSIGN_OR_RETURN(merges, Merges(file));
  } else {
    const std::string key = "tokenizer.ggml.scores";
    T2_ASSIGN_OR_RETURN(auto scores, file.GetFloatArray(key));
    if (scores.size() != tokens.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, ": ", scores.size(), " entries for ", tokens.size(), " tokens"));
    }
    merges = internal::BpeModel::MergesFromScores(tokens, scores);
  }
  T2_ASSIGN_OR_RETURN(bool add_space_prefix,
                      Optional(file, "tokenizer.ggml.add_space_prefix", true, &GgufFile::GetBool));
  BpeTokenizerParts parts;
  std::vector<std::pair<std::string, int64_t>> added;
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (types[id] == kControl || types[id] == kUserDefined)
      added.emplace_back(tokens[id], types[id]);
  }
  const size_t n_tokens = tokens.size();
  internal::BpeOptions options{.byte_fallback = true, .fuse_unk = true};
  T2_ASSIGN_OR_RETURN(parts.model, internal::BpeModel::Create(std::move(tokens), merges, options));
  AppendAddedTokens(std::move(added), &parts);
  T2_RETURN_IF_ERROR(ReadSpecial(file, n_tokens, /*add_bos_default=*/true, &parts));
  AddSpecialIds(&parts);
  // transformers' LlamaTokenizer: Metaspace prepending "▁" to the text's first stretch, and a
  // decoder that turns "▁" into spaces, fuses byte tokens and drops the leading space.
  // transformers ignores add_space_prefix; t2 follows the file when it says false.
  return internal::SpmTokenizer::Create(std::move(parts),
                                        internal::SpmConfig::Llama(add_space_prefix));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& file) {
  T2_ASSIGN_OR_RETURN(std::string model, file.GetString("tokenizer.ggml.model"));
  T2_ASSIGN_OR_RETURN(auto tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  if (tokens.empty()) return absl::InvalidArgumentError("tokenizer.ggml.tokens is empty");
  if (model == "gpt2") return ByteLevelFromGguf(file, std::move(tokens));
  if (model == "llama") return SentencePieceFromGguf(file, std::move(tokens));
  return absl::UnimplementedError(
      absl::StrCat("tokenizer.ggml.model \"", model, "\" is not supported (gpt2, llama)"));
}

}  // namespace t2::tokenizer
