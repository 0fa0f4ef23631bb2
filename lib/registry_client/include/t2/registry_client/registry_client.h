// The client side of the expert registry (proto/t2/v1/registry.proto): publish an expert
// file, download one with its size and sha256 checked, versions, aliases, mixtures, base
// models. Used by the t2 tool, the trainer job, the worker and the dispatcher. Free of LibTorch.
//
// Every call has a deadline (call_timeout; publish and download get transfer_timeout) and
// returns the registry's status as an absl::Status (UNAVAILABLE when it cannot be reached).
// Thread-safe: calls may run concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::registry {

struct ClientOptions {
  absl::Duration call_timeout = absl::Seconds(60);
  absl::Duration transfer_timeout = absl::Minutes(5);  // Publish, Download
};

class RegistryClient {
 public:
  // A channel made with the caller's credentials (rpc/security.h).
  explicit RegistryClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options = {});

  // Streams `file` (1 MiB chunks) as name@version with its size and sha256 in the header.
  // The registry checks it; the same name@version with the same bytes again is a no-op.
  absl::StatusOr<t2::v1::ExpertInfo> Publish(const std::string& name, int64_t version,
                                             const std::filesystem::path& file) const;

  struct DownloadOptions {
    // The bytes the caller must get (64 hex digits). When the registry announces others (the
    // version was deleted and published again) the transfer stops with NotFound. Empty:
    // whatever it serves.
    std::string expect_sha256;
    // Replaces transfer_timeout: a worker fetching for a request has the request's deadline.
    std::optional<absl::Time> deadline;
  };
  // Downloads name@version (version 0: the alias's target, else the newest non-deprecated
  // version) into `out` through an AtomicFileWriter (t2/common/atomic_file.h), checked against
  // the size and sha256 the registry announced. `out` is the whole expert or untouched
  // (DataLoss on a mismatch).
  absl::StatusOr<t2::v1::ExpertInfo> Download(const std::string& name, int64_t version,
                                              const std::filesystem::path& out,
                                              const DownloadOptions& options) const;
  absl::StatusOr<t2::v1::ExpertInfo> Download(const std::string& name, int64_t version,
                                              const std::filesystem::path& out) const {
    return Download(name, version, out, DownloadOptions{});
  }

  // What Download would announce for name@version, without the bytes (the registry's
  // ResolveExpert: the one place the rule lives). `deadline` replaces call_timeout.
  absl::StatusOr<t2::v1::ExpertInfo> Resolve(
      const std::string& name, int64_t version,
      std::optional<absl::Time> deadline = std::nullopt) const;

  // Versions of `name` (every expert when empty), by name then version.
  absl::StatusOr<std::vector<t2::v1::ExpertInfo>> ListExperts(const std::string& name,
                                                              bool include_deprecated) const;
  // The alias's target; nullopt when there is no such alias. `deadline`, here and below,
  // replaces call_timeout (the dispatcher caps each call by its request's deadline).
  absl::StatusOr<std::optional<t2::v1::Alias>> GetAlias(
      const std::string& alias, std::optional<absl::Time> deadline = std::nullopt) const;
  absl::StatusOr<t2::v1::Alias> SetAlias(const std::string& alias, const std::string& name, int64_t version) const;
  // Every alias, in the registry's order.
  absl::StatusOr<std::vector<t2::v1::Alias>> ListAliases(
      std::optional<absl::Time> deadline = std::nullopt) const;
  // The stored CEM mixture named `name`; nullopt when there is none.
  absl::StatusOr<std::optional<t2::v1::Mixture>> GetMixture(
      const std::string& name, std::optional<absl::Time> deadline = std::nullopt) const;
  // Stores (or replaces) a mixture under its name; the registry's copy comes back.
  absl::StatusOr<t2::v1::Mixture> PutMixture(
      const t2::v1::Mixture& mixture, std::optional<absl::Time> deadline = std::nullopt) const;
  // Idempotent for the same model (ALREADY_EXISTS only for a conflicting one).
  absl::StatusOr<t2::v1::BaseModel> RegisterBaseModel(const t2::v1::BaseModel& model) const;

 private:
  // The caller's deadline where it gave one, else now + `otherwise`.
  void Prepare(grpc::ClientContext& context, std::optional<absl::Time> deadline,
               absl::Duration otherwise) const;
  // One unary RPC under `deadline` (else call_timeout), its status as an absl::Status.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(grpc::Status (t2::v1::Registry::Stub::*method)(
                                     grpc::ClientContext*, const Request&, Response*),
                                 const Request& request, std::optional<absl::Time> deadline) const;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<t2::v1::Registry::Stub> stub_;
  ClientOptions options_;
};

}  // namespace t2::registry
