// Thin SVDs of the target matrices, their fingerprinted cache file and its staging folder.
#include "t2/svf/decomposition.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <span>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"
#include "t2/formats/safetensors.h"
#include "t2/model/torch_error.h"

namespace t2::svf {
namespace {

namespace fs = std::filesystem;

constexpr char kFormat[] = "t2-svd";
constexpr char kFormatVersion[] = "1";
constexpr char kStagingSuffix[] = ".partial";
// Elements per CPU copy while hashing: bounds the extra host memory for a GPU model.
constexpr int64_t kHashChunk = int64_t{1} << 22;

struct MatrixShape {
  int64_t n = 0, m = 0;
  int64_t r() const { return std::min(n, m); }
  // Relative cost of its SVD (for the ETA): O(n·m·r).
  double work() const {
    return static_cast<double>(n) * static_cast<double>(m) * static_cast<double>(r());
  }
};

// What a cache or staged file must hold: these matrices, of these shapes, for this base.
struct Expected {
  std::string fingerprint;
  TargetSet targets = TargetSet::kMlp;
  std::vector<std::string> names;
  std::vector<MatrixShape> shapes;
};

using FactorMap = std::map<std::string, SvdFactors>;

std::span<const uint8_t> Bytes(const at::Tensor& cpu_contiguous) {
  return {static_cast<const uint8_t*>(cpu_contiguous.data_ptr()),
          static_cast<size_t>(cpu_contiguous.nbytes())};
}

absl::StatusOr<std::string> Fingerprint(const model::LlamaModel& model) {
  Sha256 hash;
  try {
    c10::NoGradGuard no_grad;
    for (const auto& [name, tensor] : model.parameters()) {
      // A NUL after the name and brackets around the shape delimit the fields, so that
      // different names, shapes or values never concatenate to the same stream.
      hash.Update(name);
      hash.Update(std::string_view("\0", 1));
      std::string shape = "[";
      for (int64_t d : tensor.sizes()) absl::StrAppend(&shape, d, ",");
      hash.Update(shape + "]");
      const at::Tensor flat = tensor.reshape({-1});
      for (int64_t offset = 0; offset < flat.numel(); offset += kHashChunk) {
        const int64_t length = std::min(kHashChunk, flat.numel() - offset);
        hash.Update(Bytes(flat.narrow(0, offset, length).to(at::kCPU, at::kFloat).contiguous()));
      }
    }
  } catch (const c10::Error& e) {
    return model::TorchError("base fingerprint", e);
  }
  return hash.HexDigest();
}

absl::StatusOr<SvdFactors> ComputeSvd(const std::string& name, const at::Tensor& weight) {
  try {
    // No InferenceMode: inference tensors could not be saved for backward by a trainer
    // that differentiates through U diag(σ ⊙ z) Vᵀ.
    c10::NoGradGuard no_grad;
    auto [u, s, vh] = at::linalg_svd(weight.to(at::kFloat), /*full_matrices=*/false);
    SvdFactors f{.u = u.contiguous(), .s = s.contiguous(), .v = vh.t().contiguous()};
    if (!at::isfinite(f.s).all().item<bool>()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "svd of ", name, ": non-finite singular values (the weight holds NaN or Inf)"));
    }
    return f;
  } catch (const c10::Error& e) {
    return model::TorchError(absl::StrCat("svd of ", name), e);
  }
}

// One factor tensor of `file`, checked and copied into a float32 CPU tensor; feeds its bytes
// to `hash` in the order WriteFactorFile hashed them.
absl::StatusOr<at::Tensor> ReadTensor(const formats::SafetensorsFile& file, const std::string& name,
                                      std::vector<int64_t> shape, Sha256& hash) {
  const formats::SafetensorsTensor* t = file.Find(name);
  if (t == nullptr) return absl::DataLossError(absl::StrCat("missing tensor '", name, "'"));
  if (t->dtype != formats::SafetensorsDType::kF32) {
    return absl::DataLossError(
        absl::StrCat("tensor '", name, "' is ", AsAbsl(DTypeName(t->dtype)), ", not F32"));
  }
  if (t->shape != shape) {
    return absl::DataLossError(absl::StrCat("tensor '", name, "' has the wrong shape"));
  }
  hash.Update(t->data);
  at::Tensor out = at::empty(shape, at::kFloat);
  // memcpy, not from_blob: safetensors offsets need not be float-aligned.
  std::memcpy(out.data_ptr(), t->data.data(), t->data.size());
  return out;
}

// Opens a cache or staged file and returns its factors on `device`, or what is wrong with it.
absl::StatusOr<FactorMap> ReadFactorFile(const fs::path& path, const Expected& expected,
                                         const at::Device& device) {
  T2_ASSIGN_OR_RETURN(auto file, formats::SafetensorsFile::Open(path));
  const auto& meta = file.metadata();
  auto field = [&](const std::string& key) {
    auto it = meta.find(key);
    return it == meta.end() ? std::string("<absent>") : it->second;
  };
  if (field("format") != kFormat || field("format_version") != kFormatVersion) {
    return absl::DataLossError(absl::StrCat("not a t2-svd version ", kFormatVersion,
                                            " file (format '", field("format"), "', version '",
                                            field("format_version"), "')"));
  }
  if (field("fingerprint") != expected.fingerprint) {
    return absl::FailedPreconditionError(absl::StrCat("made for base fingerprint ",
                                                      field("fingerprint"), ", the model's is ",
                                                      expected.fingerprint));
  }
  if (field("targets") != TargetSetName(expected.targets) ||
      field("matrices") != absl::StrCat(expected.names.size()) ||
      file.tensors().size() != 3 * expected.names.size()) {
    return absl::DataLossError(absl::StrCat("holds targets '", field("targets"), "' with ",
                                            file.tensors().size(), " tensors; expected ",
                                            AsAbsl(TargetSetName(expected.targets)), " with ",
                                            3 * expected.names.size()));
  }
  Sha256 hash;
  FactorMap factors;
  try {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < expected.names.size(); ++i) {
      const std::string& name = expected.names[i];
      const MatrixShape& shape = expected.shapes[i];
      T2_ASSIGN_OR_RETURN(at::Tensor u, ReadTensor(file, name + ".u", {shape.n, shape.r()}, hash));
      T2_ASSIGN_OR_RETURN(at::Tensor s, ReadTensor(file, name + ".s", {shape.r()}, hash));
      T2_ASSIGN_OR_RETURN(at::Tensor v, ReadTensor(file, name + ".v", {shape.m, shape.r()}, hash));
      for (const at::Tensor* t : {&u, &s, &v}) {
        if (!at::isfinite(*t).all().item<bool>()) {
          return absl::DataLossError(absl::StrCat("factors of '", name, "' hold NaN or Inf"));
        }
      }
      if ((s < 0).any().item<bool>()) {
        return absl::DataLossError(absl::StrCat("'", name, ".s' holds negative singular values"));
      }
      factors[name] = {.u = u.to(device), .s = s.to(device), .v = v.to(device)};
    }
  } catch (const c10::Error& e) {
    return model::TorchError("reading factors", e);
  }
  // The checksum is what catches a flipped bit in the data, which parses fine.
  if (hash.HexDigest() != field("data_sha256")) {
    return absl::DataLossError("data checksum mismatch");
  }
  return factors;
}

// Writes the factors of `names` atomically, with the metadata ReadFactorFile checks.
absl::Status WriteFactorFile(const fs::path& path, const Expected& expected,
                             const std::vector<std::string>& names, const FactorMap& factors) {
  std::vector<at::Tensor> keep;  // CPU copies the views below point into
  std::vector<formats::SafetensorsTensorView> views;
  Sha256 hash;
  try {
    for (const std::string& name : names) {
      const SvdFactors& f = factors.at(name);
      for (auto [suffix, tensor] :
           {std::pair{".u", &f.u}, std::pair{".s", &f.s}, std::pair{".v", &f.v}}) {
        keep.push_back(tensor->to(at::kCPU, at::kFloat).contiguous());
        const at::Tensor& cpu = keep.back();
        hash.Update(Bytes(cpu));
        views.push_back({.name = name + suffix,
                         .dtype = formats::SafetensorsDType::kF32,
                         .shape = std::vector<int64_t>(cpu.sizes().begin(), cpu.sizes().end()),
                         .data = Bytes(cpu)});
      }
    }
  } catch (const c10::Error& e) {
    return model::TorchError(absl::StrCat("writing ", path.string()), e);
  }
  const std::map<std::string, std::string> metadata = {
      {"format", kFormat},
      {"format_version", kFormatVersion},
      {"fingerprint", expected.fingerprint},
      {"targets", std::string(TargetSetName(expected.targets))},
      {"matrices", absl::StrCat(names.size())},
      {"data_sha256", hash.HexDigest()},
  };
  return formats::WriteSafetensors(path, views, metadata);
}

fs::path StagedPath(const fs::path& staging, const std::string& name) {
  return staging / (name + ".safetensors");
}

// Computes (or takes from `staging`, when not empty) the factors of every expected matrix,
// reporting progress after each.
absl::StatusOr<FactorMap> ComputeAll(const model::LlamaModel& model,
                                     const DecomposeOptions& options, const Expected& expected,
                                     fs::path staging, const at::Device& device) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  double work_left = 0, work_computed = 0, compute_s = 0;
  for (const MatrixShape& s : expected.shapes) work_left += s.work();
  DecomposeProgress progress;
  progress.total = static_cast<int64_t>(expected.names.size());
  FactorMap factors;
  for (size_t i = 0; i < expected.names.size(); ++i) {
    const std::string& name = expected.names[i];
    const fs::path staged = staging.empty() ? fs::path() : StagedPath(staging, name);
    std::error_code ec;
    bool reused = false;
    if (!staged.empty() && fs::exists(staged, ec)) {
      const Expected one{expected.fingerprint, expected.targets, {name}, {expected.shapes[i]}};
      auto loaded = ReadFactorFile(staged, one, device);
      if (loaded.ok()) {
        factors[name] = std::move(loaded->at(name));
        reused = true;
        ++progress.cached;
      } else {
        LogWarning(absl::StrCat("svd: ignoring staged ", staged.string(), ": ",
                                loaded.status().message(), "; recomputing it"));
      }
    }
    if (!reused) {
      const auto t0 = Clock::now();
      T2_ASSIGN_OR_RETURN(factors[name], ComputeSvd(name, model.parameters().at(name)));
      compute_s += std::chrono::duration<double>(Clock::now() - t0).count();
      work_computed += expected.shapes[i].work();
      if (!staged.empty()) {
        const Expected one{expected.fingerprint, expected.targets, {name}, {expected.shapes[i]}};
        if (auto s = WriteFactorFile(staged, one, {name}, factors); !s.ok()) {
          LogWarning(absl::StrCat("svd: cannot stage ", name, ": ", s.message(),
                                  "; continuing without staging"));
          staging.clear();
        }
      }
    }
    work_left -= expected.shapes[i].work();
    progress.done = static_cast<int64_t>(i) + 1;
    progress.last = name;
    progress.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
    // SVD time grows as n·m·r, so matrices of different shapes are weighed by that.
    progress.eta_s = work_computed > 0 ? compute_s / work_computed * std::max(work_left, 0.0) : 0.0;
    if (options.on_progress) options.on_progress(progress);
  }
  return factors;
}

}  // namespace

absl::Status DecomposeOptions::Validate() const {
  if (!std::isfinite(max_relative_error) || max_relative_error <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_relative_error must be a positive finite number, got ", max_relative_error));
  }
  std::error_code ec;
  if (!cache_dir.empty() && fs::exists(cache_dir, ec) && !fs::is_directory(cache_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache_dir: ", cache_dir.string(), " is not a directory"));
  }
  return absl::OkStatus();
}

std::string BaseFingerprint(const model::LlamaModel& model) {
  auto fingerprint = Fingerprint(model);
  if (!fingerprint.ok()) {
    LogWarning(absl::StrCat("svd: ", fingerprint.status().message()));
    return "";
  }
  return *std::move(fingerprint);
}

std::filesystem::path CacheFileName(const std::string& fingerprint, TargetSet targets) {
  return absl::StrCat(fingerprint.substr(0, 16), ".", AsAbsl(TargetSetName(targets)),
                      ".svd.safetensors");
}

absl::StatusOr<Decomposition> Decomposition::Build(const model::LlamaModel& model,
                                                   const DecomposeOptions& options) {
  T2_RETURN_IF_ERROR(options.Validate());
  Decomposition d;
  d.targets_ = options.targets;
  d.names_ = TargetMatrixNames(model.config().num_hidden_layers, options.targets);
  Expected expected;
  expected.targets = options.targets;
  expected.names = d.names_;
  at::Device device = at::kCPU;
  for (const std::string& name : d.names_) {
    auto it = model.parameters().find(name);
    if (it == model.parameters().end() || it->second.dim() != 2) {
      return absl::FailedPreconditionError(
          absl::StrCat("svd: the model has no matrix '", name, "'"));
    }
    expected.shapes.push_back({it->second.size(0), it->second.size(1)});
    device = it->second.device();
  }
  T2_ASSIGN_OR_RETURN(expected.fingerprint, Fingerprint(model));
  d.fingerprint_ = expected.fingerprint;

  fs::path path;
  if (!options.cache_dir.empty()) {
    path = options.cache_dir / CacheFileName(d.fingerprint_, options.targets);
    std::error_code ec;
    if (fs::exists(path, ec)) {
      const auto start = std::chrono::steady_clock::now();
      auto loaded = ReadFactorFile(path, expected, device);
      if (loaded.ok()) {
        d.factors_ = *std::move(loaded);
        d.cache_path_ = path;
        d.loaded_from_cache_ = true;
        absl::Status verified = options.verify
                                    ? d.Verify(model.parameters(), options.max_relative_error)
                                    : absl::OkStatus();
        if (verified.ok()) {
          DecomposeProgress progress;
          progress.total = static_cast<int64_t>(d.names_.size());
          for (const std::string& name : d.names_) {
            progress.done = progress.cached = progress.done + 1;
            progress.last = name;
            progress.elapsed_s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (options.on_progress) options.on_progress(progress);
          }
          return d;
        }
        loaded = verified;
        d.factors_.clear();
        d.cache_path_.clear();
        d.loaded_from_cache_ = false;
      }
      LogWarning(absl::StrCat("svd: ignoring cache ", path.string(), ": ",
                              loaded.status().message(), "; rebuilding it"));
    }
    fs::create_directories(path.string() + kStagingSuffix, ec);
    if (ec) {
      LogWarning(absl::StrCat("svd: cannot create the staging folder beside ", path.string(), ": ",
                              ec.message()));
    }
  }
  const fs::path staging = path.empty() ? fs::path() : fs::path(path.string() + kStagingSuffix);
  T2_ASSIGN_OR_RETURN(d.factors_, ComputeAll(model, options, expected, staging, device));
  if (options.verify) {
    if (absl::Status s = d.Verify(model.parameters(), options.max_relative_error); !s.ok()) {
      // Staged factors that fail are not worth resuming from.
      std::error_code ec;
      if (!staging.empty()) fs::remove_all(staging, ec);
      return s;
    }
  }
  if (!path.empty()) {
    if (absl::Status s = WriteFactorFile(path, expected, d.names_, d.factors_); !s.ok()) {
      // The factors are correct in memory; only the next start loses the cache.
      LogWarning(absl::StrCat("svd: cannot write the cache: ", s.message()));
    } else {
      d.cache_path_ = path;
      std::error_code ec;
      fs::remove_all(staging, ec);
    }
  }
  return d;
}

const SvdFactors* Decomposition::Find(const std::string& name) const {
  auto it = factors_.find(name);
  return it == factors_.end() ? nullptr : &it->second;
}

absl::Status Decomposition::Verify(const model::WeightMap& base, double max_relative_error) const {
  for (const std::string& name : names_) {
    auto it = base.find(name);
    const SvdFactors* f = Find(name);
    if (it == base.end() || f == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("svd verify: no weight or factors for '", name, "'"));
    }
    double error = 0;
    try {
      c10::NoGradGuard no_grad;
      // float64, so the check measures the factors and not the rounding of this product.
      const at::Tensor w = it->second.to(f->u.device(), at::kDouble);
      if (w.dim() != 2 || w.size(0) != f->u.size(0) || w.size(1) != f->v.size(0)) {
        return absl::FailedPreconditionError(
            absl::StrCat("svd verify: '", name, "' has another shape than its factors"));
      }
      const at::Tensor approx =
          at::matmul(f->u.to(at::kDouble) * f->s.to(at::kDouble), f->v.to(at::kDouble).t());
      const double norm = w.norm().item<double>();
      const double diff = (w - approx).norm().item<double>();
      error = norm > 0 ? diff / norm : diff;
    } catch (const c10::Error& e) {
      return model::TorchError(absl::StrCat("svd verify of ", name), e);
    }
    if (!(error <= max_relative_error)) {  // also catches NaN
      return absl::FailedPreconditionError(absl::StrCat("svd of ", name,
                                                        ": relative reconstruction error ", error,
                                                        " exceeds ", max_relative_error));
    }
  }
  return absl::OkStatus();
}

int64_t Decomposition::bytes() const {
  int64_t total = 0;
  for (const auto& [name, f] : factors_) total += f.u.nbytes() + f.s.nbytes() + f.v.nbytes();
  return total;
}

}  // namespace t2::svf
