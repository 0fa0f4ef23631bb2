// Chat formatting for the model families t2 serves, chosen from the model's metadata.
//
// t2 does not embed a Jinja interpreter: it recognises the template family from the template
// source (ChatML, Llama-3, Mistral-Instruct) and renders it natively, taking the template's
// own default system prompt when it has one. The rendered text must equal what HF's
// apply_chat_template produces for the same messages.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace t2::tokenizer {

class Tokenizer;

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFormat { kChatML, kLlama3, kMistral };

class ChatTemplate {
 public:
  // Recognises the family of a Jinja template (a tokenizer's chat_template). UnimplementedError
  // naming the template's first characters when it is none t2 knows.
  static absl::StatusOr<ChatTemplate> FromJinja(std::string_view source);
  static ChatTemplate Of(ChatFormat format, std::string default_system = "");

  // Renders messages; add_generation_prompt appends the assistant header. InvalidArgumentError
  // naming the message index for an unknown role or an order the format cannot express.
  absl::StatusOr<std::string> Apply(std::span<const ChatMessage> messages,
                                    bool add_generation_prompt) const;

  ChatFormat format() const { return format_; }
  const std::string& default_system() const { return default_system_; }

 private:
  ChatFormat format_ = ChatFormat::kChatML;
  std::string default_system_;
};

// The token ids of `messages` rendered with `tokenizer`'s own chat template, the assistant's
// header appended: a prompt ready for the reply (the template writes the special tokens, so
// none are added). FailedPrecondition when the model has no chat template; the template's
// errors otherwise. What the worker, the t2 tool and the trainer send to the model.
absl::StatusOr<std::vector<int32_t>> EncodeChat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages);

}  // namespace t2::tokenizer
