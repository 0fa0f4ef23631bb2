// Every gRPC server's calls, counted and timed per method and status code by one interceptor.
// The families and labels are go-grpc-prometheus's, so that existing gRPC dashboards and
// alerts work unchanged:
//   grpc_server_started_total{grpc_service, grpc_method, grpc_type}
//   grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}
//   grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}  (histogram)
// grpc_type: unary, client_stream, server_stream, bidi_stream; grpc_code: OK, Canceled,
// InvalidArgument, ... (Go's names). A method the server does not serve (a client may send
// any path) counts under grpc_service="other", grpc_method="other".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>

#include "prometheus/registry.h"

namespace t2::rpc {

// `services`: the full names of the server's own services (t2.v1.Worker); grpc.health.v1.Health
// and server reflection are always known.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeServerMetricsInterceptor(
    prometheus::Registry& registry, const std::vector<std::string>& services);

// Go's name of a status code ("InvalidArgument"), as grpc_code shows it.
std::string GrpcCodeLabel(grpc::StatusCode code);

}  // namespace t2::rpc
