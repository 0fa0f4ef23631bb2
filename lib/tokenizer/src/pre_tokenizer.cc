#include "pre_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::tokenizer::internal {

absl::Status PreTokenizer::AddSplit(std::string_view pattern) {
  T2_ASSIGN_OR_RETURN(auto regex, Regex::Compile(pattern));
  steps_.push_back({std::move(regex), false});
  return absl::OkStatus();
}

absl::Status PreTokenizer::AddDigits(bool individual) {
  return AddSplit(individual ? R"(\p{N})" : R"(\p{N}+)");
}

absl::Status PreTokenizer::AddByteLevel(bool add_prefix_space, bool use_regex) {
  std::shared_ptr<const Regex> regex;
  if (use_regex) {
    T2_ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Split));
  }
  if (regex != nullptr || add_prefix_space) steps_.push_back({std::move(regex), add_prefix_space});
  return absl::OkStatus();
}

absl::StatusOr<PreTokenizer> PreTokenizer::ForGgufPre(std::string_view pre) {
  PreTokenizer p;
  if (pre == "gpt2" || pre == "default" || pre.empty()) {
    T2_RETURN_IF_ERROR(p.AddByteLevel(false, true));
  } else if (pre == "smollm" || pre == "starcoder" || pre == "refact") {
    // Digits one by one, then GPT-2's split: how these vocabularies were trained (their
    // tokenizer.json; llama.cpp's pre-tokenizer for these names agrees).
    T2_RETURN_IF_ERROR(p.AddDigits(true));
    T2_RETURN_IF_ERROR(p.AddByteLevel(false, true));
  } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "smaug-bpe" ||
             pre == "falcon3" || pre == "dbrx") {
    T2_RETURN_IF_ERROR(p.AddSplit(kLlama3Split));
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    T2_RETURN_IF_ERROR(p.AddSplit(kQwen2Split));
  } else {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.ggml.pre: unknown pre-tokenizer \"", AsAbsl(pre), "\""));
  }
  return p;
}

std::vector<std::string> PreTokenizer::Split(std::string_view text) const {
  std::vector<std::string> pieces;
  if (text.empty()) return pieces;
  pieces.emplace_back(text);
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    next.reserve(pieces.size());
    for (std::string& piece : pieces) {
      if (step.add_prefix_space && piece.front() != ' ') piece.insert(piece.begin(), ' ');
      if (step.regex == nullptr) {
        next.push_back(std::move(piece));
        continue;
      }
      size_t last = 0;
      for (const auto& [begin, end] : step.regex->FindAll(piece)) {
        if (begin > last) next.push_back(piece.substr(last, begin - last));
        next.push_back(piece.substr(begin, end - begin));
        last = end;
      }
      if (last < piece.size()) next.push_back(piece.substr(last));
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace t2::tokenizer::internal
