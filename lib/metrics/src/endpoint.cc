#include "t2/metrics/endpoint.h"

#include <sys/socket.h>

#include <chrono>

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace t2::metrics {
namespace {

// A scrape that stalls is dropped after this long: it must not hold a server thread.
constexpr int kIoTimeoutSeconds = 10;
// How long Start waits for the accept loop to run (it only has to enter a function).
constexpr auto kStartTimeout = std::chrono::seconds(10);

}  // namespace

absl::StatusOr<std::unique_ptr<Endpoint>> Endpoint::Start(const std::string& address,
                                                          std::shared_ptr<prometheus::Registry> registry) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", address, "' is not HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  std::unique_ptr<Endpoint> endpoint(new Endpoint());
  endpoint->registry_ = std::move(registry);
  endpoint->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *endpoint->server_;
  server.set_read_timeout(kIoTimeoutSeconds, 0);
  server.set_write_timeout(kIoTimeoutSeconds, 0);
  server.set_keep_alive_max_count(10);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second service
  // configured with the same port would share it silently instead of failing.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  Endpoint* self = endpoint.get();
  server.Get("/metrics", [self](const httplib::Request&, httplib::Response& response) {
    response.set_content(prometheus::TextSerializer().Serialize(self->Collect()),
                         "text/plain; version=0.0.4; charset=utf-8");
  });
  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
  endpoint->thread_ = std::thread([&server] { server.listen_after_bind(); });
  // stop() before the loop runs would be lost and the destructor's join would wait forever.
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!server.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("metrics server on ", address, " did not start"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  endpoint->address_ = absl::StrCat(address.substr(0, colon), ":", bound);
  return endpoint;
}

void Endpoint::Add(std::weak_ptr<prometheus::Collectable> collectable) {
  absl::MutexLock lock(&mu_);
  collectables_.push_back(std::move(collectable));
}

std::vector<prometheus::MetricFamily> Endpoint::Collect() {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  absl::MutexLock lock(&mu_);
  for (auto it = collectables_.begin(); it != collectables_.end();) {
    if (auto live = it->lock()) {
      for (auto& family : live->Collect()) families.push_back(std::move(family));
      ++it;
    } else {
      it = collectables_.erase(it);
    }
  }
  return families;
}

Endpoint::~Endpoint() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace t2::metrics
