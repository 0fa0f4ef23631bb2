// The worker's copy of the experts it has been asked to use. An AdapterSpec names immutable,
// content-addressed expert versions; the first request that needs one fetches its blob from
// the registry (verifying the sha256), keeps it on local disk, and registers it with the
// generator under "name@version" (a mixture under "mix:<digest of its spec>"). Later requests
// find it loaded. Because versions never change, nothing here can go stale: a moved alias
// reaches the worker as a different version. Following the registry's Watch stream only
// saves time: the version an alias moves to is loaded before the first request for it, and
// a deprecated version is unloaded.
//
// Loading never blocks requests for adapters that are already loaded: a fetch runs outside
// the cache's lock (only an eviction, which waits for the generator's current step, is
// done under it), and requests that want an adapter another request is loading wait for
// that load instead of starting a second one. What a request resolved stays loaded until it
// lets go of its Lease, so eviction cannot take it away between Resolve and Submit.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "t2/engine/generator.h"
#include "t2/registry_client/event_watch.h"
#include "t2/registry_client/registry_client.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::worker {

// Most experts one AdapterSpec may mix (fewer where --max-loaded-experts is smaller).
inline constexpr int kMaxExpertsPerSpec = 16;

class ExpertCache {
 public:
  // A resolved adapter, kept loaded while the lease lives: hold it until the request has been
  // submitted (from then on the generator counts the adapter as in use).
  class Lease {
   public:
    Lease() = default;  // the base model
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    // The generator adapter name ("" = base model).
    const std::string& adapter() const { return adapter_; }

   private:
    friend class ExpertCache;
    explicit Lease(ExpertCache* cache) : cache_(cache) {}
    void Release();

    ExpertCache* cache_ = nullptr;
    std::string adapter_;
    std::vector<std::string> pinned_;  // one entry per pin taken
  };

  // `registry` may be null: then only the base model can be served. `max_loaded`: adapters
  // kept registered with the generator (least recently used ones not in use are removed).
  ExpertCache(engine::Generator& generator, std::shared_ptr<grpc::Channel> registry,
              std::filesystem::path blob_dir, int max_loaded);
  ~ExpertCache();  // stops the watch

  // What the cache reports as adapters come and go (the worker's metrics). Set before the
  // first Resolve and StartWatch; called without the cache's lock held, except `unloaded`.
  struct Events {
    std::function<void(const std::string& adapter, double seconds)> loaded;  // fetch + register
    std::function<void(const std::string& adapter, absl::StatusCode code)> load_failed;
    std::function<void(const std::string& adapter, std::string_view why)> unloaded;  // "evicted" | "deprecated"
  };
  void SetEvents(Events events) { events_ = std::move(events); }

  // Follows Registry.Watch until destroyed (reconnecting with backoff): when an alias moves to
  // another version of an expert this worker has loaded, that version is fetched and loaded
  // at once; a deprecated version is unloaded unless a request still uses it. Without a
  // registry, does nothing.
  void StartWatch();
  // Whether the Watch stream is established now (the registry said so): changes from then on
  // reach this cache, and those made while it was away are replayed when it reconnects.
  bool watching() const;

  // INVALID_ARGUMENT for a malformed spec (naming the field), NOT_FOUND for an expert the
  // registry does not have (or has with other bytes), UNAVAILABLE if the registry cannot be
  // reached before `deadline` (DEADLINE_EXCEEDED if another request's load of the same
  // adapter is still running then).
  absl::StatusOr<Lease> Resolve(const t2::v1::AdapterSpec& spec, absl::Time deadline);

  std::vector<std::string> loaded() const;  // most recently used first
  int64_t fetched() const;
  int64_t prefetched() const;  // versions loaded because an alias moved to them
  // Times a request waited for another request's load of the same adapter instead of
  // fetching it again.
  int64_t joined_loads() const;

 private:
  struct Loading;  // an adapter being loaded by one request, which the others wait for

  // Makes `key` loaded, running `load` (outside mu_) unless it is loaded already or another
  // thread is loading it, then pins it for `lease`. `identity` is what the caller asked for
  // (an expert's sha256): a key loaded with another identity is NOT_FOUND. A load that failed
  // with UNAVAILABLE or DEADLINE_EXCEEDED (the loader's own deadline), or that was for another
  // identity, is retried by a waiter whose deadline has not passed; other errors are every
  // waiter's answer. An exception from `load` becomes INTERNAL.
  absl::Status LoadOnce(const std::string& key, const std::string& identity, absl::Time deadline,
                        const std::function<absl::Status()>& load, Lease& lease);
  absl::Status LoadExpert(const t2::v1::ExpertRef& ref, const std::string& key, absl::Time deadline);
  absl::Status Fetch(const t2::v1::ExpertRef& ref, const std::filesystem::path& path, absl::Time deadline);
  bool Loaded(const std::string& key) const;  // mu_ held
  void Touch(const std::string& key);         // mu_ held
  void EvictIfNeeded();                       // mu_ held
  void Unpin(const std::vector<std::string>& keys);
  void OnEvent(const t2::v1::RegistryEvent& event);
  void Prefetch(const std::string& name, int64_t version);

  engine::Generator& generator_;
  std::unique_ptr<t2::v1::Registry::Stub> registry_;           // Watch
  std::unique_ptr<registry::RegistryClient> registry_client_;  // downloads
  std::filesystem::path blob_dir_;
  int max_loaded_;

  // Guards the four below; never held during a fetch or a load (it is held while an evicted
  // adapter is removed, which waits for the generator's current step).
  mutable std::mutex mu_;
  std::list<std::string> lru_;                               // loaded adapters, most recent first
  std::map<std::string, int> pins_;                          // adapter -> live leases on it
  std::map<std::string, std::string> identity_;              // loaded adapter -> its identity
  std::map<std::string, std::shared_ptr<Loading>> loading_;  // adapters being loaded
  std::atomic<int64_t> fetched_{0};
  std::atomic<int64_t> prefetched_{0};
  std::atomic<int64_t> joined_loads_{0};
  Events events_;

  // Last: destroyed first, so that its thread stops before what OnEvent uses goes away.
  std::unique_ptr<registry::EventWatch> watch_;  // null without a registry
};

}  // namespace t2::worker
