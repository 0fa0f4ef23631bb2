// The SVD decomposition with its cache: factors that reconstruct W with
// orthonormal U and V, singular values equal to numpy's, a fingerprint that follows the
// weights, and a cache that is reused when valid and rebuilt (never loaded) when truncated,
// corrupted, or made for other weights; interrupted builds resume from staged matrices.
#include "t2/svf/decomposition.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "t2/formats/safetensors.h"
#include "t2/model/device.h"
#include "t2/model/llama.h"
#include "t2/svf/targets.h"
#include "testing/reference_data.h"
#include "testing/scratch_dir.h"

namespace t2::svf {
namespace {

namespace fs = std::filesystem;
using t2::testing::FixturesDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Targets, LayerOf) {
  EXPECT_EQ(LayerOf("model.layers.0.mlp.up_proj.weight"), 0);
  EXPECT_EQ(LayerOf("model.layers.27.self_attn.o_proj.weight"), 27);
  EXPECT_EQ(LayerOf("model.layers.5.input_layernorm.weight"), 5);
  EXPECT_EQ(LayerOf("model.norm.weight"), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers."), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers.3"), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers.3."), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers.-1.mlp.up_proj.weight"), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers.+1.mlp.up_proj.weight"), std::nullopt);
  EXPECT_EQ(LayerOf("model.layers.99999999999999.mlp.up_proj.weight"), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Decomposition

std::unique_ptr<model::LlamaModel> LoadTiny(const std::string& name) {
  auto model = model::LlamaModel::Load(FixturesDir("model/tiny") / name,
                                       {.device = t2::model::DeviceSpec::Cpu()});
  EXPECT_TRUE(model.ok()) << name << ": " << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

using t2::testing::ScratchDir;

absl::StatusOr<Decomposition> BuildCached(const model::LlamaModel& model, const fs::path& dir,
                                          std::vector<DecomposeProgress>* progress = nullptr) {
  DecomposeOptions options{.targets = TargetSet::kAll, .cache_dir = dir};
  if (progress != nullptr)
    options.on_progress = [progress](const DecomposeProgress& p) { progress->push_back(p); };
  return Decomposition::Build(model, options);
}

// Bitwise equal (exact) or within float32 SVD noise of each other. Singular vectors are only
// defined up to sign, so the inexact comparison is on the reconstruction.
void ExpectSameFactors(const Decomposition& a, const Decomposition& b, bool exact) {
  ASSERT_EQ(a.names(), b.names());
  for (const auto& name : a.names()) {
    const SvdFactors* fa = a.Find(name);
    const SvdFactors* fb = b.Find(name);
    ASSERT_NE(fa, nullptr) << name;
    ASSERT_NE(fb, nullptr) << name;
    if (exact) {
      EXPECT_TRUE(at::equal(fa->u, fb->u) && at::equal(fa->s, fb->s) && at::equal(fa->v, fb->v))
          << name;
    } else {
      EXPECT_TRUE(at::allclose(fa->s, fb->s, 1e-5, 1e-6)) << name;
      auto wa = at::matmul(fa->u * fa->s, fa->v.t());
      auto wb = at::matmul(fb->u * fb->s, fb->v.t());
      EXPECT_TRUE(at::allclose(wa, wb, 1e-5, 1e-6)) << name;
    }
  }
}

TEST(Decomposition, FactorsReconstructWithOrthonormalColumnsAndDescendingSigma) {
  for (const char* tiny : {"llama", "qwen2", "mistral"}) {
    SCOPED_TRACE(tiny);
    auto model = LoadTiny(tiny);
    ASSERT_NE(model, nullptr);
    auto d = Decomposition::Build(*model, {.targets = TargetSet::kAll, .verify = true});
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->names(), TargetMatrixNames(model->config().num_hidden_layers, TargetSet::kAll));
    EXPECT_EQ(d->targets(), TargetSet::kAll);
    EXPECT_TRUE(d->cache_path().empty());
    EXPECT_FALSE(d->loaded_from_cache());
    EXPECT_EQ(d->Find("model.embed_tokens.weight"), nullptr);
    int64_t bytes = 0;
    for (const auto& name : d->names()) {
      SCOPED_TRACE(name);
      const SvdFactors* f = d->Find(name);
      ASSERT_NE(f, nullptr);
      const at::Tensor& w = model->parameters().at(name);
      const int64_t n = w.size(0), m = w.size(1), r = std::min(n, m);
      ASSERT_EQ(f->u.sizes(), at::IntArrayRef({n, r}));
      ASSERT_EQ(f->s.sizes(), at::IntArrayRef({r}));
      ASSERT_EQ(f->v.sizes(), at::IntArrayRef({m, r}));
      EXPECT_EQ(f->rank(), r);
      for (const at::Tensor* t : {&f->u, &f->s, &f->v}) {
        EXPECT_EQ(t->scalar_type(), at::kFloat);
        EXPECT_TRUE(t->is_contiguous());
        EXPECT_TRUE(t->device().is_cpu());
      }
      const auto eye = at::eye(r, at::kFloat);
      EXPECT_LT((at::matmul(f->u.t(), f->u) - eye).abs().max().item<float>(), 1e-5f);
      EXPECT_LT((at::matmul(f->v.t(), f->v) - eye).abs().max().item<float>(), 1e-5f);
      EXPECT_TRUE((f->s.slice(0, 0, r - 1) >= f->s.slice(0, 1, r)).all().item<bool>());
      EXPECT_GE(f->s.min().item<float>(), 0.0f);
      const double err = ((w - at::matmul(f->u * f->s, f->v.t())).norm() / w.norm()).item<double>();
      EXPECT_LT(err, 1e-5);
      bytes += (n * r + r + m * r) * 4;
    }
    EXPECT_EQ(d->bytes(), bytes);
    EXPECT_TRUE(d->Verify(model->parameters(), 1e-5).ok());
  }
}

TEST(Decomposition, VerifyNamesTheMatrixThatDoesNotReconstruct) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  auto d = Decomposition::Build(*model, {.targets = TargetSet::kMlp});
  ASSERT_TRUE(d.ok()) << d.status();
  model::WeightMap changed = model->parameters();
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  changed[name] = changed[name] * 1.001;
  auto status = d->Verify(changed, 1e-5);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr(name));
  EXPECT_THAT(std::string(status.message()), HasSubstr("relative reconstruction error"));
  EXPECT_TRUE(d->Verify(changed, 2e-3).ok()) << "a 0.1% change is within a 2e-3 bound";
  changed.erase(name);
  EXPECT_THAT(std::string(d->Verify(changed, 1).message()), HasSubstr(name));
}

TEST(Decomposition, SingularValuesMatchNumpy) {
  const char* python = std::getenv("T2_PYTHON");
  const char* source = std::getenv("T2_SOURCE_DIR");
  ASSERT_TRUE(python != nullptr && *python != '\0' && source != nullptr)
      << "run through ctest (T2_PYTHON)";
  for (const char* tiny : {"llama", "qwen2"}) {
    SCOPED_TRACE(tiny);
    auto model = LoadTiny(tiny);
    ASSERT_NE(model, nullptr);
    auto d = Decomposition::Build(*model, {.targets = TargetSet::kAll});
    ASSERT_TRUE(d.ok()) << d.status();
    std::string command = std::string("'") + python + "' '" + source +
                          "/tests/svf/svd_reference.py' '" +
                          (FixturesDir("model/tiny") / tiny).string() + "'";
    for (const auto& name : d->names()) command += " " + name;
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string out;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
    ASSERT_EQ(::pclose(pipe), 0) << command;
    auto reference = nlohmann::json::parse(out);
    ASSERT_EQ(reference.size(), d->names().size());
    for (const auto& name : d->names()) {
      auto expected = reference.at(name).get<std::vector<double>>();
      const at::Tensor s = d->Find(name)->s;
      ASSERT_EQ(static_cast<int64_t>(expected.size()), s.size(0)) << name;
      for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_NEAR(s[i].item<double>(), expected[i], 1e-5 * expected[0]) << name << " σ" << i;
      }
    }
  }
}

TEST(Decomposition, OnCudaFactorsStayOnTheModelsDeviceAndMatchCpu) {
  if (!model::CudaAvailable()) GTEST_SKIP() << "no CUDA device";
  auto cpu = LoadTiny("llama");
  auto cuda = model::LlamaModel::Load(
      FixturesDir("model/tiny") / "llama",
      {.device = t2::model::DeviceSpec::Cuda(), .dtype = t2::model::ComputeDType::kFloat32});
  ASSERT_TRUE(cpu && cuda.ok()) << cuda.status();
  EXPECT_EQ(BaseFingerprint(**cuda), BaseFingerprint(*cpu)) << "same float32 weights, same base";
  ScratchDir dir;
  auto on_cpu = Decomposition::Build(*cpu, {.targets = TargetSet::kAll});
  auto on_cuda = Decomposition::Build(
      **cuda, {.targets = TargetSet::kAll, .cache_dir = dir.path(), .verify = true});
  ASSERT_TRUE(on_cpu.ok() && on_cuda.ok()) << on_cuda.status();
  for (const auto& name : on_cuda->names()) {
    const SvdFactors* f = on_cuda->Find(name);
    EXPECT_TRUE(f->u.is_cuda() && f->s.is_cuda() && f->v.is_cuda()) << name;
    EXPECT_TRUE(at::allclose(f->s.cpu(), on_cpu->Find(name)->s, 1e-5, 1e-6)) << name;
  }
  auto loaded = Decomposition::Build(**cuda, {.targets = TargetSet::kAll, .cache_dir = dir.path()});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->loaded_from_cache());
  EXPECT_TRUE(loaded->Find(loaded->names()[0])->u.is_cuda());
  ExpectSameFactors(*on_cuda, *loaded, /*exact=*/true);
}

TEST(Fingerprint, StableAcrossLoadsAndFollowsTheWeights) {
  auto a = LoadTiny("llama");
  auto b = LoadTiny("llama");
  auto other = LoadTiny("llama_tied");
  ASSERT_TRUE(a && b && other);
  const std::string fp = BaseFingerprint(*a);
  EXPECT_EQ(fp.size(), 64u);
  EXPECT_EQ(fp.find_first_not_of("0123456789abcdef"), std::string::npos) << fp;
  EXPECT_EQ(BaseFingerprint(*b), fp);
  EXPECT_NE(BaseFingerprint(*other), fp);
  // One element of one matrix, in place (as an expert would), then back.
  at::Tensor w = a->parameters().at("model.layers.2.self_attn.v_proj.weight");
  const float old = w[3][5].item<float>();
  w[3][5] = std::nextafter(old, 1e9f);
  EXPECT_NE(BaseFingerprint(*a), fp);
  w[3][5] = old;
  EXPECT_EQ(BaseFingerprint(*a), fp);
}

TEST(DecomposeOptions, ValidateNamesTheField) {
  EXPECT_TRUE(DecomposeOptions{}.Validate().ok());
  for (double bad : {0.0, -1.0, std::nan("")}) {
    auto status = DecomposeOptions{.max_relative_error = bad}.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(status.message()), HasSubstr("max_relative_error"));
  }
  ScratchDir dir;
  const fs::path file = dir.path() / "not_a_folder";
  std::ofstream(file) << "x";
  auto status = DecomposeOptions{.cache_dir = file}.Validate();
  EXPECT_THAT(std::string(status.message()), HasSubstr("cache_dir"));
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(Decomposition::Build(*model, {.cache_dir = file}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecompositionCache, NoCacheDirWritesNothing) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  const fs::path previous = fs::current_path();
  fs::current_path(dir.path());
  auto d = Decomposition::Build(*model, {.targets = TargetSet::kMlp});
  fs::current_path(previous);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(fs::is_empty(dir.path()));
  EXPECT_TRUE(d->cache_path().empty());
}

TEST(DecompositionCache, SecondBuildLoadsBitIdenticalFactorsAndReportsProgress) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  std::vector<DecomposeProgress> first_progress, second_progress;
  auto first = BuildCached(*model, dir.path(), &first_progress);
  ASSERT_TRUE(first.ok()) << first.status();
  const fs::path expected_path =
      dir.path() / CacheFileName(BaseFingerprint(*model), TargetSet::kAll);
  EXPECT_EQ(first->cache_path(), expected_path);
  EXPECT_EQ(first->base_fingerprint(), BaseFingerprint(*model));
  EXPECT_EQ(expected_path.filename().string(),
            first->base_fingerprint().substr(0, 16) + ".all.svd.safetensors");
  EXPECT_FALSE(first->loaded_from_cache());
  EXPECT_TRUE(fs::exists(expected_path));
  EXPECT_FALSE(fs::exists(expected_path.string() + ".partial")) << "the staging folder is removed";

  const int64_t total = static_cast<int64_t>(first->names().size());
  ASSERT_EQ(static_cast<int64_t>(first_progress.size()), total);
  for (int64_t i = 0; i < total; ++i) {
    EXPECT_EQ(first_progress[i].done, i + 1);
    EXPECT_EQ(first_progress[i].total, total);
    EXPECT_EQ(first_progress[i].cached, 0);
    EXPECT_EQ(first_progress[i].last, first->names()[i]);
    EXPECT_GE(first_progress[i].eta_s, 0.0);
  }
  EXPECT_EQ(first_progress.back().eta_s, 0.0);

  auto second = BuildCached(*model, dir.path(), &second_progress);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->loaded_from_cache());
  EXPECT_EQ(second->cache_path(), expected_path);
  EXPECT_EQ(second->base_fingerprint(), first->base_fingerprint());
  ExpectSameFactors(*first, *second, /*exact=*/true);
  ASSERT_EQ(static_cast<int64_t>(second_progress.size()), total);
  EXPECT_EQ(second_progress.back().cached, total);

  // The file is what the format promises to other readers.
  auto file = formats::SafetensorsFile::Open(expected_path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("format"), "t2-svd");
  EXPECT_EQ(file->metadata().at("format_version"), "1");
  EXPECT_EQ(file->metadata().at("fingerprint"), first->base_fingerprint());
  EXPECT_EQ(file->metadata().at("targets"), "all");
  EXPECT_EQ(file->tensors().size(), 3 * first->names().size());
  EXPECT_NE(file->Find("model.layers.0.mlp.down_proj.weight.v"), nullptr);

  // Another target set is another file.
  auto mlp = Decomposition::Build(*model, {.targets = TargetSet::kMlp, .cache_dir = dir.path()});
  ASSERT_TRUE(mlp.ok()) << mlp.status();
  EXPECT_FALSE(mlp->loaded_from_cache());
  EXPECT_NE(mlp->cache_path(), expected_path);
}

// Ways a cache file goes bad on disk.
enum class Damage {
  kTruncated,
  kEmpty,
  kGarbage,
  kFlippedDataBit,
  kFlippedHeaderByte,
  kMissingTensor,
  kNaN
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Rewrites a safetensors file with `edit` applied to its tensors (copied), metadata kept.
void Rewrite(const fs::path& path,
             const std::function<void(std::vector<formats::SafetensorsTensorView>&,
                                      std::vector<std::vector<uint8_t>>&)>& edit) {
  auto file = formats::SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::vector<uint8_t>> storage;
  std::vector<formats::SafetensorsTensorView> views;
  for (const auto& t : file->tensors()) storage.emplace_back(t.data.begin(), t.data.end());
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const auto& t = file->tensors()[i];
    views.push_back({.name = t.name, .dtype = t.dtype, .shape = t.shape, .data = storage[i]});
  }
  edit(views, storage);
  auto metadata = file->metadata();
  file = absl::InternalError("closed");  // unmap before replacing the file
  ASSERT_TRUE(formats::WriteSafetensors(path, views, metadata).ok());
}

void DamageFile(const fs::path& path, Damage damage) {
  std::string bytes = ReadAll(path);
  ASSERT_GT(bytes.size(), 100u);
  switch (damage) {
    case Damage::kTruncated:
      fs::resize_file(path, bytes.size() / 2);
      return;
    case Damage::kEmpty:
      fs::resize_file(path, 0);
      return;
    case Damage::kGarbage:
      for (size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
      break;
    case Damage::kFlippedDataBit:
      // The lowest mantissa bit of the last float: still a finite, well-formed file.
      bytes[bytes.size() - 4] ^= 0x01;
      break;
    case Damage::kFlippedHeaderByte:
      bytes[20] ^= 0x20;
      break;
    case Damage::kMissingTensor:
      Rewrite(path, [](auto& views, auto&) { views.erase(views.begin() + 4); });
      return;
    case Damage::kNaN:
      Rewrite(path, [](auto& views, auto& storage) {
        for (size_t i = 0; i < views.size(); ++i) {
          if (views[i].name.ends_with(".s")) {
            const float nan = std::nanf("");
            std::memcpy(storage[i].data(), &nan, sizeof(nan));
            return;
          }
        }
      });
      return;
  }
  WriteAll(path, bytes);
}

std::string DamageName(const ::testing::TestParamInfo<Damage>& info) {
  constexpr const char* kNames[] = {"Truncated",     "Empty",         "Garbage", "FlippedDataBit",
                                    "FlippedHeader", "MissingTensor", "NaN"};
  return kNames[static_cast<int>(info.param)];
}

class DamagedCache : public ::testing::TestWithParam<Damage> {};

TEST_P(DamagedCache, IsRebuiltNotLoaded) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  auto reference = BuildCached(*model, dir.path());
  ASSERT_TRUE(reference.ok()) << reference.status();
  DamageFile(reference->cache_path(), GetParam());
  if (HasFatalFailure()) return;

  ::testing::internal::CaptureStderr();
  auto rebuilt = BuildCached(*model, dir.path());
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->loaded_from_cache());
  EXPECT_THAT(log, HasSubstr("ignoring cache"));
  ExpectSameFactors(*reference, *rebuilt, /*exact=*/false);
  EXPECT_TRUE(rebuilt->Verify(model->parameters(), 1e-5).ok());
  // The damaged file was replaced by a good one.
  auto again = BuildCached(*model, dir.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->loaded_from_cache());
}

INSTANTIATE_TEST_SUITE_P(Damages, DamagedCache,
                         ::testing::Values(Damage::kTruncated, Damage::kEmpty, Damage::kGarbage,
                                           Damage::kFlippedDataBit, Damage::kFlippedHeaderByte,
                                           Damage::kMissingTensor, Damage::kNaN),
                         DamageName);

TEST(DecompositionCache, CacheOfOtherWeightsIsNotLoaded) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  auto original = BuildCached(*model, dir.path());
  ASSERT_TRUE(original.ok()) << original.status();
  // Change one matrix, then put the old cache where the new fingerprint's cache belongs.
  model->parameters().at("model.layers.0.mlp.gate_proj.weight").mul_(1.5);
  const std::string fingerprint = BaseFingerprint(*model);
  ASSERT_NE(fingerprint, original->base_fingerprint());
  const fs::path moved = dir.path() / CacheFileName(fingerprint, TargetSet::kAll);
  fs::rename(original->cache_path(), moved);

  ::testing::internal::CaptureStderr();
  auto rebuilt = BuildCached(*model, dir.path());
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(rebuilt->loaded_from_cache());
  EXPECT_THAT(log, HasSubstr("fingerprint"));
  EXPECT_EQ(rebuilt->cache_path(), moved);
  EXPECT_TRUE(rebuilt->Verify(model->parameters(), 1e-5).ok());
  EXPECT_FALSE(original->Verify(model->parameters(), 1e-5).ok());
}

TEST(DecompositionCache, VerifyFailureOfALoadedCacheRebuildsIt) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  auto first = Decomposition::Build(*model, {.targets = TargetSet::kMlp, .cache_dir = dir.path()});
  ASSERT_TRUE(first.ok()) << first.status();
  // A bound no float32 SVD meets: the loaded factors fail, and so do the rebuilt ones.
  auto strict = Decomposition::Build(*model, {.targets = TargetSet::kMlp,
                                              .cache_dir = dir.path(),
                                              .verify = true,
                                              .max_relative_error = 1e-12});
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(strict.status().message()),
              HasSubstr("model.layers.0.mlp.gate_proj.weight"));
  auto normal = Decomposition::Build(
      *model, {.targets = TargetSet::kMlp, .cache_dir = dir.path(), .verify = true});
  ASSERT_TRUE(normal.ok()) << normal.status();
  EXPECT_TRUE(normal->loaded_from_cache());
}

struct Interrupt {};

TEST(DecompositionCache, InterruptedBuildResumesFromValidStagedMatrices) {
  auto model = LoadTiny("qwen2");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  DecomposeOptions options{.targets = TargetSet::kAll, .cache_dir = dir.path()};
  options.on_progress = [](const DecomposeProgress& p) {
    if (p.done == 5) throw Interrupt{};
  };
  EXPECT_THROW((void)Decomposition::Build(*model, options), Interrupt);

  const fs::path cache = dir.path() / CacheFileName(BaseFingerprint(*model), TargetSet::kAll);
  const fs::path staging = cache.string() + ".partial";
  EXPECT_FALSE(fs::exists(cache));
  const auto names = TargetMatrixNames(model->config().num_hidden_layers, TargetSet::kAll);
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(fs::exists(staging / (names[i] + ".safetensors")), i < 5) << names[i];
  }
  // One staged matrix goes bad; it is recomputed, the other four are reused.
  fs::resize_file(staging / (names[2] + ".safetensors"), 100);

  std::vector<DecomposeProgress> progress;
  ::testing::internal::CaptureStderr();
  auto resumed = BuildCached(*model, dir.path(), &progress);
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_FALSE(resumed->loaded_from_cache());
  EXPECT_THAT(log, HasSubstr(names[2]));
  ASSERT_EQ(progress.size(), names.size());
  EXPECT_EQ(progress.back().cached, 4);
  EXPECT_EQ(progress[1].cached, 2);
  EXPECT_EQ(progress[2].cached, 2);
  EXPECT_EQ(resumed->cache_path(), cache);
  EXPECT_TRUE(fs::exists(cache));
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_TRUE(resumed->Verify(model->parameters(), 1e-5).ok());
  auto fresh = Decomposition::Build(*model, {.targets = TargetSet::kAll});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ExpectSameFactors(*fresh, *resumed, /*exact=*/false);
}

TEST(DecompositionCache, StagedMatrixOfOtherWeightsIsRecomputed) {
  auto model = LoadTiny("llama");
  ASSERT_NE(model, nullptr);
  ScratchDir dir;
  DecomposeOptions options{.targets = TargetSet::kMlp, .cache_dir = dir.path()};
  options.on_progress = [](const DecomposeProgress& p) {
    if (p.done == 2) throw Interrupt{};
  };
  EXPECT_THROW((void)Decomposition::Build(*model, options), Interrupt);
  const fs::path old_staging =
      (dir.path() / CacheFileName(BaseFingerprint(*model), TargetSet::kMlp)).string() + ".partial";
  model->parameters().at("model.layers.2.mlp.down_proj.weight").add_(0.25);
  const fs::path new_staging =
      (dir.path() / CacheFileName(BaseFingerprint(*model), TargetSet::kMlp)).string() + ".partial";
  fs::rename(old_staging, new_staging);

  std::vector<DecomposeProgress> progress;
  ::testing::internal::CaptureStderr();
  auto resumed = Decomposition::Build(
      *model, {.targets = TargetSet::kMlp,
               .cache_dir = dir.path(),
               .verify = true,
               .on_progress = [&](const DecomposeProgress& p) { progress.push_back(p); }});
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(progress.back().cached, 0);
  EXPECT_THAT(log, HasSubstr("fingerprint"));
}

}  // namespace
}  // namespace t2::svf
