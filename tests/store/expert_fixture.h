// Tiny SVF expert files and base models for registry tests, made without LibTorch: the
// safetensors writer plus the metadata keys t2::svf::WriteExpert writes. Header-only; the
// registry service test includes it too.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "testing/scratch_dir.h"
#include "t2/common/sha256.h"
#include "t2/formats/safetensors.h"
#include "t2/store/types.h"

namespace t2::store::testing {

// Made up; any 16..128 lowercase hex characters will do.
inline constexpr char kFingerprint[] = "00112233445566778899aabbccddeeff";
inline constexpr char kOtherFingerprint[] = "ffeeddccbbaa99887766554433221100";

using ::t2::testing::ScratchDir;

inline std::string ReadFileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteFileBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Two layers, MLP targets; ranks differ per matrix so a vector in the wrong place shows.
inline BaseModel TinyBase(const std::string& fingerprint = kFingerprint) {
  BaseModel base{
      .fingerprint = fingerprint, .name = "tiny-llama", .targets = "mlp", .target_ranks = {}};
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".mlp.";
    base.target_ranks[prefix + "gate_proj.weight"] = 4;
    base.target_ranks[prefix + "up_proj.weight"] = 3;
    base.target_ranks[prefix + "down_proj.weight"] = 5;
  }
  return base;
}

// What an expert file holds, editable before it is written.
struct ExpertSpec {
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::vector<float>> z;
  // Tensors written with another dtype or shape than F32 [n] (robustness cases).
  std::map<std::string, formats::SafetensorsDType> dtype;
  std::map<std::string, std::vector<int64_t>> shape;
};

// A valid expert for `base`: z = value + 0.01 * index for each of its target matrices.
inline ExpertSpec TinyExpert(const BaseModel& base, float value, const std::string& task = "math") {
  ExpertSpec spec;
  spec.metadata = {{"format_version", "1"},
                   {"base_model", base.name},
                   {"base_fingerprint", base.fingerprint},
                   {"targets", base.targets},
                   {"normalization", "nuclear"},
                   {"task", task},
                   {"metrics", R"({"accuracy":0.5})"},
                   {"created_at", "2025-01-01T00:00:00Z"}};
  for (const auto& [name, rank] : base.target_ranks) {
    std::vector<float> z(static_cast<size_t>(rank));
    for (size_t i = 0; i < z.size(); ++i) z[i] = value + 0.01f * static_cast<float>(i);
    spec.z[name] = z;
  }
  return spec;
}

// The bytes of `spec` as a safetensors file (written through `scratch`).
inline std::string ExpertBytes(const ExpertSpec& spec, const ScratchDir& scratch) {
  std::vector<formats::SafetensorsTensorView> views;
  for (const auto& [name, z] : spec.z) {
    formats::SafetensorsTensorView view;
    view.name = name;
    view.dtype = formats::SafetensorsDType::kF32;
    view.shape = {static_cast<int64_t>(z.size())};
    if (auto it = spec.dtype.find(name); it != spec.dtype.end()) {
      view.dtype = it->second;
      // Same bytes, reinterpreted: F16/I32 etc. views of the float data.
      view.shape = {static_cast<int64_t>(z.size() * sizeof(float)) /
                    formats::DTypeSize(it->second)};
    }
    if (auto it = spec.shape.find(name); it != spec.shape.end()) view.shape = it->second;
    view.data = {reinterpret_cast<const uint8_t*>(z.data()), z.size() * sizeof(float)};
    views.push_back(view);
  }
  const std::filesystem::path path = scratch / "expert.tmp.safetensors";
  absl::Status status = formats::WriteSafetensors(path, views, spec.metadata);
  EXPECT_TRUE(status.ok()) << status;
  std::string bytes = ReadFileBytes(path);
  std::filesystem::remove(path);
  return bytes;
}

inline PublishHeader HeaderFor(const std::string& name, int64_t version, const std::string& bytes) {
  return PublishHeader{.name = name,
                       .version = version,
                       .size_bytes = static_cast<int64_t>(bytes.size()),
                       .sha256 = Sha256Hex(bytes),
                       .publisher = ""};
}

}  // namespace t2::store::testing
