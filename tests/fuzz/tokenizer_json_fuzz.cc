// libFuzzer target: Tokenizer::FromHfJson on fuzzed tokenizer.json text, optionally followed
// by a NUL byte and tokenizer_config.json text (JSON text never holds a raw NUL), then Encode,
// Decode, StreamDecoder and EncodeChat on a few fixed texts. Beyond "no crash, no sanitizer
// report", checks what a loaded tokenizer promises: special and stop ids inside the
// vocabulary (stop ids sorted, unique), Encode's ids inside it with bos/eos added when asked,
// Decode's text valid UTF-8, and StreamDecoder's pieces adding up to Decode's text.

#include <algorithm>
#include <climits>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_input_file.h"
#include "t2/tokenizer/chat_template.h"
#include "t2/tokenizer/tokenizer.h"

namespace {

using t2::tokenizer::Tokenizer;

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    char32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const char32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

constexpr std::string_view kTexts[] = {
    "Hello, world! I'm 12345 years old; don't.",
    "  leading\n\n\ttabs  and trailing  ",
    "<|im_start|>user\nhi<|im_end|>\n<s></s><unk><|endoftext|><|eot_id|>",
    "h\xc3\xa9llo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 e\xcc\x81 \xc2\xa0\xe2\x96\x81x",
    "\xff\xfe invalid \xc3",
};

bool InVocab(const Tokenizer& t, int32_t id) { return id >= 0 && id < t.vocab_size(); }

void CheckDecode(const Tokenizer& t, const std::vector<int32_t>& ids) {
  for (bool skip : {false, true}) {
    const std::string text = t.Decode(ids, skip);
    T2_FUZZ_CHECK(IsValidUtf8(text));
    t2::tokenizer::StreamDecoder stream(t, skip);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.Push(id);
    streamed += stream.Finish();
    T2_FUZZ_CHECK(streamed == text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view config = nul == std::string_view::npos ? "" : input.substr(nul + 1);
  auto loaded = Tokenizer::FromHfJson(json, config);
  if (!loaded.ok()) return 0;
  const Tokenizer& t = **loaded;

  T2_FUZZ_CHECK(t.vocab_size() >= 0);
  const auto& sp = t.special();
  for (int32_t id : {sp.bos, sp.eos, sp.unk, sp.pad}) T2_FUZZ_CHECK(id == -1 || InVocab(t, id));
  T2_FUZZ_CHECK(std::is_sorted(sp.stop_ids.begin(), sp.stop_ids.end()));
  T2_FUZZ_CHECK(std::adjacent_find(sp.stop_ids.begin(), sp.stop_ids.end()) == sp.stop_ids.end());
  for (int32_t id : sp.stop_ids) T2_FUZZ_CHECK(InVocab(t, id));

  for (std::string_view text : kTexts) {
    const std::vector<int32_t> ids = t.Encode(text, /*add_special=*/false);
    for (int32_t id : ids) T2_FUZZ_CHECK(InVocab(t, id));
    CheckDecode(t, ids);
    const std::vector<int32_t> with = t.Encode(text, /*add_special=*/true);
    if (sp.add_bos && sp.bos >= 0) T2_FUZZ_CHECK(!with.empty() && with.front() == sp.bos);
    if (sp.add_eos && sp.eos >= 0) T2_FUZZ_CHECK(!with.empty() && with.back() == sp.eos);
  }
  // Ids outside the vocabulary are skipped, not read.
  CheckDecode(t, {-1, t.vocab_size(), INT_MAX, 0, t.vocab_size() - 1});

  if (!t.chat_template().empty()) {
    const t2::tokenizer::ChatMessage messages[] = {{"system", "Be terse."}, {"user", "Hi"}};
    auto chat = t2::tokenizer::EncodeChat(t, messages);
    if (chat.ok()) {
      for (int32_t id : *chat) T2_FUZZ_CHECK(InVocab(t, id));
    }
  }
  return 0;
}
