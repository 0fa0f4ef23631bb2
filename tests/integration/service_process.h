// Integration tests run the real service binaries: this starts one on an ephemeral loopback
// port, waits until its health check says SERVING, and keeps its log for failure messages.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "testing/process.h"

namespace t2::testing {

struct ServiceProcess {
  ChildProcess process;
  std::string address;          // host:port it listens on
  std::filesystem::path log;    // its stdout + stderr
  std::shared_ptr<grpc::Channel> channel;

  std::string LogTail() const { return Tail(log); }
};

// Starts `binary args... --listen 127.0.0.1:0 --port-file <dir>/<name>.port` (no --listen of
// its own when args has one), plus
// --insecure-loopback unless args has --tls-cert; then `channel` is made with `credentials`
// (which a TLS service needs). With wait_serving, returns once health is SERVING (or fails
// with the log's tail).
absl::StatusOr<std::unique_ptr<ServiceProcess>> StartService(
    const std::string& binary, const std::vector<std::string>& args,
    const std::filesystem::path& dir, const std::string& name, bool wait_serving = true,
    std::chrono::seconds timeout = std::chrono::seconds(120),
    std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

// The server's overall health; UNKNOWN when it cannot be reached.
grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(const std::shared_ptr<grpc::Channel>& channel);

// Waits until HealthOf is `status`; false on timeout.
bool WaitForHealth(const std::shared_ptr<grpc::Channel>& channel,
                   grpc::health::v1::HealthCheckResponse::ServingStatus status, std::chrono::milliseconds timeout);

// Path of a binary from an environment variable the test's CMake sets (empty if unset).
std::string BinaryFromEnv(const char* variable);

}  // namespace t2::testing
