// Transport security for every t2 binary, from the same flags: TLS (optionally mutual) with
// certificates re-read when their files change, or, only when asked for, plaintext restricted
// to loopback peers. Plus the bearer token a client sends and the auth file a server checks.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "t2/common/command_line.h"

namespace t2::rpc {

// What a t2 client accepts in one reply message. Replies are the servers' to size, within
// reason: a generated text or a list of experts is far below this; a peer sending more is
// broken or hostile, and is refused rather than buffered.
inline constexpr int kMaxClientReceiveMessageBytes = 64 << 20;

struct Security {
  bool insecure_loopback = false;
  std::string cert_file{}, key_file{};  // both or neither
  std::string ca_file{};
  bool require_client_cert = false;
  std::string auth_file{};      // servers only
  std::string token_file{};     // what this process sends as a client
  std::string health_listen{};  // servers only: a plaintext port answering health checks alone
  // How often changed certificate files are picked up.
  int reload_seconds = 10;
};

// Declares the flags that fill `security`, in their own section of --help: a server's
// (`server`: also --auth-file, --require-client-cert, --health-listen) or a client's.
void AddSecurityFlags(CLI::App& app, Security& security, bool server);

// InvalidArgumentError naming the flag for a missing choice, a half pair or an unreadable file.
// `server`: a server needs its own certificate (or --insecure-loopback).
absl::Status CheckSecurity(const Security& security, bool server);

// Server credentials: TLS with the file-watching certificate provider, or loopback-only
// plaintext; with the auth processor when auth_file is set. Refuses --insecure-loopback with
// a listen address no remote peer could use anyway ("0.0.0.0:50051") to say so at start.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const Security& security, const std::string& listen_address);

// Channel credentials for calling another service, with the bearer token attached to every
// call when token_file is set.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const Security& security);

// A client's channel to `target`, after CheckSecurity(security, /*server=*/false).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(const Security& security,
                                                                 const std::string& target);

// Loopback-only plaintext, for in-process servers and the clients of tests and benchmarks.
std::shared_ptr<grpc::ServerCredentials> LoopbackServerCredentials();
std::shared_ptr<grpc::ChannelCredentials> LoopbackChannelCredentials();

// Whether `address` (host:port, [v6]:port) names this machine: 127.0.0.0/8, ::1, localhost.
bool IsLoopbackAddress(const std::string& address);

}  // namespace t2::rpc
