// The t2.v1.Registry gRPC service over an ExpertStore. The streaming calls are on gRPC's
// callback API, so an open stream holds no thread: Watch waits for changes (watch_call.h),
// PublishExpert and GetExpert wait for their peer between chunks (transfer_calls.h), and the
// store work of each runs on the handler executor. The unary handlers are synchronous, each
// on a gRPC thread that may block on the store. Store errors map one to one to gRPC codes
// (t2::rpc::ToGrpc); no exception escapes a handler.
//
// Lifetime: the store must outlive the service, and the service the gRPC server. Call
// BeginShutdown() before Server::Shutdown so that open Watch streams end promptly.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "disk_reservations.h"
#include "registry_metrics.h"
#include "t2/common/bounded_executor.h"
#include "t2/rpc/idle_watchdog.h"
#include "t2/store/expert_store.h"
#include "t2/v1/registry.grpc.pb.h"
#include "transfer_calls.h"

namespace t2::registry {

struct RegistryServiceOptions {
  // An upload or download that makes no progress this long is cancelled (its thread and
  // staging file freed).
  absl::Duration transfer_idle_timeout = absl::Seconds(30);
  // A publish is refused (RESOURCE_EXHAUSTED) unless the store's disk keeps this much free
  // after its bytes and those of the uploads in progress.
  int64_t min_free_disk_bytes = int64_t{512} << 20;
};

class RegistryService final
    : public v1::Registry::WithCallbackMethod_PublishExpert<v1::Registry::WithCallbackMethod_GetExpert<
          v1::Registry::WithCallbackMethod_Watch<v1::Registry::Service>>> {
 public:
  using Options = RegistryServiceOptions;

  // `metrics` (may be null) records publishes and Watch streams; it must outlive the service.
  explicit RegistryService(store::ExpertStore* store, RegistryMetrics* metrics = nullptr,
                           const Options& options = Options())
      : store_(store),
        metrics_(metrics),
        watchdog_(options.transfer_idle_timeout),
        disk_(store->root(), options.min_free_disk_bytes),
        executor_({.max_threads = 4, .max_queue = 4096}) {}

  // Ends every Watch stream (status UNAVAILABLE) and refuses new ones.
  void BeginShutdown();

  grpc::ServerReadReactor<v1::PublishExpertRequest>* PublishExpert(
      grpc::CallbackServerContext* context, v1::ExpertInfo* response) override;
  grpc::ServerWriteReactor<v1::GetExpertResponse>* GetExpert(
      grpc::CallbackServerContext* context, const v1::GetExpertRequest* request) override;
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
  TransferDeps transfer_deps() {
    return {.store = *store_, .executor = executor_, .watchdog = watchdog_, .disk = disk_, .metrics = metrics_};
  }

  store::ExpertStore* store_;
  RegistryMetrics* metrics_;
  rpc::IdleWatchdog watchdog_;
  DiskReservations disk_;
  std::atomic<bool> shutting_down_{false};
  // Runs the streaming calls' store work: reading the change log for Watch streams, staging
  // and publishing uploads, opening and reading blobs for downloads. Last: destroyed first,
  // after the server has finished every call.
  BoundedExecutor executor_;
};

}  // namespace t2::registry
