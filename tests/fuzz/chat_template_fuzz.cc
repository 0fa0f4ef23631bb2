// libFuzzer target: chat templates. The first byte picks the mode:
//  - even: ChatTemplate::FromJinja on the rest as Jinja source. Checks that a recognised
//    template holds its family's marker, that only ChatML carries a default system prompt and
//    that it is rendered, and that an unrecognised one is an UnimplementedError.
//  - odd: a fixed real template ((byte >> 1) % 4: SmolLM2's ChatML with a default system
//    prompt, plain ChatML, Llama-3, Mistral-Instruct) applied to messages read from the rest:
//    NUL-separated, each a role byte (% 4: system, user, assistant, or a free-form role ending
//    at the first 0x01) then the content; bit 3 of the first byte is add_generation_prompt.
//    Checks that a render contains every message as the format writes it, opens and closes as
//    the format does, and that a refusal is an InvalidArgumentError.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "fuzz_input_file.h"
#include "t2/tokenizer/chat_template.h"

namespace {

using t2::tokenizer::ChatFormat;
using t2::tokenizer::ChatMessage;
using t2::tokenizer::ChatTemplate;

constexpr std::string_view kTemplates[] = {
    // SmolLM2-135M-Instruct's (the default model's GGUF).
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}",
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' }}{% endif %}",
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 "
    "== 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif "
    "%}",
    "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}{% set system = "
    "messages[0]['content'] %}{% set loop_messages = messages[1:] %}{% else %}{% set system = '' "
    "%}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if "
    "(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] "
    "== 'user' %}{% if loop.first and system %}{{ '[INST] ' + system + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' "
    "}}{% endif %}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% "
    "else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% "
    "endfor %}",
};

bool Has(std::string_view s, std::string_view part) { return s.find(part) != s.npos; }

void FuzzSource(std::string_view source) {
  auto parsed = ChatTemplate::FromJinja(source);
  const bool chatml = Has(source, "<|im_start|>");
  const bool llama3 = Has(source, "<|start_header_id|>");
  const bool mistral = Has(source, "[INST]");
  if (!parsed.ok()) {
    T2_FUZZ_CHECK(absl::IsUnimplemented(parsed.status()));
    T2_FUZZ_CHECK(!chatml && !llama3 && !mistral);
    return;
  }
  switch (parsed->format()) {
    case ChatFormat::kChatML:
      T2_FUZZ_CHECK(chatml);
      break;
    case ChatFormat::kLlama3:
      T2_FUZZ_CHECK(llama3);
      break;
    case ChatFormat::kMistral:
      T2_FUZZ_CHECK(mistral);
      break;
  }
  const std::string& system = parsed->default_system();
  if (system.empty()) return;
  T2_FUZZ_CHECK(parsed->format() == ChatFormat::kChatML && Has(source, "<|im_end|>"));
  const ChatMessage messages[] = {{"user", "hi"}};
  auto rendered = parsed->Apply(messages, /*add_generation_prompt=*/true);
  T2_FUZZ_CHECK(rendered.ok());
  T2_FUZZ_CHECK(*rendered == "<|im_start|>system\n" + system +
                                 "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                                 "<|im_start|>assistant\n");
}

std::vector<ChatMessage> Messages(std::string_view rest) {
  std::vector<ChatMessage> messages;
  while (!rest.empty()) {
    const size_t end = rest.find('\0');
    std::string_view item = rest.substr(0, end);
    rest = end == rest.npos ? "" : rest.substr(end + 1);
    ChatMessage m;
    const int role = item.empty() ? 1 : static_cast<uint8_t>(item[0]) % 4;
    if (!item.empty()) item.remove_prefix(1);
    if (role < 3) {
      m.role = role == 0 ? "system" : role == 1 ? "user" : "assistant";
    } else {
      const size_t colon = item.find('\x01');
      m.role = std::string(item.substr(0, colon));
      item = colon == item.npos ? "" : item.substr(colon + 1);
    }
    m.content = std::string(item);
    messages.push_back(std::move(m));
  }
  return messages;
}

void FuzzMessages(uint8_t mode, std::string_view rest) {
  auto parsed = ChatTemplate::FromJinja(kTemplates[(mode >> 1) % 4]);
  T2_FUZZ_CHECK(parsed.ok());
  const std::vector<ChatMessage> messages = Messages(rest);
  const bool generation = (mode >> 3) & 1;
  auto rendered = parsed->Apply(messages, generation);
  if (!rendered.ok()) {
    T2_FUZZ_CHECK(absl::IsInvalidArgument(rendered.status()));
    return;
  }
  T2_FUZZ_CHECK(!messages.empty());
  const std::string& out = *rendered;
  for (const ChatMessage& m : messages) {
    T2_FUZZ_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant");
    switch (parsed->format()) {
      case ChatFormat::kChatML:
        T2_FUZZ_CHECK(Has(out, "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n"));
        break;
      case ChatFormat::kLlama3:  // content is trimmed
        T2_FUZZ_CHECK(Has(out, "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n"));
        break;
      case ChatFormat::kMistral:  // a lone system message renders as nothing
        T2_FUZZ_CHECK(messages.size() == 1 || Has(out, m.content));
        if (m.role == "assistant") T2_FUZZ_CHECK(Has(out, m.content + "</s>"));
        break;
    }
  }
  switch (parsed->format()) {
    case ChatFormat::kChatML:
      T2_FUZZ_CHECK(out.starts_with("<|im_start|>"));
      T2_FUZZ_CHECK(out.ends_with(generation ? "<|im_start|>assistant\n" : "<|im_end|>\n"));
      break;
    case ChatFormat::kLlama3:
      T2_FUZZ_CHECK(out.starts_with("<|begin_of_text|><|start_header_id|>"));
      T2_FUZZ_CHECK(out.ends_with(generation ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                             : "<|eot_id|>"));
      break;
    case ChatFormat::kMistral:
      T2_FUZZ_CHECK(out.starts_with("<s>"));
      T2_FUZZ_CHECK(messages.back().role == "system" || out.ends_with(" [/INST]") ||
                    out.ends_with("</s>"));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    FuzzSource(rest);
  } else {
    FuzzMessages(data[0], rest);
  }
  return 0;
}
