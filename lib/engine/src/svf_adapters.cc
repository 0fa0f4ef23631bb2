#include "svf_adapters.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"
#include "t2/svf/targets.h"

namespace t2::engine {

std::string_view SvfModeName(SvfMode mode) {
  switch (mode) {
    case SvfMode::kAuto:
      return "auto";
    case SvfMode::kMerged:
      return "merged";
    case SvfMode::kFactored:
      return "factored";
  }
  return "?";
}

absl::Status SvfOptions::Validate() const {
  if (merged_cache_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("svf.merged_cache_bytes must be >= 0, got ", merged_cache_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SvfAdapters>> SvfAdapters::Create(model::LlamaModel& model, const SvfOptions& options,
                                                                 const std::filesystem::path& model_path) {
  T2_RETURN_IF_ERROR(options.Validate());
  const svf::TargetSet targets = options.targets;
  std::filesystem::path cache_dir = options.cache_dir;
  if (cache_dir.empty()) {
    cache_dir = std::filesystem::is_directory(model_path) ? model_path : model_path.parent_path();
  }
  std::unique_ptr<SvfAdapters> self(new SvfAdapters(model, options));
  T2_ASSIGN_OR_RETURN(auto decomposition,
                      svf::Decomposition::Build(model, {.targets = targets, .cache_dir = cache_dir,
                                                        .verify = options.verify}));
  self->decomposition_ = std::make_unique<svf::Decomposition>(std::move(decomposition));
  T2_ASSIGN_OR_RETURN(auto merged, svf::MergedWeights::Create(model, *self->decomposition_));
  self->merged_.emplace(std::move(merged));
  try {
    for (const auto& name : self->decomposition_->names()) {
      const svf::SvdFactors* f = self->decomposition_->Find(name);
      // The factored product streams Vᵀ row by row (model::FactoredMatrix): one transposed
      // copy, made once.
      self->factors_[name] = {f->u.contiguous(), f->v.t().contiguous(), f->s.contiguous()};
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("svf factors: ", e.what_without_backtrace()));
  }
  return self;
}

absl::Status SvfAdapters::AddExpert(const std::string& name, svf::Expert expert) {
  if (name.empty()) return absl::InvalidArgumentError("adapter name: empty");
  Adapter adapter;
  try {
    for (const auto& [matrix, z] : expert.z) {
      const Factors& f = factors_.at(matrix);
      auto zd = z.to(f.sigma.device(), at::kFloat);
      auto c = svf::NormalizationScale(f.sigma, zd, expert.metadata.normalization);
      adapter.scale[matrix] = (f.sigma * zd * c).contiguous();
    }
  } catch (const std::out_of_range&) {
    return absl::InvalidArgumentError(absl::StrCat("adapter '", name, "': covers a matrix the decomposition lacks"));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("adapter '", name, "': ", e.what_without_backtrace()));
  }
  adapter.expert = std::move(expert);
  Evict(name);
  if (current_valid_ && current_ == name) current_valid_ = false;  // weights hold the old version
  adapters_[name] = std::move(adapter);
  return absl::OkStatus();
}

absl::Status SvfAdapters::Remove(const std::string& name) {
  if (adapters_.erase(name) == 0) return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
  Evict(name);
  if (current_valid_ && current_ == name) current_valid_ = false;
  return absl::OkStatus();
}

const svf::Expert* SvfAdapters::Find(const std::string& name) const {
  auto it = adapters_.find(name);
  return it == adapters_.end() ? nullptr : &it->second.expert;
}

void SvfAdapters::Evict(const std::string& name) {
  auto it = cache_.find(name);
  if (it == cache_.end()) return;
  cached_bytes_ -= it->second.second;
  cache_.erase(it);
  lru_.remove(name);
}

absl::Status SvfAdapters::UseMerged(const std::string& name) {
  if (current_valid_ && current_ == name) return absl::OkStatus();
  // Until this succeeds the weights may hold anything (a failed write restores the base,
  // but the base is not `current_` either).
  current_valid_ = false;
  try {
    if (name.empty()) {
      merged_->RestoreBase();
    } else if (auto hit = cache_.find(name); hit != cache_.end()) {
      lru_.remove(name);
      lru_.push_front(name);
      T2_RETURN_IF_ERROR(merged_->Write(hit->second.first));
    } else {
      auto it = adapters_.find(name);
      if (it == adapters_.end()) return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
      T2_ASSIGN_OR_RETURN(auto composed, merged_->Compose(it->second.expert));
      ++compositions_;
      T2_RETURN_IF_ERROR(merged_->Write(composed));
      int64_t bytes = 0;
      for (const auto& [_, t] : composed) bytes += static_cast<int64_t>(t.nbytes());
      if (bytes <= options_.merged_cache_bytes) {
        while (cached_bytes_ + bytes > options_.merged_cache_bytes && !lru_.empty()) Evict(lru_.back());
        cache_[name] = {std::move(composed), bytes};
        cached_bytes_ += bytes;
        lru_.push_front(name);
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("merging adapter '", name, "': ", e.what_without_backtrace()));
  }
  current_ = name;
  current_valid_ = true;
  return absl::OkStatus();
}

absl::StatusOr<model::RowAdapters> SvfAdapters::Factored(const std::vector<std::string>& names) {
  T2_RETURN_IF_ERROR(UseMerged(""));
  model::RowAdapters out;
  std::vector<const Adapter*> rows;
  std::set<std::string> matrices;
  for (const auto& name : names) {
    const Adapter* a = nullptr;
    if (!name.empty()) {
      auto it = adapters_.find(name);
      if (it == adapters_.end()) return absl::NotFoundError(absl::StrCat("adapter '", name, "' is not loaded"));
      a = &it->second;
      for (const auto& [matrix, _] : a->scale) matrices.insert(matrix);
    }
    rows.push_back(a);
    out.adapted.push_back(a != nullptr);
  }
  try {
    for (const auto& matrix : matrices) {
      const Factors& f = factors_.at(matrix);
      std::vector<at::Tensor> scale;
      scale.reserve(rows.size());
      for (const Adapter* a : rows) {
        // Base rows are not adapted (their scale is unused); an expert that leaves this
        // matrix alone keeps σ.
        const at::Tensor* row = &f.sigma;
        if (a != nullptr) {
          if (auto it = a->scale.find(matrix); it != a->scale.end()) row = &it->second;
        }
        scale.push_back(*row);
      }
      out.matrices[matrix] = {f.u, f.vt, at::stack(scale).contiguous()};
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("factored adapters: ", e.what_without_backtrace()));
  }
  return out;
}

bool SvfAdapters::RunFactored(const std::vector<std::string>& names, bool one_pass) const {
  bool mixed = false, any = false;
  for (const auto& n : names) {
    mixed = mixed || n != names.front();
    any = any || !n.empty();
  }
  if (options_.mode == SvfMode::kFactored) return any;
  if (options_.mode == SvfMode::kMerged) return false;
  if (mixed) return true;
  // auto, one expert (or none) for the whole batch: merged, composed once, pays off over the
  // decode steps that follow. A single forward (a Score: CEM scores every candidate mixture
  // once) runs factored unless that expert's W' is already at hand, since composing it costs
  // several such forwards (about 0.5 s for the default model's MLP on 2 CPU cores).
  if (!one_pass || !any) return false;
  const std::string& name = names.front();
  const bool at_hand = (current_valid_ && current_ == name) || cache_.count(name) != 0;
  return !at_hand;
}

}  // namespace t2::engine
