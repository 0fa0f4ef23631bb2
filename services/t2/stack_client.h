// Talking to a running t2 stack from the command line: one dispatcher request, streamed to a
// terminal, and a service's health.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "t2/v1/dispatcher.grpc.pb.h"

namespace t2::cli {

// Sends `request` through Dispatcher.GenerateStream, printing the first pass's choice to
// `info` and the answer to `out` as it streams.
absl::Status StreamThroughDispatcher(const std::shared_ptr<grpc::Channel>& channel,
                                     const t2::v1::GenerateRequest& request, std::ostream& out, std::ostream& info,
                                     double timeout_seconds);

// One grpc.health.v1 Check of `service` ("" = the whole server): the status the server
// reports, or the call's error (UNAVAILABLE while nothing listens, NOT_FOUND for a service
// the server does not know).
absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service, double timeout_seconds);

std::string AdaptationName(const t2::v1::Adaptation& adaptation);

}  // namespace t2::cli
