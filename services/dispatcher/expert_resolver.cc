#include "expert_resolver.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "t2/common/log.h"
#include "t2/common/status.h"

namespace t2::dispatcher {
namespace {

std::string ExpertLabel(const t2::v1::ExpertRef& ref) {
  return absl::StrCat(ref.name(), "@", ref.version());
}

ResolvedAdapter SingleExpert(const t2::v1::ExpertRef& ref) {
  ResolvedAdapter r;
  *r.spec.add_experts() = ref;
  r.label = ExpertLabel(ref);
  return r;
}

bool Cacheable(const absl::Status& s) { return s.ok() || absl::IsNotFound(s); }

// Registry errors other than NOT_FOUND keep their code; the message says it was the registry.
absl::Status RegistryError(const absl::Status& status, std::string_view call) {
  return Annotate(status, absl::StrCat("registry ", AsAbsl(call)));
}

}  // namespace

ResolvedAdapter BaseAdapter() { return ResolvedAdapter{.spec = {}, .label = "base"}; }

ExpertResolver::ExpertResolver(const std::shared_ptr<grpc::Channel>& registry, Options options)
    : registry_(registry), options_(options) {
  registry::EventWatch::Callbacks callbacks;
  // Lookups are cached only while a stream is established (Lookup, Store): a change made while
  // none was open, or before the registry subscribed the new one, would never be announced.
  callbacks.connecting = [this] {
    std::lock_guard lock(mu_);
    cache_.clear();
    ++generation_;
  };
  callbacks.established = [this] {
    std::lock_guard lock(mu_);
    ++generation_;  // a lookup begun before this moment is not stored
    watching_ = true;
  };
  callbacks.event = [this](const t2::v1::RegistryEvent& event) {
    std::lock_guard lock(mu_);
    ++stats_.events;
    // An event names the expert, alias or mixture it changed; every cached lookup of that
    // name may now be stale ("math" resolved through an alias, "math@2", ...).
    EraseName(event.name());
  };
  callbacks.ended = [this](const grpc::Status&, bool stopping) {
    std::lock_guard lock(mu_);
    watching_ = false;
    cache_.clear();
    ++generation_;
    if (!stopping) ++stats_.reconnects;
  };
  watch_ = std::make_unique<registry::EventWatch>(
      registry, std::move(callbacks),
      registry::EventWatch::Options{.max_backoff = options_.max_backoff,
                                    .while_down = "lookups go uncached until it reconnects"});
}

ExpertResolver::~ExpertResolver() { watch_.reset(); }

void ExpertResolver::StartWatch() { watch_->Start(); }

absl::Status ExpertResolver::Ping(std::chrono::milliseconds timeout) {
  absl::StatusOr<std::vector<t2::v1::Alias>> aliases =
      registry_.ListAliases(absl::Now() + absl::FromChrono(timeout));
  if (!aliases.ok()) return RegistryError(aliases.status(), "ListAliases");
  return absl::OkStatus();
}

ExpertResolver::Stats ExpertResolver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

size_t ExpertResolver::cache_size() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

bool ExpertResolver::watching() const {
  std::lock_guard lock(mu_);
  return watching_;
}

std::optional<absl::StatusOr<ResolvedAdapter>> ExpertResolver::Lookup(const std::string& key,
                                                                      uint64_t* generation) {
  std::lock_guard lock(mu_);
  *generation = generation_;
  auto it = cache_.find(key);
  if (watching_ && it != cache_.end() &&
      std::chrono::steady_clock::now() - it->second.stored < options_.cache_ttl) {
    ++stats_.hits;
    return it->second.value;
  }
  ++stats_.misses;
  return std::nullopt;
}

void ExpertResolver::Store(const std::string& key, const std::string& name, uint64_t generation,
                           const absl::StatusOr<ResolvedAdapter>& value) {
  if (!Cacheable(value.status())) return;
  std::lock_guard lock(mu_);
  if (!watching_ || generation != generation_) return;
  const auto now = std::chrono::steady_clock::now();
  if (cache_.size() >= options_.max_cache_entries && cache_.count(key) == 0) {
    std::erase_if(
        cache_, [&](const auto& entry) { return now - entry.second.stored >= options_.cache_ttl; });
    if (cache_.size() >= options_.max_cache_entries) {
      // Still full of fresh entries: the oldest goes (a scan, only when the cache is full).
      auto oldest = std::min_element(
          cache_.begin(), cache_.end(),
          [](const auto& a, const auto& b) { return a.second.stored < b.second.stored; });
      cache_.erase(oldest);
    }
  }
  cache_[key] = Entry{.value = value, .name = name, .stored = now};
}

template <typename Fn>
absl::StatusOr<ResolvedAdapter> ExpertResolver::Cached(const std::string& key,
                                                       const std::string& name, Fn fetch) {
  uint64_t generation = 0;
  if (auto hit = Lookup(key, &generation); hit.has_value()) return *hit;
  absl::StatusOr<ResolvedAdapter> value = fetch();
  Store(key, name, generation, value);
  return value;
}

absl::StatusOr<ResolvedAdapter> ExpertResolver::ResolveExpert(std::string_view spec,
                                                              const CallScope& scope) {
  T2_ASSIGN_OR_RETURN(names::NameVersion name, names::ParseNameVersion("adapter", spec));
  return Cached(absl::StrCat("expert:", AsAbsl(spec)), name.name,
                [&] { return FetchExpert(spec, name, scope); });
}

absl::StatusOr<ResolvedAdapter> ExpertResolver::ResolveAlias(std::string_view alias,
                                                             const CallScope& scope) {
  if (!names::IsValidName(alias)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", AsAbsl(alias), "' is not a valid alias name"));
  }
  std::string name(alias);
  return Cached(absl::StrCat("alias:", name), name, [&] { return FetchAlias(name, scope); });
}

absl::StatusOr<ResolvedAdapter> ExpertResolver::ResolveMixture(std::string_view mixture,
                                                               std::string_view what,
                                                               const CallScope& scope) {
  if (!names::IsValidName(mixture)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", AsAbsl(mixture), "' is not a valid ", AsAbsl(what), " name"));
  }
  std::string name(mixture);
  // The key leaves out `what`: both spellings name the same registry object.
  return Cached(absl::StrCat("mixture:", name), name,
                [&] { return FetchMixture(name, what, scope); });
}

absl::StatusOr<ResolvedAdapter> ExpertResolver::FetchAlias(const std::string& alias,
                                                           const CallScope& scope) {
  absl::StatusOr<std::optional<t2::v1::Alias>> found =
      registry_.GetAlias(alias, absl::FromChrono(scope.Capped(options_.call_timeout)));
  if (!found.ok()) return RegistryError(found.status(), absl::StrCat("GetAlias('", alias, "')"));
  if (!found->has_value()) return absl::NotFoundError(absl::StrCat("no alias named '", alias, "'"));
  return SingleExpert((*found)->target());
}

absl::StatusOr<ResolvedAdapter> ExpertResolver::FetchExpert(std::string_view spec,
                                                            const names::NameVersion& name,
                                                            const CallScope& scope) {
  // The registry applies the rule: version 0 is the alias's target, else the newest version
  // that is not deprecated; a pinned version stays usable after deprecation.
  absl::StatusOr<t2::v1::ExpertInfo> info = registry_.Resolve(
      name.name, name.version, absl::FromChrono(scope.Capped(options_.call_timeout)));
  if (absl::IsNotFound(info.status()) || absl::IsInvalidArgument(info.status())) {
    // The client's spelling was wrong, not the registry: say which adapter it was.
    return Annotate(info.status(), absl::StrCat("adapter '", AsAbsl(spec), "'"));
  }
  if (!info.ok()) {
    return Annotate(info.status(), absl::StrCat("registry ResolveExpert('", AsAbsl(spec), "')"));
  }
  t2::v1::ExpertRef ref;
  ref.set_name(info->name());
  ref.set_version(info->version());
  ref.set_sha256(info->sha256());
  return SingleExpert(ref);
}

absl::StatusOr<ResolvedAdapter> ExpertResolver::FetchMixture(const std::string& name,
                                                             std::string_view what,
                                                             const CallScope& scope) {
  absl::StatusOr<std::optional<t2::v1::Mixture>> found =
      registry_.GetMixture(name, absl::FromChrono(scope.Capped(options_.call_timeout)));
  if (!found.ok()) return RegistryError(found.status(), absl::StrCat("GetMixture('", name, "')"));
  if (!found->has_value()) {
    return absl::NotFoundError(absl::StrCat("no ", AsAbsl(what), " named '", name, "'"));
  }
  return ResolvedAdapter{.spec = (*found)->spec(), .label = absl::StrCat("mixture:", name)};
}

absl::StatusOr<std::vector<t2::v1::ExpertRef>> ExpertResolver::AliasTargets(
    const std::set<std::string>& except, const CallScope& scope) {
  absl::StatusOr<std::vector<t2::v1::Alias>> listed =
      registry_.ListAliases(absl::FromChrono(scope.Capped(options_.call_timeout)));
  if (!listed.ok()) return RegistryError(listed.status(), "ListAliases");
  std::vector<t2::v1::Alias> aliases = *std::move(listed);
  std::sort(aliases.begin(), aliases.end(),
            [](const auto& a, const auto& b) { return a.alias() < b.alias(); });
  std::vector<t2::v1::ExpertRef> out;
  for (const t2::v1::Alias& alias : aliases) {
    if (except.count(alias.alias()) != 0) continue;
    const t2::v1::ExpertRef& ref = alias.target();
    bool seen = std::any_of(out.begin(), out.end(), [&](const t2::v1::ExpertRef& r) {
      return r.name() == ref.name() && r.version() == ref.version();
    });
    if (!seen) out.push_back(ref);
  }
  return out;
}

absl::StatusOr<t2::v1::Mixture> ExpertResolver::PutMixture(const t2::v1::Mixture& mixture,
                                                           const CallScope& scope) {
  absl::StatusOr<t2::v1::Mixture> stored =
      registry_.PutMixture(mixture, absl::FromChrono(scope.Capped(options_.call_timeout)));
  if (!stored.ok()) {
    return RegistryError(stored.status(), absl::StrCat("PutMixture('", mixture.name(), "')"));
  }
  // Our own write: a client that adapts and then generates with the task must not meet a
  // cached NOT_FOUND before the Watch event arrives.
  std::lock_guard lock(mu_);
  EraseName(mixture.name());
  return *std::move(stored);
}

void ExpertResolver::EraseName(const std::string& name) {
  ++generation_;
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second.name == name ? cache_.erase(it) : std::next(it);
  }
}

}  // namespace t2::dispatcher
