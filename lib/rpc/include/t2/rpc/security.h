// Transport security for every t2 binary, from the same flags: TLS (optionally mutual) with
// certificates re-read when their files change, or, only when asked for, plaintext restricted
// to loopback peers. Plus the bearer token a client sends and the auth file a server checks.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "t2/common/flags.h"

namespace t2::rpc {

// What a t2 client accepts in one reply message. Replies are the servers' to size, within
// reason: a generated text or a list of experts is far below this; a peer sending more is
// broken or hostile, and is refused rather than buffered.
inline constexpr int kMaxClientReceiveMessageBytes = 64 << 20;

inline constexpr char kServerSecurityUsage[] = R"(
transport security (one of --tls-cert/--tls-key or --insecure-loopback is required):
  --tls-cert FILE, --tls-key FILE
                        this service's certificate chain and private key (PEM), served to
                        clients and shown to the services it calls; re-read when they change
  --tls-ca FILE         CA bundle (PEM) that the services it calls, and client certificates,
                        must chain to (default for servers it calls: the system's roots)
  --require-client-cert refuse clients without a certificate from --tls-ca (mutual TLS)
  --auth-file FILE      tokens and certificate names with their roles (see README, Security);
                        without it every caller may call everything
  --token-file FILE     bearer token sent to the services this one calls (not for the
                        registry, which calls none)
  --insecure-loopback   no TLS: serve and call plaintext, and accept only loopback peers
  --health-listen HOST:PORT
                        also answer grpc.health.v1 Check, and nothing else, in plaintext
                        there (Kubernetes' gRPC probes cannot speak TLS)
)";

inline constexpr char kClientSecurityUsage[] = R"(
transport security (one of --tls-ca/--tls-cert or --insecure-loopback is required):
  --tls-ca FILE         CA bundle (PEM) the server's certificate must chain to
                        (default: the system's roots)
  --tls-cert FILE, --tls-key FILE
                        a client certificate, for servers that require mutual TLS
  --token-file FILE     the bearer token to send (a file, so it shows in no process list)
  --insecure-loopback   plaintext to a server on this machine (127.0.0.1, ::1, localhost)
)";

// The flags above, to add to a binary's FlagSpec: a server's (kServerSecurityUsage) or a
// client's (kClientSecurityUsage).
void AddServerSecurityFlags(FlagSpec& spec);
void AddSecurityFlags(FlagSpec& spec);

struct Security {
  bool insecure_loopback = false;
  std::string cert_file{}, key_file{};  // both or neither
  std::string ca_file{};
  bool require_client_cert = false;
  std::string auth_file{};   // servers only
  std::string token_file{};  // what this process sends as a client
  // How often changed certificate files are picked up.
  int reload_seconds = 10;
};

// InvalidArgumentError naming the flag for a missing choice, a half pair or an unreadable file.
// `server`: a server needs its own certificate (or --insecure-loopback).
absl::StatusOr<Security> SecurityFromFlags(const Flags& flags, bool server);

// Server credentials: TLS with the file-watching certificate provider, or loopback-only
// plaintext; with the auth processor when auth_file is set. Refuses --insecure-loopback with
// a listen address no remote peer could use anyway ("0.0.0.0:50051") to say so at start.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const Security& security, const std::string& listen_address);

// Channel credentials for calling another service, with the bearer token attached to every
// call when token_file is set.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const Security& security);

// A client's channel to `target` from the flags above (SecurityFromFlags, client side).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(const Flags& flags,
                                                                 const std::string& target);

// Loopback-only plaintext, for in-process servers and the clients of tests and benchmarks.
std::shared_ptr<grpc::ServerCredentials> LoopbackServerCredentials();
std::shared_ptr<grpc::ChannelCredentials> LoopbackChannelCredentials();

// Whether `address` (host:port, [v6]:port) names this machine: 127.0.0.0/8, ::1, localhost.
bool IsLoopbackAddress(const std::string& address);

}  // namespace t2::rpc
