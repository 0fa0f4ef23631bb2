// libFuzzer target: SafetensorsFile::Open on arbitrary bytes, then every tensor and metadata
// entry read. Beyond "no crash, no sanitizer report", checks what a successful Open promises:
// the tensors tile the data section exactly, in order, with the bytes of the input.

#include <cstring>
#include <vector>

#include "fuzz_input_file.h"
#include "t2/formats/safetensors.h"

namespace {

volatile uint64_t g_sink;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static t2::fuzz::InputFile input;
  auto file = t2::formats::SafetensorsFile::Open(input.Set(data, size));
  if (!file.ok()) return 0;

  T2_FUZZ_CHECK(size >= 8);
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  T2_FUZZ_CHECK(header_len <= size - 8);
  size_t offset = 8 + header_len;  // where the next tensor's bytes must start
  uint64_t sum = 0;
  for (const auto& [key, value] : file->metadata()) sum += key.size() + value.size();
  for (const t2::formats::SafetensorsTensor& t : file->tensors()) {
    T2_FUZZ_CHECK(file->Find(t.name) == &t);
    int64_t n = t.NumElements();
    T2_FUZZ_CHECK(n >= 0);
    T2_FUZZ_CHECK(static_cast<uint64_t>(n) * t2::formats::DTypeSize(t.dtype) == t.data.size());
    T2_FUZZ_CHECK(t.data.size() <= size - offset);
    T2_FUZZ_CHECK(t.data.empty() || std::memcmp(t.data.data(), data + offset, t.data.size()) == 0);
    offset += t.data.size();
    sum += t2::fuzz::Touch(t.data.data(), t.data.size());

    std::vector<float> floats(static_cast<size_t>(n));
    (void)t2::formats::ReadAsFloat32(t, floats);
    for (float f : floats) sum += static_cast<uint64_t>(f == f);
  }
  T2_FUZZ_CHECK(offset == size);
  g_sink = sum;
  return 0;
}
