// The registry's two blob transfers on gRPC's callback API: PublishExpert (the client streams
// a header, then the blob in chunks) and GetExpert (the registry streams the expert's info,
// then the blob). No thread waits on a peer: between messages a call is only its reactor.
// The work on each message (staging bytes on disk, the checked open of a blob, the durable
// publish) runs on the registry's handler executor, one step at a time per call
// (rpc::RunStreamStep), and the next read or write starts when the step is done.
//
// A peer that goes quiet (an upload that stops sending, a download nobody reads) is cancelled
// by the idle watchdog; the pending read or write then fails and the call ends, freeing its
// staging file and disk reservation.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_callback.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "disk_reservations.h"
#include "registry_metrics.h"
#include "t2/common/bounded_executor.h"
#include "t2/rpc/idle_watchdog.h"
#include "t2/store/expert_store.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::registry {

// Largest chunk a publisher may send and the size of the chunks GetExpert sends (the proto's
// limit).
inline constexpr int64_t kChunkBytes = 1 << 20;

// What a transfer needs from the service; every reference outlives the call.
struct TransferDeps {
  store::ExpertStore& store;
  BoundedExecutor& executor;
  rpc::IdleWatchdog& watchdog;
  DiskReservations& disk;
  RegistryMetrics* metrics;  // null: not recorded
};

// One PublishExpert call. Starts itself on construction; deletes itself in OnDone.
class PublishCall final : public grpc::ServerReadReactor<v1::PublishExpertRequest> {
 public:
  PublishCall(const TransferDeps& deps, grpc::CallbackServerContext& context,
              v1::ExpertInfo& response);

  void OnReadDone(bool ok) override;
  void OnDone() override;

 private:
  // On the executor: what the message just read (or the end of the stream, !ok) means.
  std::optional<grpc::Status> Consume(bool ok);
  std::optional<grpc::Status> AcceptHeader();
  std::optional<grpc::Status> AcceptChunk();
  grpc::Status Commit();
  grpc::Status Idle(std::string_view what) const;
  // Reads the next message, or finishes with the step's status.
  void Then(std::optional<grpc::Status> outcome);

  const TransferDeps deps_;
  grpc::CallbackServerContext& context_;
  v1::ExpertInfo& response_;
  const std::unique_ptr<rpc::IdleWatchdog::Call> watched_;
  // Touched by one step or callback at a time (one read or step in flight), so unguarded.
  v1::PublishExpertRequest message_;
  std::optional<store::PublishHeader> header_;
  std::shared_ptr<void> reservation_;     // of header_->size_bytes, until the call is done
  std::optional<store::StagedBlob> staged_;  // removed unless published
  int64_t chunks_ = 0;
};

// One GetExpert call. Starts itself on construction; deletes itself in OnDone.
class GetExpertCall final : public grpc::ServerWriteReactor<v1::GetExpertResponse> {
 public:
  GetExpertCall(const TransferDeps& deps, grpc::CallbackServerContext& context,
                const v1::GetExpertRequest& request);

  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  // On the executor: the expert resolved and its blob opened (which checks the whole blob,
  // so a damaged one fails before anything is sent); the info is the first message.
  std::optional<grpc::Status> Open();
  // On the executor: the next chunk, or OK at the end of the blob.
  std::optional<grpc::Status> NextChunk();
  // Writes response_, or finishes with the step's status.
  void Then(std::optional<grpc::Status> outcome);

  const TransferDeps deps_;
  grpc::CallbackServerContext& context_;
  const v1::GetExpertRequest& request_;
  // Touched by one step or callback at a time (one write or step in flight), so unguarded.
  std::unique_ptr<rpc::IdleWatchdog::Call> watched_;
  std::optional<store::BlobReader> blob_;
  v1::GetExpertResponse response_;
};

}  // namespace t2::registry
