#include "t2/rpc/server_metrics.h"

#include <google/protobuf/descriptor.h>

#include <atomic>
#include <chrono>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "t2/metrics/buckets.h"

namespace t2::rpc {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

struct Families {
  prometheus::Family<prometheus::Counter>* started;
  prometheus::Family<prometheus::Counter>* handled;
  prometheus::Family<prometheus::Histogram>* seconds;
};

const char* TypeLabel(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY: return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING: return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING: return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING: return "bidi_stream";
  }
  return "unknown";
}

// One per call: created when the call arrives, records its status when it is sent (or, for a
// call that ends without one, e.g. cancelled by the client, when the call is destroyed).
class CallMetrics : public grpc::experimental::Interceptor {
 public:
  CallMetrics(const Families& families, prometheus::Labels labels)
      : families_(families), labels_(std::move(labels)), start_(std::chrono::steady_clock::now()) {
    families_.started->Add(labels_).Increment();
  }
  ~CallMetrics() override {
    if (!recorded_.exchange(true)) Record(grpc::StatusCode::CANCELLED);
  }

  // A callback-API call's operations (its initial metadata, a write, its status) are
  // intercepted on whichever threads start and complete them, possibly at once: the status is
  // recorded once, by whichever sees it first.
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        !recorded_.exchange(true)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    prometheus::Labels with_code = labels_;
    with_code["grpc_code"] = GrpcCodeLabel(code);
    families_.handled->Add(with_code).Increment();
    // By code too (go-grpc-prometheus's histogram has none): a fast INVALID_ARGUMENT must not
    // hide how long the successful calls take.
    families_.seconds->Add(with_code, metrics::LatencyBuckets()).Observe(seconds);
  }

  const Families& families_;
  const prometheus::Labels labels_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> recorded_{false};
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  Factory(prometheus::Registry& registry, const std::vector<std::string>& services)
      : families_{&prometheus::BuildCounter()
                       .Name("grpc_server_started_total")
                       .Help("gRPC calls started on the server, by method")
                       .Register(registry),
                  &prometheus::BuildCounter()
                       .Name("grpc_server_handled_total")
                       .Help("gRPC calls completed on the server, by method and status code")
                       .Register(registry),
                  &prometheus::BuildHistogram()
                       .Name("grpc_server_handling_seconds")
                       .Help("Time from a call's arrival to its status, by method and code (streams: the stream's life)")
                       .Register(registry)} {
    std::vector<std::string> names = services;
    names.push_back("grpc.health.v1.Health");
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    for (const std::string& name : names) {
      const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(name);
      for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
        known_.insert(absl::StrCat("/", name, "/", service->method(i)->name()));
      }
    }
    // Served by gRPC itself: their descriptors need not be linked into this binary.
    for (const char* path : {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
                             "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}) {
      known_.insert(path);
    }
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    std::string service = "other", method = "other";
    const std::string path = info->method() != nullptr ? info->method() : "";
    if (known_.contains(path)) {
      const size_t slash = path.rfind('/');
      service = path.substr(1, slash - 1);
      method = path.substr(slash + 1);
    }
    return new CallMetrics(families_, {{"grpc_service", service}, {"grpc_method", method},
                                       {"grpc_type", TypeLabel(info->type())}});
  }

 private:
  const Families families_;
  absl::flat_hash_set<std::string> known_;
};

}  // namespace

std::string GrpcCodeLabel(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "Canceled";
    case grpc::StatusCode::UNKNOWN: return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT: return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND: return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS: return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED: return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FailedPrecondition";
    case grpc::StatusCode::ABORTED: return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE: return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED: return "Unimplemented";
    case grpc::StatusCode::INTERNAL: return "Internal";
    case grpc::StatusCode::UNAVAILABLE: return "Unavailable";
    case grpc::StatusCode::DATA_LOSS: return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED: return "Unauthenticated";
    default: return "Unknown";
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeServerMetricsInterceptor(
    prometheus::Registry& registry, const std::vector<std::string>& services) {
  return std::make_unique<Factory>(registry, services);
}

}  // namespace t2::rpc
