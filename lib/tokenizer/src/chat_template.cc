#include "t2/tokenizer/chat_template.h"

#include "t2/tokenizer/tokenizer.h"

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "utf8.h"

namespace t2::tokenizer {
namespace {

// Python's str.isspace(), which Jinja's trim filter strips.
bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Jinja's `| trim`.
std::string_view Trim(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t len = 0;
    if (!IsPythonSpace(internal::DecodeUtf8At(s, begin, &len))) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    if (!IsPythonSpace(internal::DecodeUtf8At(s, start, &len))) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

// The default system prompt a ChatML template writes when the conversation has none: the
// text of a '<|im_start|>system\n...<|im_end|>' string literal in its source.
std::string DefaultChatMLSystem(std::string_view source) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  for (size_t at = source.find(kOpen); at != std::string_view::npos;
       at = source.find(kOpen, at + 1)) {
    std::string_view rest = source.substr(at + kOpen.size());
    size_t skip = 0;
    if (rest.starts_with("\n")) {
      skip = 1;
    } else if (rest.starts_with("\\n")) {
      skip = 2;
    } else {
      continue;
    }
    rest.remove_prefix(skip);
    const size_t end = rest.find("<|im_end|>");
    if (end == std::string_view::npos) continue;
    // Inside a Jinja string literal: undo its escapes. A literal that is interrupted by
    // template code ("' + message...") is not a fixed default.
    std::string text;
    const std::string_view raw = rest.substr(0, end);
    bool fixed = true;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) {
        const char e = raw[++i];
        text.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
      } else if (raw[i] == '\'' || raw[i] == '"' || raw[i] == '{' || raw[i] == '}') {
        fixed = false;
        break;
      } else {
        text.push_back(raw[i]);
      }
    }
    if (fixed && !text.empty()) return text;
  }
  return "";
}

absl::Status BadMessage(size_t index, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("message ", index, ": ", AsAbsl(why)));
}

bool KnownRole(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant";
}

absl::StatusOr<std::string> ChatML(std::span<const ChatMessage> messages, bool generation_prompt,
                                   const std::string& default_system) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (!KnownRole(m.role)) return BadMessage(i, absl::StrCat("unknown role \"", m.role, "\""));
    if (i == 0 && m.role != "system" && !default_system.empty()) {
      absl::StrAppend(&out, "<|im_start|>system\n", default_system, "<|im_end|>\n");
    }
    absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
  }
  if (generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

absl::StatusOr<std::string> Llama3(std::span<const ChatMessage> messages, bool generation_prompt,
                                   const std::string& default_system) {
  std::string out;
  std::vector<ChatMessage> all;
  if (!default_system.empty() && (messages.empty() || messages[0].role != "system")) {
    all.push_back({"system", default_system});
  }
  all.insert(all.end(), messages.begin(), messages.end());
  const size_t offset = all.size() - messages.size();
  for (size_t i = 0; i < all.size(); ++i) {
    if (!KnownRole(all[i].role)) {
      return BadMessage(i - offset, absl::StrCat("unknown role \"", all[i].role, "\""));
    }
    if (i == 0) out += "<|begin_of_text|>";
    absl::StrAppend(&out, "<|start_header_id|>", all[i].role, "<|end_header_id|>\n\n",
                    AsAbsl(Trim(all[i].content)), "<|eot_id|>");
  }
  if (generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// [INST] user [/INST]assistant</s>..., a leading system message joined to the first user
// turn; user and assistant must alternate, starting with user.
absl::StatusOr<std::string> Mistral(std::span<const ChatMessage> messages,
                                    const std::string& default_system) {
  std::string system = default_system;
  size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    system = messages[0].content;
    first = 1;
  }
  std::string out = "<s>";
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool user_turn = (i - first) % 2 == 0;
    if (!KnownRole(m.role) || m.role == "system") {
      return BadMessage(i, absl::StrCat("role \"", m.role, "\" cannot appear here"));
    }
    if ((m.role == "user") != user_turn) {
      return BadMessage(i, "user and assistant messages must alternate, starting with user");
    }
    if (m.role == "user") {
      const bool with_system = i == first && !system.empty();
      absl::StrAppend(&out, "[INST] ", with_system ? absl::StrCat(system, "\n\n") : "", m.content,
                      " [/INST]");
    } else {
      absl::StrAppend(&out, m.content, "</s>");
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromJinja(std::string_view source) {
  if (source.find("<|im_start|>") != std::string_view::npos) {
    return Of(ChatFormat::kChatML, DefaultChatMLSystem(source));
  }
  if (source.find("<|start_header_id|>") != std::string_view::npos) {
    return Of(ChatFormat::kLlama3);
  }
  if (source.find("[INST]") != std::string_view::npos) return Of(ChatFormat::kMistral);
  return absl::UnimplementedError(
      absl::StrCat("chat template of an unknown family: \"", AsAbsl(source.substr(0, 80)), "\""));
}

ChatTemplate ChatTemplate::Of(ChatFormat format, std::string default_system) {
  ChatTemplate t;
  t.format_ = format;
  t.default_system_ = std::move(default_system);
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Apply(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt) const {
  // As transformers' apply_chat_template.
  if (messages.empty()) return absl::InvalidArgumentError("no messages: a chat needs at least one");
  switch (format_) {
    case ChatFormat::kChatML:
      return ChatML(messages, add_generation_prompt, default_system_);
    case ChatFormat::kLlama3:
      return Llama3(messages, add_generation_prompt, default_system_);
    case ChatFormat::kMistral:
      return Mistral(messages, default_system_);
  }
  return absl::InternalError("unknown chat format");
}

absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  if (tokenizer.chat_template().empty()) return absl::FailedPreconditionError("chat: the model has no chat template");
  T2_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::FromJinja(tokenizer.chat_template()));
  T2_ASSIGN_OR_RETURN(std::string text, tmpl.Apply(messages, /*add_generation_prompt=*/true));
  return tokenizer.Encode(text, /*add_special=*/false);
}

}  // namespace t2::tokenizer
