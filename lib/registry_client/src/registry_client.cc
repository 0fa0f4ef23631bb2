#include "t2/registry_client/registry_client.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "t2/common/atomic_file.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"
#include "t2/rpc/status.h"

namespace t2::registry {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

// Lookups whose miss is an answer, not an error: NOT_FOUND becomes nullopt.
template <typename T>
absl::StatusOr<std::optional<T>> NoneIfNotFound(absl::StatusOr<T> found) {
  if (absl::IsNotFound(found.status())) return std::optional<T>();
  T2_RETURN_IF_ERROR(found.status());
  return std::optional<T>(*std::move(found));
}

}  // namespace

RegistryClient::RegistryClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : channel_(std::move(channel)), stub_(t2::v1::Registry::NewStub(channel_)), options_(options) {}

void RegistryClient::Prepare(grpc::ClientContext& context, std::optional<absl::Time> deadline,
                             absl::Duration otherwise) const {
  context.set_deadline(absl::ToChronoTime(deadline.value_or(absl::Now() + otherwise)));
}

template <typename Request, typename Response>
absl::StatusOr<Response> RegistryClient::Unary(
    grpc::Status (t2::v1::Registry::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request, std::optional<absl::Time> deadline) const {
  grpc::ClientContext context;
  Prepare(context, deadline, options_.call_timeout);
  Response response;
  T2_RETURN_IF_ERROR(rpc::FromGrpc(((*stub_).*method)(&context, request, &response)));
  return response;
}

absl::StatusOr<t2::v1::ExpertInfo> RegistryClient::Publish(const std::string& name, int64_t version,
                                                           const std::filesystem::path& file) const {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", file.string(), ": ", ec.message()));
  // Hashed first: the header carries the digest before any byte is sent.
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", file.string()));
  Sha256 hash;
  std::string buffer(kChunkBytes, '\0');
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    hash.Update(std::string_view(buffer.data(), static_cast<size_t>(in.gcount())));
  }
  const std::string digest = hash.HexDigest();
  in.clear();
  in.seekg(0);

  grpc::ClientContext context;
  Prepare(context, std::nullopt, options_.transfer_timeout);
  t2::v1::ExpertInfo info;
  auto writer = stub_->PublishExpert(&context, &info);
  t2::v1::PublishExpertRequest header;
  header.mutable_header()->set_name(name);
  header.mutable_header()->set_version(version);
  header.mutable_header()->set_size_bytes(static_cast<int64_t>(size));
  header.mutable_header()->set_sha256(digest);
  bool ok = writer->Write(header);
  int64_t sent = 0;
  while (ok && (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)) {
    t2::v1::PublishExpertRequest chunk;
    chunk.set_chunk(buffer.data(), static_cast<size_t>(in.gcount()));
    sent += in.gcount();
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return rpc::FromGrpc(status);
  if (ok && sent != static_cast<int64_t>(size)) {
    return absl::DataLossError(absl::StrCat(file.string(), " changed while it was published"));
  }
  return info;
}

absl::StatusOr<t2::v1::ExpertInfo> RegistryClient::Download(const std::string& name,
                                                            int64_t version,
                                                            const std::filesystem::path& out,
                                                            const DownloadOptions& options) const {
  T2_ASSIGN_OR_RETURN(AtomicFileWriter file, AtomicFileWriter::Create(out));
  t2::v1::GetExpertRequest request;
  request.set_name(name);
  request.set_version(version);
  grpc::ClientContext context;
  Prepare(context, options.deadline, options_.transfer_timeout);
  auto reader = stub_->GetExpert(&context, request);
  t2::v1::GetExpertResponse message;
  t2::v1::ExpertInfo info;
  bool have_info = false;
  absl::Status local;  // what went wrong on this side, which cancelled the call
  Sha256 hash;
  while (reader->Read(&message)) {
    if (message.has_info()) {
      info = message.info();
      have_info = true;
      if (!options.expect_sha256.empty() && info.sha256() != options.expect_sha256) {
        local = absl::NotFoundError(absl::StrCat("expert ", name, "@", info.version(),
                                                 " in the registry has sha256 ", info.sha256(),
                                                 ", not the requested ", options.expect_sha256));
      }
    } else {
      hash.Update(message.chunk());
      local = file.Append(message.chunk());
    }
    if (!local.ok()) {
      context.TryCancel();
      break;
    }
  }
  absl::Status status = rpc::FromGrpc(reader->Finish());
  if (!local.ok()) return local;
  if (!status.ok()) return status;
  if (!have_info) return absl::DataLossError("the registry sent no expert header");
  if (file.bytes_written() != info.size_bytes()) {
    return absl::DataLossError(absl::StrCat("received ", file.bytes_written(),
                                            " bytes, the registry announced ", info.size_bytes()));
  }
  const std::string digest = hash.HexDigest();
  if (digest != info.sha256()) {
    return absl::DataLossError(absl::StrCat("sha256 of the received bytes is ", digest,
                                            ", the registry announced ", info.sha256()));
  }
  T2_RETURN_IF_ERROR(file.Commit());
  return info;
}

absl::StatusOr<std::vector<t2::v1::ExpertInfo>> RegistryClient::ListExperts(const std::string& name,
                                                                           bool include_deprecated) const {
  t2::v1::ListExpertsRequest request;
  request.set_name(name);
  request.set_include_deprecated(include_deprecated);
  T2_ASSIGN_OR_RETURN(t2::v1::ListExpertsResponse response,
                      Unary(&t2::v1::Registry::Stub::ListExperts, request, std::nullopt));
  return std::vector<t2::v1::ExpertInfo>(response.experts().begin(), response.experts().end());
}

absl::StatusOr<t2::v1::ExpertInfo> RegistryClient::Resolve(
    const std::string& name, int64_t version, std::optional<absl::Time> deadline) const {
  t2::v1::ResolveExpertRequest request;
  request.set_name(name);
  request.set_version(version);
  return Unary(&t2::v1::Registry::Stub::ResolveExpert, request, deadline);
}

absl::StatusOr<std::optional<t2::v1::Alias>> RegistryClient::GetAlias(
    const std::string& alias, std::optional<absl::Time> deadline) const {
  t2::v1::GetAliasRequest request;
  request.set_alias(alias);
  return NoneIfNotFound(Unary(&t2::v1::Registry::Stub::GetAlias, request, deadline));
}

absl::StatusOr<t2::v1::Alias> RegistryClient::SetAlias(const std::string& alias, const std::string& name,
                                                      int64_t version) const {
  t2::v1::SetAliasRequest request;
  request.set_alias(alias);
  request.set_name(name);
  request.set_version(version);
  return Unary(&t2::v1::Registry::Stub::SetAlias, request, std::nullopt);
}

absl::StatusOr<std::vector<t2::v1::Alias>> RegistryClient::ListAliases(
    std::optional<absl::Time> deadline) const {
  T2_ASSIGN_OR_RETURN(
      t2::v1::ListAliasesResponse response,
      Unary(&t2::v1::Registry::Stub::ListAliases, t2::v1::ListAliasesRequest(), deadline));
  return std::vector<t2::v1::Alias>(response.aliases().begin(), response.aliases().end());
}

absl::StatusOr<std::optional<t2::v1::Mixture>> RegistryClient::GetMixture(
    const std::string& name, std::optional<absl::Time> deadline) const {
  t2::v1::GetMixtureRequest request;
  request.set_name(name);
  return NoneIfNotFound(Unary(&t2::v1::Registry::Stub::GetMixture, request, deadline));
}

absl::StatusOr<t2::v1::Mixture> RegistryClient::PutMixture(
    const t2::v1::Mixture& mixture, std::optional<absl::Time> deadline) const {
  t2::v1::PutMixtureRequest request;
  *request.mutable_mixture() = mixture;
  return Unary(&t2::v1::Registry::Stub::PutMixture, request, deadline);
}

absl::StatusOr<t2::v1::BaseModel> RegistryClient::RegisterBaseModel(const t2::v1::BaseModel& model) const {
  return Unary(&t2::v1::Registry::Stub::RegisterBaseModel, model, std::nullopt);
}

}  // namespace t2::registry
