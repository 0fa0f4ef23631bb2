// libFuzzer target: GgufFile::Open on arbitrary bytes, then every metadata value (through the
// typed getters too) and every tensor's data read. Also checks what a successful Open
// promises about tensor data: sizes match, all tensors share one data section, and that
// section fits inside the input.

#include <algorithm>
#include <string>
#include <variant>

#include "fuzz_input_file.h"
#include "t2/formats/gguf.h"

namespace {

volatile uint64_t g_sink;

uint64_t Walk(const t2::formats::GgufValue& value) {
  return std::visit(
      [](const auto& v) -> uint64_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return v.size();
        } else if constexpr (std::is_same_v<T, t2::formats::GgufArray>) {
          uint64_t sum = v.values.size();
          for (const auto& item : v.values) sum += Walk(item);
          return sum;
        } else {
          return static_cast<uint64_t>(v == v);  // reads the value (NaN-safe)
        }
      },
      value.value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static t2::fuzz::InputFile input;
  auto file = t2::formats::GgufFile::Open(input.Set(data, size));
  if (!file.ok()) return 0;

  uint64_t sum = file->version() + file->alignment();
  for (const auto& [key, value] : file->metadata()) {
    T2_FUZZ_CHECK(file->Has(key));
    sum += Walk(value);
    // Every getter either succeeds or returns an error; none may crash.
    sum += file->GetString(key).ok() + file->GetUint(key).ok() + file->GetInt(key).ok() +
           file->GetFloat(key).ok() + file->GetBool(key).ok() + file->GetStringArray(key).ok() +
           file->GetIntArray(key).ok() + file->GetFloatArray(key).ok();
  }

  const uint8_t* section = nullptr;  // start of the data section, as each tensor implies it
  uint64_t extent = 0;
  for (const t2::formats::GgufTensorInfo& t : file->tensors()) {
    T2_FUZZ_CHECK(file->FindTensor(t.name) == &t);
    T2_FUZZ_CHECK(t.data.size() == t.n_bytes);
    uint64_t elements = 1;
    for (uint64_t d : t.ne) elements *= d;  // Open promised this does not overflow
    T2_FUZZ_CHECK(elements == t.n_elements);
    T2_FUZZ_CHECK(t.RowMajorShape().size() == t.ne.size());
    if (t.data.data() != nullptr) {
      const uint8_t* base = t.data.data() - t.offset;
      T2_FUZZ_CHECK(section == nullptr || section == base);
      section = base;
    }
    extent = std::max(extent, t.offset + t.n_bytes);
    sum += t2::fuzz::Touch(t.data.data(), t.data.size());
  }
  T2_FUZZ_CHECK(extent <= size);
  g_sink = sum;
  return 0;
}
