// Starting a t2 gRPC server the same way in every service: the services given, plus
// grpc.health.v1 and server reflection, on an address whose port may be 0 (the OS picks one
// and `port` tells which). Also the shutdown-signal handling every binary shares.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace t2::rpc {

struct ServerOptions {
  std::string address = "127.0.0.1:0";       // host:port; port 0 = any free port
  int64_t max_receive_message_bytes = 4 << 20;  // larger requests get RESOURCE_EXHAUSTED
  // grpc.health.v1 entries besides the server's own "" one, so that a probe may ask for a
  // service by its full name (t2.v1.Worker): the services' service_full_name()s.
  std::vector<std::string> health_services{};
  // When set, every call is counted and timed there (server_metrics.h), per method of the
  // health_services and grpc.health.v1. Must outlive the server.
  prometheus::Registry* metrics = nullptr;
  // TLS and the auth check (security.h's MakeServerCredentials); null: plaintext that only
  // loopback peers may use, for in-process tests.
  std::shared_ptr<grpc::ServerCredentials> credentials = nullptr;
  // Limits that keep one client from exhausting the server. gRPC's sync server gives every
  // call in progress a thread (a Watch, a stream, a stalled upload hold theirs): beyond
  // max_threads new calls get RESOURCE_EXHAUSTED instead of the process running out. (Calls
  // of callback-API services hold no thread; their blocking work runs on a BoundedExecutor,
  // rpc/offloaded_call.h, which sets their bound.)
  // max_concurrent_streams caps the calls one connection has open at once (HTTP/2 makes the
  // client queue the rest). Keepalive pings find peers that vanished without closing their
  // connection, so that their calls end and free their threads.
  int max_threads = 1024;
  int max_concurrent_streams = 256;
  int keepalive_time_ms = 60'000;
  int keepalive_timeout_ms = 20'000;
  // When set ("0.0.0.0:8086"), a second, plaintext listener that answers only
  // grpc.health.v1.Health/Check with the main server's status: Kubernetes' gRPC probes
  // cannot speak TLS. It reveals nothing but SERVING or NOT_SERVING.
  std::string health_address{};
};

class HealthMirror;

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string address;  // host:bound_port
  // The plaintext health listener, when ServerOptions.health_address asked for one.
  std::shared_ptr<HealthMirror> health_mirror;
  std::unique_ptr<grpc::Server> health_server;
  std::string health_address;  // host:bound_port

  // The server's overall status (the "" entry) and every per-service entry already set.
  void SetServing(bool serving) const;
};

// Health starts NOT_SERVING for "" and every options.health_services entry; call
// SetServing(true) when ready.
absl::StatusOr<RunningServer> StartServer(const ServerOptions& options,
                                          const std::vector<grpc::Service*>& services);

// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts later, so that
// WaitForShutdownSignal can take them synchronously. Call first thing in main().
void BlockShutdownSignals();
// Waits for SIGINT or SIGTERM; returns the signal number.
int WaitForShutdownSignal();

}  // namespace t2::rpc
