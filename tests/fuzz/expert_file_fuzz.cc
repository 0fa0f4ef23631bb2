// libFuzzer target: t2::store::ReadExpertFile, the registry's check of an SVF expert file (a
// safetensors file). The first byte picks how the file is made from the rest of the input:
//  - even: the rest is the file, as is;
//  - odd: a well-formed safetensors file is built from it (FuzzedDataProvider): the eight
//    metadata values (each key present or not), then up to four tensors, each named after a
//    target matrix or freely, F32/F16 1-D or F32 2-D, with fuzzed element bytes. This is
//    where the metadata values get fuzzed.
// Checks that ReadExpertFile accepts exactly the files its rules describe (an oracle written
// from expert_file.h over the safetensors reader's view of the same file); that an accepted
// file's summary repeats its metadata and vector lengths; and that CheckAgainstBase and
// CheckBaseModel accept the base model that summary describes, but not one rank off.

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fuzz_input_file.h"
#include "nlohmann/json.hpp"
#include "t2/formats/safetensors.h"
#include "t2/store/expert_file.h"
#include "t2/svf/targets.h"

namespace {

using t2::formats::SafetensorsDType;
using t2::formats::SafetensorsFile;

constexpr std::array<const char*, 8> kKeys = {"format_version", "base_model",    "base_fingerprint",
                                              "targets",        "normalization", "task",
                                              "metrics",        "created_at"};
constexpr std::array<const char*, 8> kNames = {
    "model.layers.0.mlp.gate_proj.weight",    "model.layers.0.mlp.up_proj.weight",
    "model.layers.1.mlp.down_proj.weight",    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight", "model.layers.2.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight", "lm_head.weight"};

// A safetensors file from structured fuzz input.
std::string BuildFile(FuzzedDataProvider& in) {
  const uint8_t present = in.ConsumeIntegral<uint8_t>();
  nlohmann::json meta = nlohmann::json::object();
  for (size_t k = 0; k < kKeys.size(); ++k) {
    std::string value = in.ConsumeRandomLengthString(256);
    if ((present >> k) & 1) meta[kKeys[k]] = value;
  }
  nlohmann::json header = {{"__metadata__", meta}};
  std::string data;
  const int count = in.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < count; ++i) {
    const size_t pick = in.ConsumeIntegralInRange<size_t>(0, kNames.size());
    const std::string name = pick < kNames.size() ? kNames[pick] : in.ConsumeRandomLengthString(64);
    const int kind = in.ConsumeIntegralInRange(0, 3);  // 0, 1: F32 [n]; 2: F16 [n]; 3: F32 [1, n]
    const int n = in.ConsumeIntegralInRange(0, 16);
    const size_t bytes = static_cast<size_t>(n) * (kind == 2 ? 2 : 4);
    std::vector<uint8_t> values = in.ConsumeBytes<uint8_t>(bytes);
    for (size_t b = values.size(); b < bytes; ++b) values.push_back(b % 4 == 3 ? 0x3F : 0);  // 0.5f
    if (header.contains(name)) continue;
    const size_t begin = data.size();
    data.append(values.begin(), values.end());
    nlohmann::json shape = kind == 3 ? nlohmann::json::array({1, n}) : nlohmann::json::array({n});
    header[name] = {{"dtype", kind == 2 ? "F16" : "F32"},
                    {"shape", shape},
                    {"data_offsets", nlohmann::json::array({begin, data.size()})}};
  }
  std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const uint64_t length = text.size();
  std::string file(reinterpret_cast<const char*>(&length), 8);
  return file + text + data;
}

// Whether expert_file.h's rules accept the file, judged from the safetensors reader's view.
bool ExpectValid(const SafetensorsFile& file) {
  const auto& m = file.metadata();
  for (const char* key : kKeys) {
    if (m.count(key) == 0) return false;
  }
  if (m.at("format_version") != std::to_string(t2::store::kExpertFormatVersion)) return false;
  if (m.at("base_fingerprint").empty()) return false;
  auto targets = t2::svf::ParseTargetSet(m.at("targets"));
  const std::string& norm = m.at("normalization");
  if (!targets.ok() || (norm != "nuclear" && norm != "none")) return false;
  auto metrics = nlohmann::json::parse(m.at("metrics"), nullptr, /*allow_exceptions=*/false);
  if (!metrics.is_object() || file.tensors().empty()) return false;
  for (const t2::formats::SafetensorsTensor& t : file.tensors()) {
    if (!t2::svf::IsTarget(*targets, t.name) || t.dtype != SafetensorsDType::kF32 ||
        t.shape.size() != 1 || t.shape[0] < 1) {
      return false;
    }
    bool any_positive = false;
    for (int64_t i = 0; i < t.shape[0]; ++i) {
      float v;
      std::memcpy(&v, t.data.data() + i * 4, 4);
      if (!std::isfinite(v) || v < 0) return false;
      any_positive = any_positive || v > 0;
    }
    if (norm == "nuclear" && !any_positive) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static t2::fuzz::InputFile input;
  if (size == 0) return 0;
  std::string path;
  if ((data[0] & 1) == 0) {
    path = input.Set(data + 1, size - 1);
  } else {
    FuzzedDataProvider provider(data + 1, size - 1);
    const std::string bytes = BuildFile(provider);
    path = input.Set(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  auto summary = t2::store::ReadExpertFile(path);
  auto file = SafetensorsFile::Open(path);
  T2_FUZZ_CHECK(summary.ok() == (file.ok() && ExpectValid(*file)));
  if (!summary.ok()) {
    T2_FUZZ_CHECK(!file.ok() || absl::IsInvalidArgument(summary.status()));
    return 0;
  }

  const auto& m = file->metadata();
  T2_FUZZ_CHECK(summary->base_model == m.at("base_model"));
  T2_FUZZ_CHECK(summary->base_fingerprint == m.at("base_fingerprint"));
  T2_FUZZ_CHECK(summary->targets == m.at("targets"));
  T2_FUZZ_CHECK(summary->normalization == m.at("normalization"));
  T2_FUZZ_CHECK(summary->task == m.at("task"));
  T2_FUZZ_CHECK(summary->metrics_json == m.at("metrics"));
  T2_FUZZ_CHECK(summary->created_at == m.at("created_at"));
  T2_FUZZ_CHECK(summary->vector_lengths.size() == file->tensors().size());
  for (const auto& t : file->tensors())
    T2_FUZZ_CHECK(summary->vector_lengths.at(t.name) == t.shape[0]);

  t2::store::BaseModel base{
      .fingerprint = summary->base_fingerprint,
      .name = "fuzz-base",
      .targets = summary->targets,
      .target_ranks = {summary->vector_lengths.begin(), summary->vector_lengths.end()}};
  T2_FUZZ_CHECK(t2::store::CheckAgainstBase(*summary, base).ok());
  base.target_ranks.begin()->second += 1;
  T2_FUZZ_CHECK(absl::IsInvalidArgument(t2::store::CheckAgainstBase(*summary, base)));
  base.target_ranks.begin()->second -= 1;
  base.fingerprint = "0123456789abcdef";
  T2_FUZZ_CHECK(t2::store::CheckBaseModel(base).ok());
  T2_FUZZ_CHECK(base.fingerprint == summary->base_fingerprint ||
                absl::IsFailedPrecondition(t2::store::CheckAgainstBase(*summary, base)));
  return 0;
}
