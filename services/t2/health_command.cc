// t2 health: asks a service's grpc.health.v1 endpoint whether it serves — for scripts and
// probes that have no gRPC client of their own (bench/stack_env.sh waits on it). With
// --wait-s it polls until the service is SERVING or the time is up, so a script can start a
// service and block on its model load. Exit codes: 0 SERVING, 1 anything else (the status
// or the gRPC error is printed), 2 bad usage.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "stack_client.h"
#include "t2/common/command_line.h"
#include "t2/rpc/security.h"

namespace t2::cli {
namespace {

using grpc::health::v1::HealthCheckResponse;

std::string Describe(const absl::StatusOr<HealthCheckResponse::ServingStatus>& status) {
  if (!status.ok()) return absl::StrCat(absl::StatusCodeToString(status.status().code()), ": ", status.status().message());
  return HealthCheckResponse::ServingStatus_Name(*status);
}

}  // namespace

int RunHealth(const std::vector<std::string>& args) {
  CommandLine command_line("t2 health",
                           "Asks a service's grpc.health.v1 endpoint whether it serves.");
  std::string server, service;
  double wait_seconds = 0, timeout = 2;
  command_line.add_option("--server", server, "any t2 service: registry, worker or dispatcher")
      ->type_name("HOST:PORT")
      ->required();
  command_line
      .add_option("--service", service,
                  "one service's status, e.g. t2.v1.Worker (default: the whole server)")
      ->type_name("NAME");
  command_line
      .add_option("--wait-s", wait_seconds,
                  "poll every 0.25 s until SERVING, up to this long (0: ask once)")
      ->type_name("SECONDS")
      ->transform(NumberIn(0, 86400));
  command_line.add_option("--timeout", timeout, "per check (above 0)")
      ->type_name("SECONDS")
      ->transform(NumberIn(0, 3600));
  rpc::Security security;
  rpc::AddSecurityFlags(command_line, security, /*server=*/false);
  command_line.footer(
      "Prints SERVING, NOT_SERVING, SERVICE_UNKNOWN or the gRPC error; exits 0 only when SERVING.");
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 health: " << message << "\n";
    return 2;
  };
  if (server.empty()) return usage_error("--server is required");
  if (timeout == 0) return usage_error("--timeout must be in (0, 3600] seconds");

  auto made = rpc::MakeClientChannel(security, server);
  if (!made.ok()) return usage_error(made.status().message());
  const std::shared_ptr<grpc::Channel>& channel = *made;
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  for (;;) {
    auto status = CheckHealth(channel, service, timeout);
    const bool serving = status.ok() && *status == HealthCheckResponse::SERVING;
    if (serving || std::chrono::steady_clock::now() >= give_up) {
      (serving ? std::cout : std::cerr) << server << ": " << Describe(status) << "\n";
      return serving ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace t2::cli
