// The dispatcher's view of its workers: one gRPC channel each, their health (probed in the
// background with grpc.health.v1 and corrected at once when a call finds a worker gone),
// their capacity (Worker.Info) and how many requests each has outstanding from us. Workers
// given by address stay; workers named by DNS (dns_target.h) are resolved again every
// resolve_interval: a new address joins the pool, one no longer listed leaves it (its
// outstanding calls finish), a failed lookup changes nothing.
//
// Choice: the serving worker with the fewest outstanding requests; equal counts rotate, so an
// idle pool spreads requests. Workers not known to be serving are still used as a last
// resort, so that a request never fails only because a probe ran before a worker came up.
//
// Thread-safe. Owns a probe thread from construction until destruction.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dns_target.h"
#include "t2/v1/worker.grpc.pb.h"

namespace t2::dispatcher {

class WorkerPool {
 public:
  struct Options {
    std::vector<std::string> addresses;  // host:port
    std::vector<DnsTarget> dns_targets;  // with `addresses`: at least one of the two
    // How the dispatcher connects to its workers (rpc/security.h); null: loopback plaintext.
    std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr;
    std::chrono::milliseconds probe_interval{1000};
    std::chrono::milliseconds probe_timeout{1000};
    std::chrono::milliseconds resolve_interval{5000};
  };

  enum class Health { kUnknown, kServing, kNotServing };

  struct WorkerState {
    std::string address;
    Health health = Health::kUnknown;
    int outstanding = 0;
    bool info_known = false;
    t2::v1::WorkerInfo info;
  };

  // An outstanding request on one worker: counted from Acquire until the lease is destroyed.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    size_t index() const { return index_; }
    const std::string& address() const;
    t2::v1::Worker::Stub* stub() const;

   private:
    friend class WorkerPool;
    Lease(WorkerPool* pool, size_t index) : pool_(pool), index_(index) {}
    WorkerPool* pool_ = nullptr;
    size_t index_ = 0;
  };

  explicit WorkerPool(Options options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const;  // workers in the pool now

  // The best worker not in `exclude` (indices), or nullopt when every worker is excluded.
  std::optional<Lease> Acquire(const std::vector<size_t>& exclude = {});
  // A call found the worker unreachable: skip it until a probe sees it serving again. The
  // call moves to another worker (counted: unavailable_reports).
  void ReportUnavailable(size_t index);
  int64_t unavailable_reports() const { return unavailable_reports_; }

  // Layers of the served model (WorkerInfo.num_layers of any worker that reported it), 0 if
  // none has yet.
  int NumLayers() const;
  // How many calls a batch (CEM evaluation) should keep in flight across the pool: for each
  // worker not known to be down, its batch size plus half its queue (the other half stays
  // free for interactive requests), or 16 while its Info is unknown.
  int BatchWindow() const;

  std::vector<WorkerState> Snapshot() const;
  // Runs one probe round now and waits for it (tests, and start-up logging); resolves the DNS
  // targets first when `resolve` or when resolve_interval has passed.
  void ProbeNow(bool resolve = false);

 private:
  struct Worker {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<t2::v1::Worker::Stub> stub;
    bool active = true;                // guarded by mu_; false: dropped from DNS (kept for leases)
    Health health = Health::kUnknown;  // guarded by mu_
    int outstanding = 0;               // guarded by mu_
    bool info_known = false;           // guarded by mu_
    t2::v1::WorkerInfo info;           // guarded by mu_
  };

  void Release(size_t index);
  void ProbeLoop();
  void ProbeRound(bool resolve);
  // One worker's probe calls of a round (worker_pool.cc). A round's steps, each on the workers
  // marked active, waiting for its calls: health checks, then each worker's new health (and
  // Info for one that started serving), then the capacities Info returned.
  struct Probe;
  void CheckHealth(std::vector<Probe>& probes, const std::vector<bool>& active);
  void ApplyHealthAndAskInfo(std::vector<Probe>& probes, const std::vector<bool>& active);
  void RecordInfo(std::vector<Probe>& probes);
  // Resolves the DNS targets and makes the pool's active workers the static addresses plus
  // what they resolved to. Probe thread (probe_mu_ held).
  void Resolve();
  // `tls_name`: the name the worker's certificate must carry when it is not the address's
  // host (a worker found through DNS is dialled by IP; its certificate names the DNS name).
  std::unique_ptr<Worker> NewWorker(const std::string& address,
                                    const std::string& tls_name = "") const;
  Worker& At(size_t index) const;  // mu_ held or the probe thread

  Options options_;
  // Appended to (under mu_ and probe_mu_) when DNS finds a new address, never shrunk: indices
  // and Worker objects stay valid for leases.
  std::vector<std::unique_ptr<Worker>> workers_;
  std::map<std::string, std::vector<std::string>> resolved_;  // DNS target -> addresses; probe_mu_
  std::chrono::steady_clock::time_point next_resolve_{};      // probe_mu_
  mutable std::mutex mu_;
  size_t rotation_ = 0;  // guarded by mu_
  std::atomic<int64_t> unavailable_reports_{0};
  std::mutex probe_mu_;  // one probe round at a time
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::thread prober_;
};

}  // namespace t2::dispatcher
