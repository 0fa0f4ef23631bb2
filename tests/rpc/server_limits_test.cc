// rpc::StartServer's limits against a client that opens calls and holds them: the thread cap
// answers RESOURCE_EXHAUSTED past it (the process used to start a thread for every held call),
// and one connection gets at most max_concurrent_streams calls running at once.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::rpc {
namespace {

using namespace std::chrono_literals;

// Watch handlers that hold their thread until released (as a real Watch does while no event
// comes), counting how many run at once.
class HoldingRegistry final : public v1::Registry::Service {
 public:
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::RegistryEvent>*) override {
    std::unique_lock lock(mu_);
    ++running_;
    peak_ = std::max(peak_, running_);
    cv_.notify_all();
    cv_.wait_for(lock, 60s, [&] { return released_ || context->IsCancelled(); });
    --running_;
    return grpc::Status::OK;
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Waits (bounded) until `n` handlers run; returns how many do.
  int WaitForRunning(int n, std::chrono::milliseconds patience) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, patience, [&] { return running_ >= n; });
    return running_;
  }
  int peak() {
    std::lock_guard lock(mu_);
    return peak_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0, peak_ = 0;
  bool released_ = false;
};

struct HeldCall {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::RegistryEvent>> reader;
};

// Opens `n` Watch calls on `channel`; each waits for its first message (none comes).
std::vector<std::unique_ptr<HeldCall>> OpenWatches(const std::shared_ptr<grpc::Channel>& channel,
                                                   int n) {
  auto stub = v1::Registry::NewStub(channel);
  std::vector<std::unique_ptr<HeldCall>> calls;
  for (int i = 0; i < n; ++i) {
    auto call = std::make_unique<HeldCall>();
    call->context.set_deadline(std::chrono::system_clock::now() + 60s);
    call->reader = stub->Watch(&call->context, v1::WatchRequest());
    calls.push_back(std::move(call));
  }
  return calls;
}

TEST(ServerLimitsTest, CallsBeyondTheThreadCapAreResourceExhausted) {
  HoldingRegistry registry;
  auto server = StartServer({.address = "127.0.0.1:0", .max_threads = 8}, {&registry});
  ASSERT_TRUE(server.ok()) << server.status();
  // Each on its own connection, so that the per-connection stream cap plays no part.
  std::vector<std::unique_ptr<HeldCall>> calls;
  for (int i = 0; i < 24; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto more = OpenWatches(
        grpc::CreateCustomChannel(server->address, LoopbackChannelCredentials(), args), 1);
    calls.push_back(std::move(more.front()));
  }
  // The calls past the cap end at once; the others stay held.
  int exhausted = 0, ok = 0;
  const int running = registry.WaitForRunning(24, 3s);
  registry.Release();
  for (auto& call : calls) {
    v1::RegistryEvent event;
    while (call->reader->Read(&event)) {
    }
    const grpc::Status status = call->reader->Finish();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
    if (status.ok()) ++ok;
  }
  EXPECT_LT(running, 24) << "every held call got a thread";
  EXPECT_LE(registry.peak(), 8);
  EXPECT_GE(exhausted, 1);
  EXPECT_EQ(ok + exhausted, 24) << "a call ran or was refused, nothing else";
  server->server->Shutdown(std::chrono::system_clock::now());
}

TEST(ServerLimitsTest, OneConnectionRunsAtMostMaxConcurrentStreamsCalls) {
  HoldingRegistry registry;
  auto server = StartServer({.address = "127.0.0.1:0", .max_concurrent_streams = 3}, {&registry});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(server->address, LoopbackChannelCredentials());
  // Each call from its own thread: a sync client blocks starting a stream the connection has
  // no room for yet.
  std::vector<std::future<grpc::Status>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(std::async(std::launch::async, [channel] {
      auto opened = OpenWatches(channel, 1);
      v1::RegistryEvent event;
      while (opened.front()->reader->Read(&event)) {
      }
      return opened.front()->reader->Finish();
    }));
  }
  EXPECT_EQ(registry.WaitForRunning(3, 30s), 3);
  EXPECT_EQ(registry.WaitForRunning(4, 1s), 3) << "a fourth call ran on the same connection";
  registry.Release();
  for (auto& call : calls) {
    ASSERT_EQ(call.wait_for(60s), std::future_status::ready);
    EXPECT_TRUE(call.get().ok());  // the waiting ones ran once others ended
  }
  EXPECT_EQ(registry.peak(), 3);
  server->server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace t2::rpc
