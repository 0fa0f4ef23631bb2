// The /metrics HTTP endpoint of a service: the registry's families in Prometheus's text format
// (prometheus-cpp's serializer), served by cpp-httplib. Not prometheus-cpp's pull Exposer: its
// civetweb starts threads with a fixed 100 KiB stack, which pthread_create refuses (EINVAL) in a
// process whose static TLS is larger — the worker, which links LibTorch and CUDA.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/registry.h"

namespace httplib {
class Server;
}

namespace t2::metrics {

class Endpoint {
 public:
  // Serves `registry` at http://ADDRESS/metrics from a thread of its own. ADDRESS is HOST:PORT
  // (IPv6 as [HOST]:PORT); port 0 picks a free port, address() says which. INVALID_ARGUMENT
  // for a malformed address, UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<Endpoint>> Start(const std::string& address,
                                                         std::shared_ptr<prometheus::Registry> registry);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // Also serves what `collectable` holds at each scrape (values read from their source then,
  // such as an engine's queue length), for as long as it lives.
  void Add(std::weak_ptr<prometheus::Collectable> collectable);

  const std::string& address() const { return address_; }  // HOST:bound port
  std::string url() const { return "http://" + address_ + "/metrics"; }

 private:
  Endpoint() = default;
  std::vector<prometheus::MetricFamily> Collect();
  std::shared_ptr<prometheus::Registry> registry_;
  absl::Mutex mu_;
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;  // runs server_'s accept loop
  std::string address_;
};

}  // namespace t2::metrics
