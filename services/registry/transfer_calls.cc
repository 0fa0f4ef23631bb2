#include "transfer_calls.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "call_outcome.h"
#include "proto_convert.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/auth.h"
#include "t2/rpc/offloaded_call.h"
#include "t2/rpc/status.h"
#include "t2/store/names.h"

namespace t2::registry {
namespace {

grpc::Status InvalidArgument(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

}  // namespace

// ---- PublishExpert

PublishCall::PublishCall(const TransferDeps& deps, grpc::CallbackServerContext& context,
                         v1::ExpertInfo& response)
    // Watched from the start: a client that never sends its header holds a call too.
    : deps_(deps), context_(context), response_(response), watched_(deps.watchdog.Watch(&context)) {
  StartRead(&message_);
}

void PublishCall::OnReadDone(bool ok) {
  rpc::RunStreamStep(
      deps_.executor, "registry", "PublishExpert", [this, ok] { return Consume(ok); },
      [this](std::optional<grpc::Status> outcome) { Then(std::move(outcome)); });
}

void PublishCall::Then(std::optional<grpc::Status> outcome) {
  if (!outcome.has_value()) return StartRead(&message_);
  ReportOutcome("PublishExpert", *outcome);
  if (deps_.metrics != nullptr) deps_.metrics->RecordPublish(outcome->error_code());
  Finish(*outcome);  // the last thing done with `this` before OnDone
}

std::optional<grpc::Status> PublishCall::Consume(bool ok) {
  if (ok) {
    watched_->Touch();
    return header_.has_value() ? AcceptChunk() : AcceptHeader();
  }
  // The stream ended: the client's WritesDone, or the call was cancelled or broken.
  if (watched_->expired()) {
    return Idle(header_.has_value() ? absl::StrCat(header_->name, "@", header_->version)
                                    : "before the header");
  }
  if (context_.IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "publish: the client cancelled");
  }
  if (!header_.has_value()) {
    return InvalidArgument("publish.header: the stream ended before the header");
  }
  return Commit();
}

grpc::Status PublishCall::Idle(std::string_view what) const {
  const absl::Duration idle = deps_.watchdog.idle();
  LogWarning(absl::StrCat("registry PublishExpert: ", AsAbsl(what), ": nothing arrived for ",
                          absl::FormatDuration(idle), "; upload cancelled"));
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                      absl::StrCat("publish: nothing arrived for ", absl::FormatDuration(idle)));
}

std::optional<grpc::Status> PublishCall::AcceptHeader() {
  if (!message_.has_header()) {
    return InvalidArgument("publish.header: the first message must be the header");
  }
  store::PublishHeader header = FromProto(message_.header());
  header.publisher = rpc::CallerIdentity(context_);
  // Checked before any byte is accepted, so a bad header never costs a 256 MiB upload.
  absl::Status valid = store::CheckPublishHeader(header);
  if (!valid.ok()) return rpc::ToGrpc(valid);
  absl::StatusOr<std::shared_ptr<void>> reservation = deps_.disk.Reserve(header.size_bytes);
  if (!reservation.ok()) return rpc::ToGrpc(reservation.status());
  absl::StatusOr<store::StagedBlob> staged = deps_.store.StageBlob();
  if (!staged.ok()) return rpc::ToGrpc(staged.status());
  header_ = std::move(header);
  reservation_ = *std::move(reservation);
  staged_ = *std::move(staged);
  return std::nullopt;
}

std::optional<grpc::Status> PublishCall::AcceptChunk() {
  ++chunks_;
  switch (message_.part_case()) {
    case v1::PublishExpertRequest::kHeader:
      return InvalidArgument(absl::StrCat("publish.header: a second header (message ", chunks_ + 1, ")"));
    case v1::PublishExpertRequest::PART_NOT_SET:
      return InvalidArgument(
          absl::StrCat("publish.chunk: message ", chunks_ + 1, " has neither header nor chunk"));
    case v1::PublishExpertRequest::kChunk:
      break;
  }
  const std::string& chunk = message_.chunk();
  if (static_cast<int64_t>(chunk.size()) > kChunkBytes) {
    return InvalidArgument(absl::StrCat("publish.chunk: chunk ", chunks_, " holds ", chunk.size(),
                                        " bytes; at most ", kChunkBytes, " are allowed"));
  }
  if (static_cast<int64_t>(chunk.size()) > header_->size_bytes - staged_->size()) {
    return InvalidArgument(absl::StrCat("publish.chunk: more bytes than the ", header_->size_bytes,
                                        " that publish.header.size_bytes declares"));
  }
  absl::Status appended = staged_->Append(chunk);
  if (!appended.ok()) return rpc::ToGrpc(appended);
  message_.Clear();  // the chunk's memory is not held while the call waits for the next
  return std::nullopt;
}

grpc::Status PublishCall::Commit() {
  absl::StatusOr<store::ExpertInfo> info = deps_.store.Publish(*header_, *std::move(staged_));
  staged_.reset();
  if (!info.ok()) return rpc::ToGrpc(info.status());
  ToProto(*info, &response_);
  return grpc::Status::OK;
}

void PublishCall::OnDone() { delete this; }

// ---- GetExpert

GetExpertCall::GetExpertCall(const TransferDeps& deps, grpc::CallbackServerContext& context,
                             const v1::GetExpertRequest& request)
    : deps_(deps), context_(context), request_(request) {
  rpc::RunStreamStep(
      deps_.executor, "registry", "GetExpert", [this] { return Open(); },
      [this](std::optional<grpc::Status> outcome) { Then(std::move(outcome)); });
}

void GetExpertCall::Then(std::optional<grpc::Status> outcome) {
  if (!outcome.has_value()) return StartWrite(&response_);
  ReportOutcome("GetExpert", *outcome);
  Finish(*outcome);  // the last thing done with `this` before OnDone
}

std::optional<grpc::Status> GetExpertCall::Open() {
  absl::StatusOr<store::ExpertInfo> info =
      deps_.store.ResolveExpert(request_.name(), request_.version());
  if (!info.ok()) return rpc::ToGrpc(info.status());
  absl::StatusOr<store::BlobReader> blob = deps_.store.OpenBlob(*info);
  if (!blob.ok()) return rpc::ToGrpc(blob.status());
  blob_ = *std::move(blob);
  ToProto(*info, response_.mutable_info());
  // A reader that stops reading leaves a write pending (flow control): the watchdog ends it.
  watched_ = deps_.watchdog.Watch(&context_);
  return std::nullopt;
}

void GetExpertCall::OnWriteDone(bool ok) {
  if (!ok) {
    // Cancelled (by the client, or by the watchdog when it stopped reading) or disconnected.
    return Then(grpc::Status(grpc::StatusCode::CANCELLED, "get: the client went away"));
  }
  watched_->Touch();
  rpc::RunStreamStep(
      deps_.executor, "registry", "GetExpert", [this] { return NextChunk(); },
      [this](std::optional<grpc::Status> outcome) { Then(std::move(outcome)); });
}

std::optional<grpc::Status> GetExpertCall::NextChunk() {
  absl::StatusOr<std::string> chunk = blob_->Next(kChunkBytes);
  if (!chunk.ok()) return rpc::ToGrpc(chunk.status());
  if (chunk->empty()) return grpc::Status::OK;
  response_.Clear();
  response_.set_chunk(*std::move(chunk));
  return std::nullopt;
}

void GetExpertCall::OnDone() { delete this; }

}  // namespace t2::registry
