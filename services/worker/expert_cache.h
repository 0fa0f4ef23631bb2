// The worker's copy of the experts it has been asked to use. An AdapterSpec names immutable,
// content-addressed expert versions; the first request that needs one fetches its blob from
// the registry (verifying the sha256), keeps it on local disk, and registers it with the
// generator under "name@version" (a mixture under "mix:<digest of its spec>"). Later requests
// find it loaded. Because versions never change, nothing here can go stale: a moved alias
// reaches the worker as a different version. Following the registry's Watch stream only
// saves time: the version an alias moves to is loaded before the first request for it, and
// a deprecated version is unloaded.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "t2/engine/generator.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::worker {

class ExpertCache {
 public:
  // `registry` may be null: then only the base model can be served. `max_loaded`: adapters
  // kept registered with the generator (least recently used ones not in use are removed).
  ExpertCache(engine::Generator& generator, std::shared_ptr<grpc::Channel> registry,
              std::filesystem::path blob_dir, int max_loaded);
  ~ExpertCache();  // stops the watch

  // Follows Registry.Watch until destroyed (reconnecting with backoff): when an alias moves to
  // another version of an expert this worker has loaded, that version is fetched and loaded
  // at once; a deprecated version is unloaded unless a request still uses it. Without a
  // registry, does nothing.
  void StartWatch();

  // INVALID_ARGUMENT for a malformed spec (naming the field), NOT_FOUND for an expert the
  // registry does not have (or has with other bytes), UNAVAILABLE if the registry cannot be
  // reached before `deadline`. Returns the generator adapter name ("" = base model).
  absl::StatusOr<std::string> Resolve(const t2::v1::AdapterSpec& spec, absl::Time deadline);

  std::vector<std::string> loaded() const;  // most recently used first
  int64_t fetched() const;
  int64_t prefetched() const;  // versions loaded because an alias moved to them

 private:
  absl::StatusOr<std::string> EnsureExpert(const t2::v1::ExpertRef& ref, absl::Time deadline);
  absl::Status Fetch(const t2::v1::ExpertRef& ref, const std::filesystem::path& path, absl::Time deadline);
  void Touch(const std::string& key);  // mu_ held
  void EvictIfNeeded();                // mu_ held
  void WatchLoop();
  void OnEvent(const t2::v1::RegistryEvent& event);
  void Prefetch(const std::string& name, int64_t version);

  engine::Generator& generator_;
  std::unique_ptr<t2::v1::Registry::Stub> registry_;
  std::filesystem::path blob_dir_;
  int max_loaded_;

  mutable std::mutex mu_;  // one fetch/registration at a time; guards the LRU
  std::list<std::string> lru_;
  int64_t fetched_ = 0;
  int64_t prefetched_ = 0;

  std::mutex watch_mu_;  // guards the three below
  std::condition_variable watch_cv_;
  bool stopping_ = false;
  grpc::ClientContext* watch_context_ = nullptr;  // the open Watch call, to cancel it
  std::thread watcher_;
};

}  // namespace t2::worker
