#include "registry_service.h"

#include <chrono>
#include <climits>
#include <filesystem>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto_convert.h"
#include "t2/common/log.h"
#include "t2/common/status.h"
#include "t2/rpc/auth.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/status.h"
#include "t2/store/names.h"
#include "watch_call.h"

namespace t2::registry {
namespace {

grpc::Status InvalidArgument(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

// Server-side trouble is logged; a client's mistakes are only reported back to it.
void Report(std::string_view method, const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      LogError(absl::StrCat("registry ", AsAbsl(method), ": ", status.error_message()));
      break;
    default:
      break;
  }
}

// Every handler's body runs in the shared guard; the outcome is then logged or not.
template <typename Body>
grpc::Status Guarded(std::string_view method, Body&& body) {
  grpc::Status status = rpc::GuardHandler("registry", method, body);
  Report(method, status);
  return status;
}

}  // namespace

void RegistryService::BeginShutdown() {
  shutting_down_ = true;
  store_->Close();
}

grpc::Status RegistryService::PublishExpert(grpc::ServerContext* context,
                                            grpc::ServerReader<v1::PublishExpertRequest>* reader,
                                            v1::ExpertInfo* response) {
  grpc::Status status = Guarded("PublishExpert", [&] { return DoPublish(context, reader, response); });
  if (metrics_ != nullptr) metrics_->RecordPublish(status.error_code());
  return status;
}

grpc::Status RegistryService::DoPublish(grpc::ServerContext* context,
                                        grpc::ServerReader<v1::PublishExpertRequest>* reader,
                                        v1::ExpertInfo* response) {
  // Watched from the start: a client that never sends its header holds a thread too.
  const std::unique_ptr<rpc::IdleWatchdog::Call> watched = watchdog_.Watch(context);
  const auto idle = [&](std::string_view what) {
    LogWarning(absl::StrCat("registry PublishExpert: ", AsAbsl(what), ": nothing arrived for ",
                            absl::FormatDuration(watchdog_.idle()), "; upload cancelled"));
    return grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        absl::StrCat("publish: nothing arrived for ", absl::FormatDuration(watchdog_.idle())));
  };
  v1::PublishExpertRequest message;
  if (!reader->Read(&message)) {
    if (watched->expired()) return idle("before the header");
    return InvalidArgument("publish.header: the stream ended before the header");
  }
  watched->Touch();
  if (!message.has_header()) {
    return InvalidArgument("publish.header: the first message must be the header");
  }
  store::PublishHeader header = FromProto(message.header());
  header.publisher = rpc::CallerIdentity(*context);
  // Checked before any byte is accepted, so a bad header never costs a 256 MiB upload.
  absl::Status valid = store::CheckPublishHeader(header);
  if (!valid.ok()) return rpc::ToGrpc(valid);

  absl::StatusOr<std::shared_ptr<void>> reservation = ReserveDisk(header.size_bytes);
  if (!reservation.ok()) return rpc::ToGrpc(reservation.status());

  absl::StatusOr<store::StagedBlob> staged = store_->StageBlob();
  if (!staged.ok()) return rpc::ToGrpc(staged.status());
  int64_t chunks = 0;
  while (reader->Read(&message)) {
    watched->Touch();
    ++chunks;
    switch (message.part_case()) {
      case v1::PublishExpertRequest::kHeader:
        return InvalidArgument(
            absl::StrCat("publish.header: a second header (message ", chunks + 1, ")"));
      case v1::PublishExpertRequest::PART_NOT_SET:
        return InvalidArgument(
            absl::StrCat("publish.chunk: message ", chunks + 1, " has neither header nor chunk"));
      case v1::PublishExpertRequest::kChunk:
        break;
    }
    const std::string& chunk = message.chunk();
    if (static_cast<int64_t>(chunk.size()) > kChunkBytes) {
      return InvalidArgument(absl::StrCat("publish.chunk: chunk ", chunks, " holds ", chunk.size(),
                                          " bytes; at most ", kChunkBytes, " are allowed"));
    }
    if (static_cast<int64_t>(chunk.size()) > header.size_bytes - staged->size()) {
      return InvalidArgument(absl::StrCat("publish.chunk: more bytes than the ", header.size_bytes,
                                          " that publish.header.size_bytes declares"));
    }
    absl::Status appended = staged->Append(chunk);
    if (!appended.ok()) return rpc::ToGrpc(appended);
  }
  if (watched->expired()) return idle(absl::StrCat(header.name, "@", header.version));
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "publish: the client cancelled");
  }
  absl::StatusOr<store::ExpertInfo> info = store_->Publish(header, *std::move(staged));
  if (!info.ok()) return rpc::ToGrpc(info.status());
  ToProto(*info, response);
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<void>> RegistryService::ReserveDisk(int64_t bytes) {
  std::error_code ec;
  const std::filesystem::space_info space = std::filesystem::space(store_->root(), ec);
  if (ec) {
    LogError(absl::StrCat("registry: free disk space unknown: ", ec.message()));
    return absl::InternalError("publish: the registry cannot check its free disk space");
  }
  std::lock_guard lock(disk_mu_);
  const int64_t available = static_cast<int64_t>(std::min<uintmax_t>(space.available, INT64_MAX));
  const int64_t left = available - reserved_disk_bytes_ - bytes;
  if (left < options_.min_free_disk_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "publish: the registry's disk has no room for ", bytes, " more bytes (", available,
        " free, ", reserved_disk_bytes_, " promised to uploads in progress, ",
        options_.min_free_disk_bytes, " kept free)"));
  }
  reserved_disk_bytes_ += bytes;
  return std::shared_ptr<void>(nullptr, [this, bytes](void*) {
    std::lock_guard lock(disk_mu_);
    reserved_disk_bytes_ -= bytes;
  });
}

grpc::Status RegistryService::GetExpert(grpc::ServerContext* context,
                                        const v1::GetExpertRequest* request,
                                        grpc::ServerWriter<v1::GetExpertResponse>* writer) {
  return Guarded("GetExpert", [&] { return DoGetExpert(context, *request, writer); });
}

grpc::Status RegistryService::DoGetExpert(grpc::ServerContext* context,
                                          const v1::GetExpertRequest& request,
                                          grpc::ServerWriter<v1::GetExpertResponse>* writer) {
  absl::StatusOr<store::ExpertInfo> info = store_->ResolveExpert(request.name(), request.version());
  if (!info.ok()) return rpc::ToGrpc(info.status());
  // Opening checks the whole blob, so a damaged one fails before anything is sent.
  absl::StatusOr<store::BlobReader> blob = store_->OpenBlob(*info);
  if (!blob.ok()) return rpc::ToGrpc(blob.status());
  v1::GetExpertResponse response;
  ToProto(*info, response.mutable_info());
  // A reader that stops reading blocks Write (flow control): the watchdog ends it.
  const std::unique_ptr<rpc::IdleWatchdog::Call> watched = watchdog_.Watch(context);
  if (!writer->Write(response)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "get: the client went away");
  }
  while (true) {
    watched->Touch();
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "get: the client cancelled");
    }
    absl::StatusOr<std::string> chunk = blob->Next(kChunkBytes);
    if (!chunk.ok()) return rpc::ToGrpc(chunk.status());
    if (chunk->empty()) break;
    response.Clear();
    response.set_chunk(*std::move(chunk));
    if (!writer->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "get: the client went away");
    }
  }
  return grpc::Status::OK;
}

grpc::Status RegistryService::ResolveExpert(grpc::ServerContext*,
                                            const v1::ResolveExpertRequest* request,
                                            v1::ExpertInfo* response) {
  return Guarded("ResolveExpert", [&] {
    auto info = store_->ResolveExpert(request->name(), request->version(), "resolve");
    if (!info.ok()) return rpc::ToGrpc(info.status());
    ToProto(*info, response);
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::ListExperts(grpc::ServerContext*,
                                          const v1::ListExpertsRequest* request,
                                          v1::ListExpertsResponse* response) {
  return Guarded("ListExperts", [&] {
    auto experts = store_->ListExperts(request->name(), request->include_deprecated());
    if (!experts.ok()) return rpc::ToGrpc(experts.status());
    for (const store::ExpertInfo& info : *experts) ToProto(info, response->add_experts());
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::DeprecateExpert(grpc::ServerContext*,
                                              const v1::DeprecateExpertRequest* request,
                                              v1::ExpertInfo* response) {
  return Guarded("DeprecateExpert", [&] {
    auto info = store_->Deprecate(request->name(), request->version());
    if (!info.ok()) return rpc::ToGrpc(info.status());
    ToProto(*info, response);
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::SetAlias(grpc::ServerContext*, const v1::SetAliasRequest* request,
                                       v1::Alias* response) {
  return Guarded("SetAlias", [&] {
    auto alias = store_->SetAlias(request->alias(), request->name(), request->version());
    if (!alias.ok()) return rpc::ToGrpc(alias.status());
    ToProto(*alias, response);
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::GetAlias(grpc::ServerContext*, const v1::GetAliasRequest* request,
                                       v1::Alias* response) {
  return Guarded("GetAlias", [&] {
    auto alias = store_->GetAlias(request->alias());
    if (!alias.ok()) return rpc::ToGrpc(alias.status());
    ToProto(*alias, response);
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::ListAliases(grpc::ServerContext*, const v1::ListAliasesRequest*,
                                          v1::ListAliasesResponse* response) {
  return Guarded("ListAliases", [&] {
    auto aliases = store_->ListAliases();
    if (!aliases.ok()) return rpc::ToGrpc(aliases.status());
    for (const store::Alias& alias : *aliases) ToProto(alias, response->add_aliases());
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::DeleteAlias(grpc::ServerContext*,
                                          const v1::DeleteAliasRequest* request,
                                          v1::DeleteAliasResponse*) {
  return Guarded("DeleteAlias", [&] { return rpc::ToGrpc(store_->DeleteAlias(request->alias())); });
}

grpc::Status RegistryService::PutMixture(grpc::ServerContext*, const v1::PutMixtureRequest* request,
                                         v1::Mixture* response) {
  return Guarded("PutMixture", [&] {
    auto mixture = store_->PutMixture(FromProto(request->mixture()));
    if (!mixture.ok()) return rpc::ToGrpc(mixture.status());
    ToProto(*mixture, response);
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::GetMixture(grpc::ServerContext*, const v1::GetMixtureRequest* request,
                                         v1::Mixture* response) {
  return Guarded("GetMixture", [&] {
    auto mixture = store_->GetMixture(request->name());
    if (!mixture.ok()) return rpc::ToGrpc(mixture.status());
    ToProto(*mixture, response);
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::ListMixtures(grpc::ServerContext*, const v1::ListMixturesRequest*,
                                           v1::ListMixturesResponse* response) {
  return Guarded("ListMixtures", [&] {
    auto mixtures = store_->ListMixtures();
    if (!mixtures.ok()) return rpc::ToGrpc(mixtures.status());
    for (const store::Mixture& m : *mixtures) ToProto(m, response->add_mixtures());
    return grpc::Status::OK;
  });
}

grpc::Status RegistryService::DeleteMixture(grpc::ServerContext*, const v1::DeleteMixtureRequest* request,
                                            v1::DeleteMixtureResponse*) {
  return Guarded("DeleteMixture", [&] { return rpc::ToGrpc(store_->DeleteMixture(request->name())); });
}

grpc::Status RegistryService::RegisterBaseModel(grpc::ServerContext*, const v1::BaseModel* request,
                                                v1::BaseModel* response) {
  return Guarded("RegisterBaseModel", [&] {
    auto base = store_->RegisterBaseModel(FromProto(*request));
    if (!base.ok()) return rpc::ToGrpc(base.status());
    ToProto(*base, response);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<v1::RegistryEvent>* RegistryService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  return new WatchCall({.store = *store_,
                        .executor = executor_,
                        .shutting_down = shutting_down_,
                        .metrics = metrics_},
                       *context, *request);
}

}  // namespace t2::registry
