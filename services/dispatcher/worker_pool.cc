#include "worker_pool.h"

#include <grpcpp/generic/generic_stub.h>

#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/rpc/security.h"

namespace t2::dispatcher {
namespace {

// Counts outstanding callbacks of one probe round.
class WaitGroup {
 public:
  void Add() {
    std::lock_guard lock(mu_);
    ++count_;
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return count_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// grpc.health.v1.HealthCheckResponse is `ServingStatus status = 1`: SERVING is the varint 1.
// Debian's gRPC ships no generated health stubs, so the two bytes are read by hand.
bool IsServingResponse(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes.size() >= 2 && bytes[0] == 0x08 && bytes[1] == 0x01;
}

const char* HealthName(WorkerPool::Health h) {
  switch (h) {
    case WorkerPool::Health::kServing:
      return "serving";
    case WorkerPool::Health::kNotServing:
      return "not serving";
    case WorkerPool::Health::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace

WorkerPool::Lease::Lease(Lease&& other) noexcept : pool_(other.pool_), index_(other.index_) {
  other.pool_ = nullptr;
}

WorkerPool::Lease& WorkerPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ != nullptr) pool_->Release(index_);
    pool_ = other.pool_;
    index_ = other.index_;
    other.pool_ = nullptr;
  }
  return *this;
}

WorkerPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(index_);
}

const std::string& WorkerPool::Lease::address() const { return pool_->At(index_).address; }

t2::v1::Worker::Stub* WorkerPool::Lease::stub() const { return pool_->At(index_).stub.get(); }

WorkerPool::Worker& WorkerPool::At(size_t index) const {
  // The vector may grow on the probe thread; the Worker it points to never moves.
  std::lock_guard lock(mu_);
  return *workers_[index];
}

std::unique_ptr<WorkerPool::Worker> WorkerPool::NewWorker(const std::string& address,
                                                          const std::string& tls_name) const {
  auto worker = std::make_unique<Worker>();
  worker->address = address;
  grpc::ChannelArguments args;
  // Generation replies can be long texts: more than gRPC's default 4 MiB, within reason.
  args.SetMaxReceiveMessageSize(rpc::kMaxClientReceiveMessageBytes);
  if (!tls_name.empty()) args.SetSslTargetNameOverride(tls_name);
  worker->channel = grpc::CreateCustomChannel(
      address,
      options_.credentials != nullptr ? options_.credentials : rpc::LoopbackChannelCredentials(),
      args);
  worker->stub = t2::v1::Worker::NewStub(worker->channel);
  return worker;
}

WorkerPool::WorkerPool(Options options) : options_(std::move(options)) {
  for (const std::string& address : options_.addresses) workers_.push_back(NewWorker(address));
  prober_ = std::thread([this] { ProbeLoop(); });
}

size_t WorkerPool::size() const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(std::count_if(workers_.begin(), workers_.end(), [](const auto& w) { return w->active; }));
}

void WorkerPool::Resolve() {
  bool changed = false;
  for (const DnsTarget& target : options_.dns_targets) {
    auto addresses = ResolveDnsTarget(target, absl::FromChrono(options_.probe_timeout));
    if (!addresses.ok()) {
      // A name that resolves to nothing is an empty set; a DNS that does not answer keeps
      // the last known workers rather than dropping them all.
      if (!absl::IsNotFound(addresses.status())) {
        LogWarning(absl::StrCat("worker lookup: ", addresses.status().message(), "; keeping the last answer"));
        continue;
      }
      addresses = std::vector<std::string>();
    }
    changed |= resolved_[target.spec] != *addresses;
    resolved_[target.spec] = *std::move(addresses);
  }
  if (!changed) return;
  std::set<std::string> wanted(options_.addresses.begin(), options_.addresses.end());
  std::map<std::string, std::string> tls_names;  // address -> the DNS name that found it
  for (const DnsTarget& target : options_.dns_targets) {
    for (const std::string& address : resolved_[target.spec]) {
      wanted.insert(address);
      tls_names.emplace(address, target.name);
    }
  }
  std::lock_guard lock(mu_);
  for (auto& w : workers_) {
    const bool active = wanted.erase(w->address) != 0;
    if (active != w->active) {
      LogInfo(absl::StrCat("worker ", w->address, active ? " is back in DNS: added" : " left DNS: removed"));
      w->active = active;
      w->health = Health::kUnknown;
      w->info_known = false;
    }
  }
  for (const std::string& address : wanted) {  // new ones
    LogInfo(absl::StrCat("worker ", address, " found in DNS: added"));
    workers_.push_back(NewWorker(address, tls_names[address]));
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (prober_.joinable()) prober_.join();
}

std::optional<WorkerPool::Lease> WorkerPool::Acquire(const std::vector<size_t>& exclude) {
  std::lock_guard lock(mu_);
  const size_t n = workers_.size();
  std::optional<size_t> best;
  auto rank = [](Health h) { return h == Health::kServing ? 0 : h == Health::kUnknown ? 1 : 2; };
  for (size_t step = 0; step < n; ++step) {
    size_t i = (rotation_ + step) % n;
    if (!workers_[i]->active || std::find(exclude.begin(), exclude.end(), i) != exclude.end()) continue;
    const Worker& w = *workers_[i];
    if (!best.has_value()) {
      best = i;
      continue;
    }
    const Worker& b = *workers_[*best];
    if (rank(w.health) < rank(b.health) ||
        (rank(w.health) == rank(b.health) && w.outstanding < b.outstanding)) {
      best = i;
    }
  }
  if (!best.has_value()) return std::nullopt;
  ++rotation_;
  ++workers_[*best]->outstanding;
  return Lease(this, *best);
}

void WorkerPool::Release(size_t index) {
  std::lock_guard lock(mu_);
  --workers_[index]->outstanding;
}

void WorkerPool::ReportUnavailable(size_t index) {
  ++unavailable_reports_;
  std::lock_guard lock(mu_);
  Worker& w = *workers_[index];
  if (w.health != Health::kNotServing) {
    LogWarning(absl::StrCat("worker ", w.address, " is unavailable; routing around it"));
  }
  w.health = Health::kNotServing;
}

int WorkerPool::NumLayers() const {
  std::lock_guard lock(mu_);
  for (const auto& w : workers_) {
    if (w->active && w->info_known && w->info.num_layers() > 0) return w->info.num_layers();
  }
  return 0;
}

int WorkerPool::BatchWindow() const {
  std::lock_guard lock(mu_);
  int64_t window = 0;
  for (const auto& w : workers_) {
    if (!w->active || w->health == Health::kNotServing) continue;
    if (w->info_known) {
      window += std::max<int64_t>(1, int64_t{w->info.max_batch_size()} + w->info.max_queue() / 2);
    } else {
      window += 16;
    }
  }
  return static_cast<int>(std::clamp<int64_t>(window, 1, 1 << 16));
}

std::vector<WorkerPool::WorkerState> WorkerPool::Snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<WorkerState> out;
  for (const auto& w : workers_) {
    if (!w->active) continue;
    out.push_back({.address = w->address,
                   .health = w->health,
                   .outstanding = w->outstanding,
                   .info_known = w->info_known,
                   .info = w->info});
  }
  return out;
}

void WorkerPool::ProbeLoop() {
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    lock.unlock();
    ProbeRound(/*resolve=*/false);
    lock.lock();
    stop_cv_.wait_for(lock, options_.probe_interval, [&] { return stopping_; });
  }
}

void WorkerPool::ProbeNow(bool resolve) { ProbeRound(resolve); }

struct WorkerPool::Probe {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  grpc::Status status;
  grpc::ClientContext info_context;
  t2::v1::WorkerInfoRequest info_request;
  t2::v1::WorkerInfo info;
  grpc::Status info_status;
  bool want_info = false;
};

void WorkerPool::ProbeRound(bool resolve) {
  std::lock_guard round(probe_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!options_.dns_targets.empty() && (resolve || now >= next_resolve_)) {
    Resolve();
    next_resolve_ = now + options_.resolve_interval;
  }
  std::vector<bool> active;
  {
    std::lock_guard lock(mu_);
    for (const auto& w : workers_) active.push_back(w->active);
  }
  std::vector<Probe> probes(active.size());
  CheckHealth(probes, active);
  ApplyHealthAndAskInfo(probes, active);
  RecordInfo(probes);
}

void WorkerPool::CheckHealth(std::vector<Probe>& probes, const std::vector<bool>& active) {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  WaitGroup health_calls;
  for (size_t i = 0; i < probes.size(); ++i) {
    if (!active[i]) continue;
    Probe& p = probes[i];
    p.context.set_deadline(std::chrono::system_clock::now() + options_.probe_timeout);
    grpc::Slice empty("");  // HealthCheckRequest{service: ""}: the server as a whole
    p.request = grpc::ByteBuffer(&empty, 1);
    stubs.push_back(std::make_unique<grpc::GenericStub>(workers_[i]->channel));
    health_calls.Add();
    stubs.back()->UnaryCall(&p.context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                            &p.request, &p.response, [&p, &health_calls](grpc::Status s) {
                              p.status = std::move(s);
                              health_calls.Done();
                            });
  }
  health_calls.Wait();
}

void WorkerPool::ApplyHealthAndAskInfo(std::vector<Probe>& probes,
                                       const std::vector<bool>& active) {
  WaitGroup info_calls;
  for (size_t i = 0; i < probes.size(); ++i) {
    if (!active[i]) continue;
    Probe& p = probes[i];
    const bool serving = p.status.ok() && IsServingResponse(p.response);
    {
      std::lock_guard lock(mu_);
      Worker& w = *workers_[i];
      Health next = serving ? Health::kServing : Health::kNotServing;
      if (next != w.health) {
        LogInfo(absl::StrCat("worker ", w.address, ": ", HealthName(next),
                             serving         ? std::string()
                             : p.status.ok() ? std::string(" (its health check says not serving)")
                                             : absl::StrCat(" (", p.status.error_message(), ")")));
      }
      w.health = next;
      // Capacity is read once per start of serving; a restarted worker may differ.
      if (!serving) w.info_known = false;
      p.want_info = serving && !w.info_known;
    }
    if (!p.want_info) continue;
    p.info_context.set_deadline(std::chrono::system_clock::now() + options_.probe_timeout);
    info_calls.Add();
    workers_[i]->stub->async()->Info(&p.info_context, &p.info_request, &p.info,
                                     [&p, &info_calls](grpc::Status s) {
                                       p.info_status = std::move(s);
                                       info_calls.Done();
                                     });
  }
  info_calls.Wait();
}

void WorkerPool::RecordInfo(std::vector<Probe>& probes) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < probes.size(); ++i) {
    Probe& p = probes[i];
    if (!p.want_info || !p.info_status.ok()) continue;
    workers_[i]->info = p.info;
    workers_[i]->info_known = true;
  }
}

}  // namespace t2::dispatcher
