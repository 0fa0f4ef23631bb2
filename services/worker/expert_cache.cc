#include "expert_cache.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/common/log.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"
#include "t2/rpc/status.h"

namespace t2::worker {

namespace {

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ValidateRef(const t2::v1::ExpertRef& ref, size_t index) {
  const std::string field = absl::StrCat("adapter.experts[", index, "]");
  if (ref.name().empty()) return absl::InvalidArgumentError(absl::StrCat(field, ".name: empty"));
  if (ref.version() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".version must be >= 1, got ", ref.version()));
  }
  if (!IsSha256Hex(ref.sha256())) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".sha256: want 64 lowercase hex digits"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FileSha256(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path.string());
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    hash.Update(std::string_view(buffer.data(), static_cast<size_t>(in.gcount())));
  }
  return hash.HexDigest();
}

}  // namespace

ExpertCache::ExpertCache(engine::Generator& generator, std::shared_ptr<grpc::Channel> registry,
                         std::filesystem::path blob_dir, int max_loaded)
    : generator_(generator),
      registry_(registry ? t2::v1::Registry::NewStub(registry) : nullptr),
      registry_client_(registry ? std::make_unique<registry::RegistryClient>(registry) : nullptr),
      blob_dir_(std::move(blob_dir)),
      max_loaded_(max_loaded) {
  if (registry == nullptr) return;
  // Experts loaded while no stream was open stay until evicted; their versions are pinned by
  // sha256 anyway, so nothing needs dropping on a reconnect.
  registry::EventWatch::Callbacks callbacks;
  callbacks.event = [this](const t2::v1::RegistryEvent& event) { OnEvent(event); };
  watch_ = std::make_unique<registry::EventWatch>(
      registry, std::move(callbacks),
      registry::EventWatch::Options{.while_down = "experts are still fetched on first use"});
}

ExpertCache::~ExpertCache() { watch_.reset(); }

void ExpertCache::StartWatch() {
  if (watch_ != nullptr) watch_->Start();
}

bool ExpertCache::watching() const { return watch_ != nullptr && watch_->watching(); }

void ExpertCache::OnEvent(const t2::v1::RegistryEvent& event) {
  using Kind = t2::v1::RegistryEvent;
  if (event.kind() == Kind::KIND_ALIAS_SET) {
    // Worth loading only where this worker already serves the expert: its requests will
    // follow the alias to the new version.
    const std::string key = absl::StrCat(event.target(), "@", event.version());
    const std::string prefix = event.target() + "@";
    bool serves_expert = false, has_version = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::string& k : lru_) {
        has_version |= k == key;
        serves_expert |= k.rfind(prefix, 0) == 0;
      }
      has_version |= loading_.count(key) != 0;
    }
    if (serves_expert && !has_version) Prefetch(event.target(), event.version());
  } else if (event.kind() == Kind::KIND_EXPERT_DEPRECATED) {
    const std::string key = absl::StrCat(event.name(), "@", event.version());
    std::lock_guard<std::mutex> lock(mu_);
    // Leased or in use by a request: it stays until the LRU evicts it.
    if (!Loaded(key) || pins_.count(key) != 0) return;
    if (generator_.RemoveAdapter(key).ok()) {
      lru_.remove(key);
      identity_.erase(key);
      LogInfo(absl::StrCat("unloaded deprecated expert ", key));
      if (events_.unloaded) events_.unloaded(key, "deprecated");
    }
  }
}

void ExpertCache::Prefetch(const std::string& name, int64_t version) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  t2::v1::ListExpertsRequest request;
  request.set_name(name);
  t2::v1::ListExpertsResponse response;
  const grpc::Status listed = registry_->ListExperts(&context, request, &response);
  if (!listed.ok()) {
    LogWarning(absl::StrCat("prefetching expert ", name, "@", version, ": ", listed.error_message()));
    return;
  }
  for (const auto& info : response.experts()) {
    if (info.version() != version) continue;
    t2::v1::ExpertRef ref;
    ref.set_name(name);
    ref.set_version(version);
    ref.set_sha256(info.sha256());
    const std::string key = absl::StrCat(name, "@", version);
    Lease lease(this);
    if (absl::Status s = LoadOnce(key, ref.sha256(), deadline, [&] { return LoadExpert(ref, key, deadline); }, lease);
        !s.ok()) {
      LogWarning(absl::StrCat("prefetching expert ", key, ": ", s.message()));
      return;
    }
    ++prefetched_;
    std::lock_guard<std::mutex> lock(mu_);
    EvictIfNeeded();
    return;
  }
}

absl::StatusOr<ExpertCache::Lease> ExpertCache::Resolve(const t2::v1::AdapterSpec& spec, absl::Time deadline) {
  const int k = spec.experts_size();
  if (k == 0) {
    if (spec.alpha_size() != 0) return absl::InvalidArgumentError("adapter.alpha: set without experts");
    return Lease();
  }
  const bool single = k == 1 && spec.alpha_size() == 0;
  // Every expert of a spec is pinned while the request runs, and a mixture is one more
  // adapter: beyond this the cache could not keep --max-loaded-experts.
  const int limit = std::min(kMaxExpertsPerSpec, single ? max_loaded_ : max_loaded_ - 1);
  if (k > limit) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter.experts: ", k, " experts, at most ", limit, " on this worker"));
  }
  for (int i = 0; i < k; ++i) T2_RETURN_IF_ERROR(ValidateRef(spec.experts(i), i));
  if (!single) {
    const int layers = generator_.config().num_hidden_layers;
    const int want = spec.per_layer() ? layers * k : k;
    if (spec.alpha_size() != want) {
      return absl::InvalidArgumentError(absl::StrCat("adapter.alpha: ", spec.alpha_size(), " values, want ", want,
                                                     spec.per_layer() ? " (num_layers x experts)" : " (one per expert)"));
    }
    for (int i = 0; i < spec.alpha_size(); ++i) {
      if (!std::isfinite(spec.alpha(i)) || spec.alpha(i) < 0) {
        return absl::InvalidArgumentError(absl::StrCat("adapter.alpha[", i, "] = ", spec.alpha(i),
                                                       ": must be finite and >= 0"));
      }
    }
  }
  if (registry_ == nullptr) {
    return absl::FailedPreconditionError("adapter: this worker was started without --registry; only the base model");
  }
  Lease lease(this);
  std::vector<std::string> keys;
  for (int i = 0; i < k; ++i) {
    const t2::v1::ExpertRef& ref = spec.experts(i);
    std::string key = absl::StrCat(ref.name(), "@", ref.version());
    T2_RETURN_IF_ERROR(LoadOnce(key, ref.sha256(), deadline, [&] { return LoadExpert(ref, key, deadline); }, lease));
    keys.push_back(std::move(key));
  }
  if (single) {
    lease.adapter_ = keys.front();
  } else {
    // A mixture is named by what it is, so the same spec from any client reuses one entry.
    std::string canonical;
    for (int i = 0; i < k; ++i) absl::StrAppend(&canonical, keys[i], "/", spec.experts(i).sha256(), ";");
    for (double a : spec.alpha()) absl::StrAppend(&canonical, absl::StrFormat("%.17g", a), ",");
    absl::StrAppend(&canonical, spec.per_layer() ? "per_layer" : "global");
    const std::string key = "mix:" + Sha256Hex(canonical).substr(0, 24);
    const std::vector<double> alpha(spec.alpha().begin(), spec.alpha().end());
    // The key is a digest of the spec, shas included: nothing more to compare.
    T2_RETURN_IF_ERROR(LoadOnce(
        key, /*identity=*/"", deadline,
        [&] { return Annotate(generator_.AddMixture(key, keys, alpha, spec.per_layer()), "adapter"); }, lease));
    lease.adapter_ = key;
  }
  std::lock_guard<std::mutex> lock(mu_);
  EvictIfNeeded();
  return lease;
}

absl::Status ExpertCache::LoadExpert(const t2::v1::ExpertRef& ref, const std::string& key, absl::Time deadline) {
  const std::filesystem::path path = blob_dir_ / (ref.sha256() + ".safetensors");
  // A blob kept from an earlier run is used only if it still hashes to its name.
  auto digest = FileSha256(path);
  if (!digest.ok() || *digest != ref.sha256()) {
    T2_RETURN_IF_ERROR(Fetch(ref, path, deadline));
  }
  absl::Status added = generator_.AddExpert(key, path);
  if (!added.ok()) {
    // The registry validated it, so this is a base-model mismatch or a damaged local copy.
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return absl::FailedPreconditionError(absl::StrCat("expert ", key, ": ", added.message()));
  }
  LogInfo(absl::StrCat("loaded expert ", key, " (", ref.sha256().substr(0, 12), ")"));
  return absl::OkStatus();
}

struct ExpertCache::Loading {
  std::string identity;  // what the loader asked for (an expert's sha256); set before sharing
  std::mutex mu;
  std::condition_variable cv;
  std::optional<absl::Status> result;
};

absl::Status ExpertCache::LoadOnce(const std::string& key, const std::string& identity, absl::Time deadline,
                                   const std::function<absl::Status()>& load, Lease& lease) {
  while (true) {
    std::shared_ptr<Loading> loading;
    bool mine = false;  // this thread created the entry, so it runs the load
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (Loaded(key)) {
        // Versions are immutable: the same name@version with other bytes is not this expert.
        if (auto it = identity_.find(key); it != identity_.end() && it->second != identity) {
          return absl::NotFoundError(absl::StrCat("expert ", key, " has sha256 ", it->second, ", not the requested ",
                                                  identity));
        }
        Touch(key);
        lease.pinned_.push_back(key);
        ++pins_[key];
        return absl::OkStatus();
      }
      auto it = loading_.find(key);
      if (it == loading_.end()) {
        loading = std::make_shared<Loading>();
        loading->identity = identity;
        loading_.emplace(key, loading);
        mine = true;
      } else {
        loading = it->second;
        ++joined_loads_;
      }
    }
    if (mine) {
      absl::Status status;
      const absl::Time load_start = absl::Now();
      try {
        status = load();
      } catch (const std::exception& e) {
        status = absl::InternalError(absl::StrCat("loading adapter ", key, ": ", e.what()));
      } catch (...) {
        status = absl::InternalError(absl::StrCat("loading adapter ", key, ": unknown exception"));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        loading_.erase(key);
        if (status.ok()) {
          identity_[key] = identity;
          Touch(key);
          lease.pinned_.push_back(key);
          ++pins_[key];
        }
      }
      {
        std::lock_guard<std::mutex> lock(loading->mu);
        loading->result = status;
      }
      loading->cv.notify_all();
      if (status.ok() && events_.loaded) events_.loaded(key, absl::ToDoubleSeconds(absl::Now() - load_start));
      if (!status.ok() && events_.load_failed) events_.load_failed(key, status.code());
      return status;
    }
    absl::Status theirs;
    {
      std::unique_lock<std::mutex> lock(loading->mu);
      // In steps of at most an hour: a far deadline as one chrono duration would overflow.
      while (!loading->result.has_value()) {
        const absl::Duration left = deadline - absl::Now();
        if (left <= absl::ZeroDuration()) {
          return absl::DeadlineExceededError(absl::StrCat("adapter ", key, " was still loading at the deadline"));
        }
        loading->cv.wait_for(lock, absl::ToChronoNanoseconds(std::min(left, absl::Hours(1))));
      }
      theirs = *loading->result;
    }
    // Loaded by the other request: the next round pins it (or, if it was evicted meanwhile,
    // loads it again; or, asked with other bytes, answers NOT_FOUND). A load that failed for
    // bytes other than ours, or because its deadline ended or the registry was briefly away,
    // is no answer for this request while its own deadline lasts.
    if (theirs.ok()) continue;
    const bool transient = absl::IsUnavailable(theirs) || absl::IsDeadlineExceeded(theirs);
    const bool other_bytes = loading->identity != identity;
    if ((!transient && !other_bytes) || absl::Now() >= deadline) return theirs;
  }
}

absl::Status ExpertCache::Fetch(const t2::v1::ExpertRef& ref, const std::filesystem::path& path,
                                absl::Time deadline) {
  const std::string key = absl::StrCat(ref.name(), "@", ref.version());
  std::error_code dir_error;
  std::filesystem::create_directories(blob_dir_, dir_error);
  if (dir_error) {
    return absl::InternalError(absl::StrCat("expert directory ", blob_dir_.string(), ": ", dir_error.message()));
  }
  // Checked, written beside `path` and renamed into place by the shared client; a version
  // published again with other bytes is NotFound here (the ref pins its sha256).
  auto info = registry_client_->Download(ref.name(), ref.version(), path,
                                         {.expect_sha256 = ref.sha256(), .deadline = deadline});
  if (!info.ok()) {
    if (absl::IsNotFound(info.status())) return info.status();
    return Annotate(info.status(), absl::StrCat("fetching expert ", key, " from the registry"));
  }
  ++fetched_;
  return absl::OkStatus();
}

bool ExpertCache::Loaded(const std::string& key) const {
  return std::find(lru_.begin(), lru_.end(), key) != lru_.end();
}

void ExpertCache::Touch(const std::string& key) {
  lru_.remove(key);
  lru_.push_front(key);
}

void ExpertCache::EvictIfNeeded() {
  // From the least recently used end; an adapter that is leased or that a request still uses
  // stays.
  for (auto it = lru_.end(); static_cast<int>(lru_.size()) > max_loaded_ && it != lru_.begin();) {
    --it;
    if (pins_.count(*it) == 0 && generator_.RemoveAdapter(*it).ok()) {
      LogInfo(absl::StrCat("unloaded adapter ", *it));
      if (events_.unloaded) events_.unloaded(*it, "evicted");
      identity_.erase(*it);
      it = lru_.erase(it);
    }
  }
}

std::vector<std::string> ExpertCache::loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {lru_.begin(), lru_.end()};
}

int64_t ExpertCache::fetched() const { return fetched_; }

int64_t ExpertCache::prefetched() const { return prefetched_; }

int64_t ExpertCache::joined_loads() const { return joined_loads_; }

void ExpertCache::Unpin(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& key : keys) {
    auto it = pins_.find(key);
    if (it != pins_.end() && --it->second == 0) pins_.erase(it);
  }
}

ExpertCache::Lease::Lease(Lease&& other) noexcept
    : cache_(std::exchange(other.cache_, nullptr)),
      adapter_(std::move(other.adapter_)),
      pinned_(std::move(other.pinned_)) {
  other.pinned_.clear();
}

ExpertCache::Lease& ExpertCache::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    cache_ = std::exchange(other.cache_, nullptr);
    adapter_ = std::move(other.adapter_);
    pinned_ = std::move(other.pinned_);
    other.pinned_.clear();
  }
  return *this;
}

ExpertCache::Lease::~Lease() { Release(); }

void ExpertCache::Lease::Release() {
  if (cache_ != nullptr && !pinned_.empty()) cache_->Unpin(pinned_);
  pinned_.clear();
}

}  // namespace t2::worker
