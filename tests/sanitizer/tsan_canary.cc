// The ThreadSanitizer build's canary: proves, under the options the TSan tests run with, that
// a real race is reported and fails the process, and that a gRPC call is not.
//
//   grpc-call  a handler on a gRPC server thread writes a plain string and the caller reads it
//              once the call returns. gRPC orders the two; TSan can only see that when gRPC
//              and Abseil are instrumented (scripts/tsan_deps.sh). With Debian's uninstrumented
//              libraries this case reports races in gRPC's inline call code and fails.
//   data-race  two threads write one int with no synchronization: must be reported.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace health = grpc::health::v1;

// Written by the handler's thread, read by the caller's after the call: ordered by gRPC.
std::string g_last_service;

class RecordingHealth final : public health::Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const health::HealthCheckRequest* request,
                     health::HealthCheckResponse* response) override {
    g_last_service = request->service();
    response->set_status(health::HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

int GrpcCall() {
  RecordingHealth service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "could not start a server on loopback\n");
    return 1;
  }
  auto stub = health::Health::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    health::HealthCheckRequest request;
    request.set_service("canary-" + std::to_string(i));
    health::HealthCheckResponse response;
    const grpc::Status status = stub->Check(&context, request, &response);
    if (!status.ok() || g_last_service != request.service()) {
      std::fprintf(stderr, "call %d: %s\n", i, status.error_message().c_str());
      return 1;
    }
  }
  server->Shutdown();
  return 0;
}

int DataRace() {
  // volatile keeps the compiler from merging the writes; it is no synchronization.
  static volatile int shared = 0;
  std::thread other([] { shared = shared + 1; });
  shared = shared + 1;
  other.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view what = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (what == "grpc-call")
    rc = GrpcCall();
  else if (what == "data-race")
    rc = DataRace();
  else
    std::fprintf(stderr, "usage: tsan_canary grpc-call|data-race\n");
  if (rc == 0) std::printf("canary %s finished\n", argv[1]);
  return rc;
}
