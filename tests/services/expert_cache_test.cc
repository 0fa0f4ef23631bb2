// The worker's ExpertCache against a real registry service (in-process, over loopback gRPC)
// and a real generator on the default model: a slow fetch of one expert never holds up
// requests for experts that are already loaded; requests that want the same expert share one
// fetch; a waiter whose deadline passes gives up alone; a waiter outlives a loader whose own
// deadline ended; and an adapter stays loaded while a lease on it lives. Also the worker's
// metrics over real Generate calls through gRPC (WorkerService on this cache).
//
// The registry is the real RegistryService over a real ExpertStore; the only thing added is a
// gate in front of GetExpert that holds chosen experts' downloads, to make "slow" controllable.
#include "expert_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "registry_service.h"
#include "t2/common/sha256.h"
#include "t2/engine/generator.h"
#include "t2/model/llama.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/store/expert_store.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"
#include "testing/eventually.h"
#include "testing/metric_sample.h"
#include "testing/reference_data.h"
#include "testing/scratch_dir.h"
#include "worker_metrics.h"
#include "worker_service.h"

namespace t2::worker {
namespace {

using t2::testing::MetricSample;

using ::testing::UnorderedElementsAre;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Forwards to the real registry; GetExpert for a held expert waits until it is let go. The
// registry's own GetExpert is a callback reactor, which cannot be started late, so this one is
// a synchronous handler that relays the real registry's stream from its own server once the
// gate opens. (A test server with a few held calls can spare a thread each.)
class GatedRegistry final : public v1::Registry::WithCallbackMethod_Watch<v1::Registry::Service> {
 public:
  GatedRegistry(registry::RegistryService* real, const std::string& real_address)
      : real_(real),
        real_stub_(v1::Registry::NewStub(
            grpc::CreateChannel(real_address, t2::rpc::LoopbackChannelCredentials()))) {}

  void Hold(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.insert(name);
  }
  void Release(const std::string& name) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_.erase(name);
    }
    cv_.notify_all();
  }
  int GetCalls(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return get_calls_[name];
  }
  // Waits until GetExpert for `name` has been called `n` times.
  bool WaitForGetCalls(const std::string& name, int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(30), [&] { return get_calls_[name] >= n; });
  }

  grpc::Status GetExpert(grpc::ServerContext* context, const v1::GetExpertRequest* request,
                         grpc::ServerWriter<v1::GetExpertResponse>* writer) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++get_calls_[request->name()];
      cv_.notify_all();
      // The synchronous API has no cancellation callback: checked every 20 ms while held.
      while (held_.count(request->name()) != 0 && !context->IsCancelled()) cv_.wait_for(lock, milliseconds(20));
    }
    if (context->IsCancelled())
      return grpc::Status(grpc::StatusCode::CANCELLED, "held and cancelled");
    grpc::ClientContext upstream;
    upstream.set_deadline(context->deadline());
    auto reader = real_stub_->GetExpert(&upstream, *request);
    v1::GetExpertResponse message;
    while (reader->Read(&message)) {
      if (!writer->Write(message)) {
        upstream.TryCancel();
        break;
      }
    }
    return reader->Finish();
  }
  grpc::Status ListExperts(grpc::ServerContext* context, const v1::ListExpertsRequest* request,
                           v1::ListExpertsResponse* response) override {
    return real_->ListExperts(context, request, response);
  }
  grpc::ServerWriteReactor<v1::RegistryEvent>* Watch(grpc::CallbackServerContext* context,
                                                     const v1::WatchRequest* request) override {
    return real_->Watch(context, request);
  }

 private:
  registry::RegistryService* real_;
  std::unique_ptr<v1::Registry::Stub> real_stub_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> held_;
  std::map<std::string, int> get_calls_;
};

class ExpertCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new t2::testing::ScratchDir();
    const auto model = t2::testing::DefaultModelPath();
    // The model's own SVD cache, as the worker uses by default, shared with the other tests
    // that adapt the default model (computing it takes half a minute).
    const auto svd_cache = model.parent_path();
    auto generator = engine::Generator::Create(
        {.model = model,
         .device = t2::model::DeviceSpec::Cpu(),
         .svf = engine::SvfOptions{.targets = svf::TargetSet::kMlp, .cache_dir = svd_cache}});
    ASSERT_TRUE(generator.ok()) << generator.status();
    generator_ = generator->release();

    // One expert per name a test uses (names stay distinct across tests because the
    // generator outlives each cache), each with its own bytes so that no two share a blob.
    auto base = model::LlamaModel::Load(model, {.device = t2::model::DeviceSpec::Cpu()});
    ASSERT_TRUE(base.ok()) << base.status();
    auto decomposition = svf::Decomposition::Build(
        **base, {.targets = svf::TargetSet::kMlp, .cache_dir = svd_cache});
    ASSERT_TRUE(decomposition.ok()) << decomposition.status();

    auto store = store::ExpertStore::Open({.root = dir_->path() / "registry"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = store->release();
    ASSERT_TRUE(store_->RegisterBaseModel({.fingerprint = generator_->base_fingerprint(),
                                           .name = "SmolLM2-135M-Instruct",
                                           .targets = "mlp",
                                           .target_ranks = generator_->target_ranks()})
                    .ok());
    sha256_ = new std::map<std::string, std::string>();
    float scale = 0.9f;
    for (const char* name : {"fast", "slow", "shared", "impatient", "relay", "kept", "other",
                             "checked", "contested", "nodir", "metered", "metered2", "reconnect"}) {
      const auto file = dir_->path() / (std::string(name) + ".safetensors");
      scale += 0.01f;
      ASSERT_TRUE(svf::WriteExpert(svf::ConstantExpert(*decomposition, scale, "SmolLM2-135M-Instruct"), file).ok());
      auto staged = store_->StageFile(file);
      ASSERT_TRUE(staged.ok()) << staged.status();
      const auto bytes = static_cast<int64_t>(std::filesystem::file_size(file));
      auto info = store_->Publish({.name = name,
                                   .version = 1,
                                   .size_bytes = bytes,
                                   .sha256 = Sha256File(file),
                                   .publisher = ""},
                                  std::move(*staged));
      ASSERT_TRUE(info.ok()) << info.status();
      (*sha256_)[name] = info->sha256;
    }
    real_ = new registry::RegistryService(store_);
    auto real_server = rpc::StartServer({}, {real_});
    ASSERT_TRUE(real_server.ok()) << real_server.status();
    real_server_ = new rpc::RunningServer(std::move(*real_server));
    gate_ = new GatedRegistry(real_, real_server_->address);
    auto server = rpc::StartServer({}, {gate_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = new rpc::RunningServer(std::move(*server));
  }

  static void TearDownTestSuite() {
    for (rpc::RunningServer* server : {server_, real_server_}) {
      if (server != nullptr)
        server->server->Shutdown(std::chrono::system_clock::now() + seconds(1));
      delete server;
    }
    delete gate_;
    delete real_;
    delete store_;
    delete generator_;
    delete sha256_;
    delete dir_;
  }

  std::unique_ptr<ExpertCache> NewCache(int max_loaded, std::filesystem::path blob_dir = {}) {
    return std::make_unique<ExpertCache>(
        *generator_, grpc::CreateChannel(server_->address, t2::rpc::LoopbackChannelCredentials()),
        blob_dir.empty() ? scratch_.path() / "blobs" : blob_dir, max_loaded);
  }

  // name@1 with its own sha256, or with the sha256 of `bytes_of`'s blob.
  static v1::AdapterSpec Spec(const std::string& name, const std::string& bytes_of = "") {
    v1::AdapterSpec spec;
    auto* ref = spec.add_experts();
    ref->set_name(name);
    ref->set_version(1);
    ref->set_sha256(sha256_->at(bytes_of.empty() ? name : bytes_of));
    return spec;
  }

  static absl::Time In(absl::Duration d) { return absl::Now() + d; }

  static bool Loaded(const std::string& adapter) {
    const auto names = generator_->AdapterNames();
    return std::find(names.begin(), names.end(), adapter) != names.end();
  }

  static std::string Sha256File(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return Sha256Hex(bytes);
  }

  t2::testing::ScratchDir scratch_;
  static t2::testing::ScratchDir* dir_;
  static engine::Generator* generator_;
  static store::ExpertStore* store_;
  static registry::RegistryService* real_;
  static GatedRegistry* gate_;
  static rpc::RunningServer* server_;                  // the gate's: what the caches use
  static rpc::RunningServer* real_server_;             // the registry's own, which the gate relays
  static std::map<std::string, std::string>* sha256_;  // by expert name
};
t2::testing::ScratchDir* ExpertCacheTest::dir_ = nullptr;
engine::Generator* ExpertCacheTest::generator_ = nullptr;
store::ExpertStore* ExpertCacheTest::store_ = nullptr;
registry::RegistryService* ExpertCacheTest::real_ = nullptr;
GatedRegistry* ExpertCacheTest::gate_ = nullptr;
rpc::RunningServer* ExpertCacheTest::server_ = nullptr;
rpc::RunningServer* ExpertCacheTest::real_server_ = nullptr;
std::map<std::string, std::string>* ExpertCacheTest::sha256_ = nullptr;

TEST_F(ExpertCacheTest, ALoadedExpertIsServedWhileAnotherIsBeingFetched) {
  auto cache = NewCache(8);
  ASSERT_TRUE(cache->Resolve(Spec("fast"), In(absl::Seconds(60))).ok());

  gate_->Hold("slow");
  auto slow = std::async(std::launch::async, [&] { return cache->Resolve(Spec("slow"), In(absl::Seconds(60))); });
  ASSERT_TRUE(gate_->WaitForGetCalls("slow", 1));
  auto fast = std::async(std::launch::async, [&] { return cache->Resolve(Spec("fast"), In(absl::Seconds(60))); });
  const bool answered = fast.wait_for(seconds(10)) == std::future_status::ready;
  gate_->Release("slow");  // before any assertion can return, so that nothing is left waiting
  EXPECT_TRUE(answered) << "a request for a loaded expert waited for another expert's download";
  auto fast_lease = fast.get();
  ASSERT_TRUE(fast_lease.ok()) << fast_lease.status();
  EXPECT_EQ(fast_lease->adapter(), "fast@1");
  auto slow_lease = slow.get();
  ASSERT_TRUE(slow_lease.ok()) << slow_lease.status();
  EXPECT_EQ(slow_lease->adapter(), "slow@1");
  EXPECT_EQ(cache->fetched(), 2);
}

TEST_F(ExpertCacheTest, RequestsForTheSameExpertShareOneFetch) {
  auto cache = NewCache(8);
  gate_->Hold("shared");
  std::vector<std::future<absl::StatusOr<ExpertCache::Lease>>> calls;
  for (int i = 0; i < 3; ++i) {
    calls.push_back(
        std::async(std::launch::async, [&] { return cache->Resolve(Spec("shared"), In(absl::Seconds(60))); }));
  }
  ASSERT_TRUE(gate_->WaitForGetCalls("shared", 1));
  // The other two wait for that fetch (not for a lock, and not fetching themselves).
  const bool joined =
      t2::testing::Eventually([&] { return cache->joined_loads() == 2; }, std::chrono::seconds(30));
  gate_->Release("shared");
  EXPECT_TRUE(joined) << cache->joined_loads() << " requests joined the load";
  for (auto& call : calls) {
    auto lease = call.get();
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(lease->adapter(), "shared@1");
  }
  EXPECT_EQ(gate_->GetCalls("shared"), 1);
  EXPECT_EQ(cache->fetched(), 1);
}

TEST_F(ExpertCacheTest, AWaiterGivesUpAtItsOwnDeadlineAndTheLoadGoesOn) {
  auto cache = NewCache(8);
  gate_->Hold("impatient");
  auto loader =
      std::async(std::launch::async, [&] { return cache->Resolve(Spec("impatient"), In(absl::Seconds(60))); });
  ASSERT_TRUE(gate_->WaitForGetCalls("impatient", 1));
  const absl::Time start = absl::Now();
  auto waiter = cache->Resolve(Spec("impatient"), In(absl::Milliseconds(300)));
  const absl::Duration waited = absl::Now() - start;
  gate_->Release("impatient");
  EXPECT_TRUE(absl::IsDeadlineExceeded(waiter.status())) << waiter.status();
  EXPECT_LT(waited, absl::Seconds(5));
  auto loaded = loader.get();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(gate_->GetCalls("impatient"), 1);
}

TEST_F(ExpertCacheTest, AWaiterLoadsItselfWhenTheLoadersDeadlineEnds) {
  auto cache = NewCache(8);
  gate_->Hold("relay");
  auto loader =
      std::async(std::launch::async, [&] { return cache->Resolve(Spec("relay"), In(absl::Seconds(3))); });
  ASSERT_TRUE(gate_->WaitForGetCalls("relay", 1));
  auto waiter = std::async(std::launch::async, [&] { return cache->Resolve(Spec("relay"), In(absl::Seconds(60))); });
  auto first = loader.get();
  EXPECT_TRUE(absl::IsDeadlineExceeded(first.status())) << first.status();
  ASSERT_TRUE(gate_->WaitForGetCalls("relay", 2)) << "the waiter did not fetch again after the loader gave up";
  gate_->Release("relay");
  auto second = waiter.get();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->adapter(), "relay@1");
}

TEST_F(ExpertCacheTest, ALeasedAdapterIsNotEvicted) {
  auto cache = NewCache(/*max_loaded=*/1);
  auto kept = cache->Resolve(Spec("kept"), In(absl::Seconds(60)));
  ASSERT_TRUE(kept.ok()) << kept.status();
  auto other = cache->Resolve(Spec("other"), In(absl::Seconds(60)));
  ASSERT_TRUE(other.ok()) << other.status();
  // Over the limit, but both are leased (a request between Resolve and Submit).
  EXPECT_TRUE(Loaded("kept@1"));
  EXPECT_TRUE(Loaded("other@1"));
  EXPECT_THAT(cache->loaded(), UnorderedElementsAre("kept@1", "other@1"));

  *kept = ExpertCache::Lease();  // the request using kept@1 is done
  auto again = cache->Resolve(Spec("other"), In(absl::Seconds(60)));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(Loaded("kept@1"));
  EXPECT_THAT(cache->loaded(), UnorderedElementsAre("other@1"));
}

TEST_F(ExpertCacheTest, OtherBytesUnderALoadedVersionAreNotFound) {
  auto cache = NewCache(8);
  ASSERT_TRUE(cache->Resolve(Spec("checked"), In(absl::Seconds(60))).ok());
  auto wrong = cache->Resolve(Spec("checked", /*bytes_of=*/"other"), In(absl::Seconds(60)));
  EXPECT_TRUE(absl::IsNotFound(wrong.status())) << wrong.status();
  EXPECT_THAT(std::string(wrong.status().message()), ::testing::HasSubstr(sha256_->at("other")));
  EXPECT_TRUE(cache->Resolve(Spec("checked"), In(absl::Seconds(60))).ok());
}

// A request naming the version with wrong bytes loads first; one with the right bytes waits
// for it, then loads the version itself rather than taking the other's NOT_FOUND.
TEST_F(ExpertCacheTest, AFailedLoadOfOtherBytesDoesNotFailTheRightRequest) {
  auto cache = NewCache(8);
  gate_->Hold("contested");
  auto wrong = std::async(std::launch::async, [&] {
    return cache->Resolve(Spec("contested", /*bytes_of=*/"other"), In(absl::Seconds(60)));
  });
  ASSERT_TRUE(gate_->WaitForGetCalls("contested", 1));
  auto right = std::async(std::launch::async, [&] { return cache->Resolve(Spec("contested"), In(absl::Seconds(60))); });
  // The right request waits for the wrong one's load before that load fails.
  const bool joined =
      t2::testing::Eventually([&] { return cache->joined_loads() == 1; }, std::chrono::seconds(30));
  gate_->Release("contested");
  ASSERT_TRUE(joined) << cache->joined_loads() << " requests joined the load";
  auto refused = wrong.get();
  EXPECT_TRUE(absl::IsNotFound(refused.status())) << refused.status();
  auto loaded = right.get();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->adapter(), "contested@1");
}

TEST_F(ExpertCacheTest, AnExpertFolderThatCannotBeMadeIsAnErrorEachTime) {
  const auto not_a_folder = scratch_.path() / "file";
  std::ofstream(not_a_folder) << "x";
  auto cache = NewCache(8, not_a_folder / "blobs");
  for (int i = 0; i < 2; ++i) {
    auto got = cache->Resolve(Spec("nodir"), In(absl::Seconds(10)));
    EXPECT_TRUE(absl::IsInternal(got.status())) << got.status();
  }
}

TEST_F(ExpertCacheTest, WorkerMetricsFollowCallsAndAdapters) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  auto cache = NewCache(/*max_loaded=*/1);
  cache->SetEvents(metrics.CacheEvents());
  WorkerService service;
  service.Attach(*generator_, *cache, "SmolLM2-135M-Instruct", &metrics);
  auto server = rpc::StartServer({}, {&service});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = v1::Worker::NewStub(
      grpc::CreateChannel(server->address, t2::rpc::LoopbackChannelCredentials()));
  auto generate = [&](const std::string& expert, int max_new_tokens, int64_t* tokens) {
    v1::WorkerGenerateRequest request;
    request.set_prompt("Count with me: 1, 2, 3,");
    request.set_max_new_tokens(max_new_tokens);
    if (!expert.empty()) *request.mutable_adapter() = Spec(expert);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(120));
    auto reader = stub->Generate(&context, request);
    v1::WorkerGenerateResponse message;
    while (reader->Read(&message)) {
      if (message.has_usage()) *tokens = message.usage().completion_tokens();
    }
    return reader->Finish();
  };

  int64_t generated = 0, ignored = 0;
  ASSERT_TRUE(generate("metered", 6, &generated).ok());
  ASSERT_GT(generated, 1);
  EXPECT_EQ(generate("", 0, &ignored).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(generate("metered2", 2, &ignored).ok());  // a cache of one: evicts metered@1

  auto state = WorkerMetrics::StateCollector(*generator_, *cache, {"SmolLM2-135M-Instruct",
                                                                   generator_->base_fingerprint(), "cpu", "float32"});
  std::vector<prometheus::MetricFamily> families = registry.Collect();
  for (auto& f : state->Collect()) families.push_back(std::move(f));
  const std::map<std::string, std::string> metered = {{"adapter", "metered@1"}};

  EXPECT_EQ(MetricSample(families, "t2_worker_requests_total", {{"adapter", "metered@1"}, {"code", "OK"}}), 1);
  EXPECT_EQ(MetricSample(families, "t2_worker_requests_total",
                   {{"adapter", "unresolved"}, {"code", "InvalidArgument"}, {"finish_reason", "none"}}),
            1);
  EXPECT_EQ(MetricSample(families, "t2_worker_time_to_first_token_seconds", metered), 1);
  EXPECT_EQ(MetricSample(families, "t2_worker_inter_token_latency_seconds", metered), generated - 1);
  EXPECT_EQ(MetricSample(families, "t2_worker_queue_duration_seconds", metered), 1);
  EXPECT_EQ(MetricSample(families, "t2_worker_request_duration_seconds", metered), 1);
  EXPECT_EQ(MetricSample(families, "t2_worker_generation_tokens_total", metered), generated);
  EXPECT_GT(MetricSample(families, "t2_worker_prompt_tokens_total", metered), 5);
  EXPECT_EQ(MetricSample(families, "t2_worker_adapter_load_seconds", metered), 1);
  EXPECT_EQ(MetricSample(families, "t2_worker_adapter_unloads_total", {{"adapter", "metered@1"}, {"reason", "evicted"}}), 1);
  EXPECT_TRUE(std::isnan(MetricSample(families, "t2_worker_adapter_unloads_total", {{"reason", "deprecated"}})));
  EXPECT_EQ(MetricSample(families, "t2_worker_adapter_load_failures_total"), 0);
  // Loaded: the second expert only; the first was evicted and its series went with it.
  EXPECT_EQ(MetricSample(families, "t2_worker_adapter_loaded", {{"adapter", "metered2@1"}}), 1);
  EXPECT_TRUE(std::isnan(MetricSample(families, "t2_worker_adapter_loaded", metered)));
  // The engine ran metered2@1's rows in one form or the other, each row of each forward.
  const double rows = MetricSample(families, "t2_worker_svf_rows_total", {{"adapter", "metered2@1"}, {"form", "factored"}}) +
                      MetricSample(families, "t2_worker_svf_rows_total", {{"adapter", "metered2@1"}, {"form", "merged"}});
  EXPECT_GE(rows, 2);  // its prefill and at least one decode step
  EXPECT_GT(MetricSample(families, "t2_worker_decode_steps_total"), 0);
  EXPECT_GE(MetricSample(families, "t2_worker_decode_step_sequences_total"), MetricSample(families, "t2_worker_decode_steps_total"));
  EXPECT_EQ(MetricSample(families, "t2_worker_running_requests"), 0);
  EXPECT_EQ(MetricSample(families, "t2_worker_waiting_requests"), 0);
  EXPECT_GT(MetricSample(families, "t2_worker_kv_cache_limit_bytes"), MetricSample(families, "t2_worker_kv_cache_bytes"));
  EXPECT_EQ(MetricSample(families, "t2_worker_model_info", {{"fingerprint", generator_->base_fingerprint()}}), 1);
  server->server->Shutdown(std::chrono::system_clock::now() + seconds(1));
}

// Last: it restarts the registry's server. The worker's Watch must come back by itself and
// replay what changed while the registry was away: a version deprecated meanwhile is unloaded.
// (A worker that had received no event before the outage used to resume "from now" and miss it.)
TEST_F(ExpertCacheTest, TheWatchReconnectsAfterARegistryRestartAndReplaysWhatItMissed) {
  auto cache = NewCache(4);
  cache->StartWatch();

  ASSERT_TRUE(t2::testing::Eventually([&] { return cache->watching(); }));
  {
    auto lease = cache->Resolve(Spec("reconnect"), In(absl::Seconds(60)));
    ASSERT_TRUE(lease.ok()) << lease.status();
  }
  ASSERT_TRUE(Loaded("reconnect@1"));

  const std::string address = server_->address;
  server_->server->Shutdown(std::chrono::system_clock::now());
  delete server_;
  server_ = nullptr;
  ASSERT_TRUE(t2::testing::Eventually([&] { return !cache->watching(); }));
  ASSERT_TRUE(store_->Deprecate("reconnect", 1).ok());  // while the registry is away

  auto restarted = new GatedRegistry(real_, real_server_->address);
  auto server = rpc::StartServer({.address = address}, {restarted});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = new rpc::RunningServer(std::move(*server));
  delete gate_;
  gate_ = restarted;
  ASSERT_TRUE(t2::testing::Eventually([&] { return cache->watching(); }))
      << "the Watch did not reconnect";
  EXPECT_TRUE(t2::testing::Eventually([&] { return !Loaded("reconnect@1"); }))
      << "the deprecation made during the outage was not replayed";
}

}  // namespace
}  // namespace t2::worker
