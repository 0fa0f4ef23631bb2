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
#include "t2/common/flags.h"
#include "t2/rpc/security.h"

namespace t2::cli {
namespace {

constexpr const char* kUsage = R"(usage: t2 health --server HOST:PORT [options]
  --server HOST:PORT   any t2 service: registry, worker or dispatcher (required)
  --service NAME       one service's status, e.g. t2.v1.Worker (default: the whole server)
  --wait-s SECONDS     poll every 0.25 s until SERVING, up to this long (default 0: ask once)
  --timeout SECONDS    per check (default 2)
prints SERVING, NOT_SERVING, SERVICE_UNKNOWN or the gRPC error; exit 0 only when SERVING
)";

using grpc::health::v1::HealthCheckResponse;

std::string Describe(const absl::StatusOr<HealthCheckResponse::ServingStatus>& status) {
  if (!status.ok()) return absl::StrCat(absl::StatusCodeToString(status.status().code()), ": ", status.status().message());
  return HealthCheckResponse::ServingStatus_Name(*status);
}

}  // namespace

int RunHealth(const std::vector<std::string>& args) {
  FlagSpec spec{.value_flags = {"server", "service", "wait-s", "timeout"}, .bool_flags = {"help"}};
  rpc::AddSecurityFlags(spec);
  auto flags = Flags::Parse(args, spec);
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 health: " << message << "\n" << kUsage;
    return 2;
  };
  if (!flags.ok()) return usage_error(flags.status().message());
  if (flags->Has("help")) {
    std::cout << kUsage << rpc::kClientSecurityUsage;
    return 0;
  }
  if (!flags->positional().empty()) return usage_error(absl::StrCat("unexpected argument '", flags->positional()[0], "'"));
  const std::string server = flags->Get("server", "");
  if (server.empty()) return usage_error("--server is required");
  auto wait = flags->GetDouble("wait-s", 0);
  if (!wait.ok()) return usage_error(wait.status().message());
  if (!(*wait >= 0 && *wait <= 86400)) return usage_error("--wait-s must be in [0, 86400] seconds");
  auto timeout = flags->GetDouble("timeout", 2);
  if (!timeout.ok()) return usage_error(timeout.status().message());
  if (!(*timeout > 0 && *timeout <= 3600)) return usage_error("--timeout must be in (0, 3600] seconds");

  auto made = rpc::MakeClientChannel(*flags, server);
  if (!made.ok()) return usage_error(made.status().message());
  const std::shared_ptr<grpc::Channel>& channel = *made;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(*wait);
  for (;;) {
    auto status = CheckHealth(channel, flags->Get("service", ""), *timeout);
    const bool serving = status.ok() && *status == HealthCheckResponse::SERVING;
    if (serving || std::chrono::steady_clock::now() >= give_up) {
      (serving ? std::cout : std::cerr) << server << ": " << Describe(status) << "\n";
      return serving ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

}  // namespace t2::cli
