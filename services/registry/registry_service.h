// The t2.v1.Registry gRPC service over an ExpertStore. Watch is on gRPC's callback API (a
// Watch waits for changes without a thread: watch_call.h); the other handlers are
// synchronous, each on a gRPC thread that may block on the store (transfers are ended by the
// idle watchdog when a peer stalls). Store errors map one to one to gRPC codes
// (t2::rpc::ToGrpc); no exception escapes a handler.
//
// Lifetime: the store must outlive the service, and the service the gRPC server. Call
// BeginShutdown() before Server::Shutdown so that open Watch streams end promptly.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "registry_metrics.h"
#include "t2/common/bounded_executor.h"
#include "t2/rpc/idle_watchdog.h"
#include "t2/store/expert_store.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::registry {

// Largest chunk a publisher may send and the size of the chunks GetExpert sends (the proto's
// limit).
inline constexpr int64_t kChunkBytes = 1 << 20;

struct RegistryServiceOptions {
  // An upload or download that makes no progress this long is cancelled (its thread and
  // staging file freed).
  absl::Duration transfer_idle_timeout = absl::Seconds(30);
  // A publish is refused (RESOURCE_EXHAUSTED) unless the store's disk keeps this much free
  // after its bytes and those of the uploads in progress.
  int64_t min_free_disk_bytes = int64_t{512} << 20;
};

class RegistryService final : public v1::Registry::WithCallbackMethod_Watch<v1::Registry::Service> {
 public:
  using Options = RegistryServiceOptions;

  // `metrics` (may be null) records publishes and Watch streams; it must outlive the service.
  explicit RegistryService(store::ExpertStore* store, RegistryMetrics* metrics = nullptr,
                           const Options& options = Options())
      : store_(store),
        metrics_(metrics),
        options_(options),
        watchdog_(options.transfer_idle_timeout),
        executor_({.max_threads = 4, .max_queue = 4096}) {}

  // Ends every Watch stream (status UNAVAILABLE) and refuses new ones.
  void BeginShutdown();

  grpc::Status PublishExpert(grpc::ServerContext* context,
                             grpc::ServerReader<v1::PublishExpertRequest>* reader,
                             v1::ExpertInfo* response) override;
  grpc::Status GetExpert(grpc::ServerContext* context, const v1::GetExpertRequest* request,
                         grpc::ServerWriter<v1::GetExpertResponse>* writer) override;
  grpc::Status ResolveExpert(grpc::ServerContext* context, const v1::ResolveExpertRequest* request,
                             v1::ExpertInfo* response) override;
  grpc::Status ListExperts(grpc::ServerContext* context, const v1::ListExpertsRequest* request,
                           v1::ListExpertsResponse* response) override;
  grpc::Status DeprecateExpert(grpc::ServerContext* context,
                               const v1::DeprecateExpertRequest* request,
                               v1::ExpertInfo* response) override;
  grpc::Status SetAlias(grpc::ServerContext* context, const v1::SetAliasRequest* request,
                        v1::Alias* response) override;
  grpc::Status GetAlias(grpc::ServerContext* context, const v1::GetAliasRequest* request,
                        v1::Alias* response) override;
  grpc::Status ListAliases(grpc::ServerContext* context, const v1::ListAliasesRequest* request,
                           v1::ListAliasesResponse* response) override;
  grpc::Status DeleteAlias(grpc::ServerContext* context, const v1::DeleteAliasRequest* request,
                           v1::DeleteAliasResponse* response) override;
  grpc::Status PutMixture(grpc::ServerContext* context, const v1::PutMixtureRequest* request,
                          v1::Mixture* response) override;
  grpc::Status GetMixture(grpc::ServerContext* context, const v1::GetMixtureRequest* request,
                          v1::Mixture* response) override;
  grpc::Status ListMixtures(grpc::ServerContext* context, const v1::ListMixturesRequest* request,
                            v1::ListMixturesResponse* response) override;
  grpc::Status DeleteMixture(grpc::ServerContext* context, const v1::DeleteMixtureRequest* request,
                             v1::DeleteMixtureResponse* response) override;
  grpc::Status RegisterBaseModel(grpc::ServerContext* context, const v1::BaseModel* request,
                                 v1::BaseModel* response) override;
  grpc::ServerWriteReactor<v1::RegistryEvent>* Watch(grpc::CallbackServerContext* context,
                                                     const v1::WatchRequest* request) override;

 private:
  grpc::Status DoPublish(grpc::ServerContext* context,
                         grpc::ServerReader<v1::PublishExpertRequest>* reader,
                         v1::ExpertInfo* response);
  grpc::Status DoGetExpert(grpc::ServerContext* context, const v1::GetExpertRequest& request,
                           grpc::ServerWriter<v1::GetExpertResponse>* writer);

  // Reserves `bytes` of disk for an upload if the store's disk has room for them beside the
  // uploads in progress and min_free_disk_bytes; the reservation ends with the returned object.
  absl::StatusOr<std::shared_ptr<void>> ReserveDisk(int64_t bytes);

  store::ExpertStore* store_;
  RegistryMetrics* metrics_;
  const Options options_;
  rpc::IdleWatchdog watchdog_;
  std::mutex disk_mu_;
  int64_t reserved_disk_bytes_ = 0;  // guarded by disk_mu_: declared sizes of uploads in progress
  std::atomic<bool> shutting_down_{false};
  // Reads the change log for Watch streams. Last: destroyed first, after the server has
  // finished every call.
  BoundedExecutor executor_;
};

}  // namespace t2::registry
