// Turns what a client names (an expert, an alias, "name@version", a mixture, a few-shot task)
// into the AdapterSpec a worker applies, through the Registry service.
//
// Lookups are cached. The cache is only trusted while a Registry.Watch stream is open: every
// event drops the entries for the name it concerns, a broken stream (a registry restart)
// drops everything and the stream is reopened with backoff, resuming after the last sequence
// number seen. A short TTL bounds the one gap left: a change made between opening a stream and
// the registry registering it. Missing names (NOT_FOUND) are cached too, so that a category
// without an alias costs no registry call per request.
//
// Unknown names are NOT_FOUND naming what was asked for; nothing silently falls back to the
// base model here (the first pass decides that, for categories only). Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "call_scope.h"
#include "t2/names/names.h"
#include "t2/registry_client/event_watch.h"
#include "t2/registry_client/registry_client.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::dispatcher {

struct ResolvedAdapter {
  t2::v1::AdapterSpec spec;
  std::string label;  // FirstPass.adapter: "base", "name@version" or "mixture:<name>"
};

// The base model: an empty spec.
ResolvedAdapter BaseAdapter();

class ExpertResolver {
 public:
  struct Options {
    std::chrono::milliseconds call_timeout{
        5000};  // per registry call, within the client's deadline
    std::chrono::milliseconds cache_ttl{30000};
    std::chrono::milliseconds max_backoff{2000};  // between Watch reconnects
    // Cached lookups kept at most: names come from clients, and each distinct missing name
    // is a NOT_FOUND entry. When full, expired entries go first, then the oldest.
    size_t max_cache_entries = 4096;
  };

  ExpertResolver(const std::shared_ptr<grpc::Channel>& registry, Options options);
  ~ExpertResolver();  // stops the watch thread
  ExpertResolver(const ExpertResolver&) = delete;
  ExpertResolver& operator=(const ExpertResolver&) = delete;

  // Opens the Watch stream (in a background thread, reconnecting until destruction).
  void StartWatch();
  // One cheap registry call: OK when the registry answers.
  absl::Status Ping(std::chrono::milliseconds timeout);

  // An expert name, an alias, or "name@version" -> that one expert version, as the registry's
  // ResolveExpert decides (a plain name: the alias's target, else the newest version of the
  // expert that is not deprecated).
  absl::StatusOr<ResolvedAdapter> ResolveExpert(std::string_view spec, const CallScope& scope);
  // An alias only (the first pass's categories).
  absl::StatusOr<ResolvedAdapter> ResolveAlias(std::string_view alias, const CallScope& scope);
  // A stored mixture (CEM result). `what` names it in errors ("mixture", "few-shot task").
  absl::StatusOr<ResolvedAdapter> ResolveMixture(std::string_view name, std::string_view what,
                                                 const CallScope& scope);
  // The targets of every alias whose name is not in `except`, one per expert version, by
  // alias name (uncached: Adapt only).
  absl::StatusOr<std::vector<t2::v1::ExpertRef>> AliasTargets(const std::set<std::string>& except,
                                                              const CallScope& scope);
  absl::StatusOr<t2::v1::Mixture> PutMixture(const t2::v1::Mixture& mixture,
                                             const CallScope& scope);

  // For tests and logs.
  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t events = 0;
    int64_t reconnects = 0;
  };
  Stats stats() const;
  bool watching() const;
  size_t cache_size() const;

 private:
  struct Entry {
    absl::StatusOr<ResolvedAdapter> value;
    std::string name;  // the name events about it carry
    std::chrono::steady_clock::time_point stored;
  };

  // Cache protocol: Lookup returns a fresh entry or records the generation; Store keeps a
  // result only if no event arrived (and the stream stayed open) since that generation.
  std::optional<absl::StatusOr<ResolvedAdapter>> Lookup(const std::string& key,
                                                        uint64_t* generation);
  void Store(const std::string& key, const std::string& name, uint64_t generation,
             const absl::StatusOr<ResolvedAdapter>& value);
  template <typename Fn>
  absl::StatusOr<ResolvedAdapter> Cached(const std::string& key, const std::string& name, Fn fetch);

  absl::StatusOr<ResolvedAdapter> FetchAlias(const std::string& alias, const CallScope& scope);
  // `spec` as the client wrote it (name, name@version or alias), parsed as `name`.
  absl::StatusOr<ResolvedAdapter> FetchExpert(std::string_view spec, const names::NameVersion& name,
                                              const CallScope& scope);
  absl::StatusOr<ResolvedAdapter> FetchMixture(const std::string& name, std::string_view what,
                                               const CallScope& scope);
  // Drops every cached lookup of `name` and bumps the generation. Requires mu_.
  void EraseName(const std::string& name);

  registry::RegistryClient registry_;
  Options options_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> cache_;            // guarded by mu_
  uint64_t generation_ = 0;                       // guarded by mu_; bumped by every invalidation
  bool watching_ = false;                         // guarded by mu_
  Stats stats_;                                   // guarded by mu_
  // Last: destroyed first, so that its thread stops before the cache it updates goes away.
  std::unique_ptr<registry::EventWatch> watch_;
};

}  // namespace t2::dispatcher
