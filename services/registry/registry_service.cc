#include "registry_service.h"

#include <string_view>

#include "call_outcome.h"
#include "proto_convert.h"
#include "t2/rpc/handler_guard.h"
#include "t2/rpc/status.h"
#include "watch_call.h"

namespace t2::registry {
namespace {

// Every unary handler's body runs in the shared guard; the outcome is then logged or not.
template <typename Body>
grpc::Status Guarded(std::string_view method, Body&& body) {
  grpc::Status status = rpc::GuardHandler("registry", method, body);
  ReportOutcome(method, status);
  return status;
}

}  // namespace

void RegistryService::BeginShutdown() {
  shutting_down_ = true;
  store_->Close();
}

grpc::ServerReadReactor<v1::PublishExpertRequest>* RegistryService::PublishExpert(
    grpc::CallbackServerContext* context, v1::ExpertInfo* response) {
  return new PublishCall(transfer_deps(), *context, *response);
}

grpc::ServerWriteReactor<v1::GetExpertResponse>* RegistryService::GetExpert(
    grpc::CallbackServerContext* context, const v1::GetExpertRequest* request) {
  return new GetExpertCall(transfer_deps(), *context, *request);
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
