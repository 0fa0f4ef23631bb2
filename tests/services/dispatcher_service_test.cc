// The dispatcher's handlers in-process, against fake Worker and Registry services on
// loopback: validation, resolution and its Watch-driven cache, the first-pass strategies,
// worker choice and the retry rule, deadline and cancellation propagation, and CEM
// adaptation end to end (with a worker whose answers depend on the mixture it is given).
// No model and no other binary is needed; the real stack is covered by tests/services.
#include "dispatcher_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dns_target.h"
#include "expert_resolver.h"
#include "t2/rpc/metadata_keys.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "t2/rpc/status.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "t2/v1/registry.grpc.pb.h"
#include "t2/v1/worker.grpc.pb.h"
#include "testing/eventually.h"
#include "testing/held_worker.h"
#include "testing/metric_sample.h"
#include "worker_pool.h"

namespace t2::dispatcher {
namespace {

using t2::testing::MetricSample;

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace v1 = ::t2::v1;

v1::ExpertRef Ref(const std::string& name, int64_t version) {
  v1::ExpertRef r;
  r.set_name(name);
  r.set_version(version);
  r.set_sha256(absl::StrCat("sha-", name, "-", version));
  return r;
}

std::string LabelOf(const v1::AdapterSpec& spec) {
  if (spec.experts_size() == 0) return "base";
  if (spec.experts_size() == 1 && spec.alpha_size() == 0) {
    return absl::StrCat(spec.experts(0).name(), "@", spec.experts(0).version());
  }
  return "mixture";
}

std::string LastContent(const v1::WorkerGenerateRequest& r) {
  if (!r.has_chat() || r.chat().messages_size() == 0) return r.prompt();
  return r.chat().messages(r.chat().messages_size() - 1).content();
}

// ---------------------------------------------------------------- fake registry

class FakeRegistry final : public v1::Registry::Service {
 public:
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, v1::ExpertRef> aliases;
  std::vector<v1::ExpertInfo> experts;
  std::map<std::string, v1::Mixture> mixtures;
  std::vector<v1::RegistryEvent> events;
  int lookups = 0;  // GetAlias and ResolveExpert calls
  int watchers = 0;
  bool hold_watch = false;  // Watch waits before saying the watch is established

  void AddExpert(const std::string& name, int64_t version, bool deprecated = false) {
    std::lock_guard lock(mu);
    v1::ExpertInfo info;
    info.set_name(name);
    info.set_version(version);
    info.set_sha256(absl::StrCat("sha-", name, "-", version));
    info.set_deprecated(deprecated);
    experts.push_back(info);
  }
  void AddAlias(const std::string& alias, const std::string& name, int64_t version) {
    std::lock_guard lock(mu);
    aliases[alias] = Ref(name, version);
  }
  // Changes an alias and tells watchers, as the real registry does.
  void MoveAlias(const std::string& alias, const std::string& name, int64_t version) {
    std::lock_guard lock(mu);
    aliases[alias] = Ref(name, version);
    v1::RegistryEvent e;
    e.set_sequence(static_cast<int64_t>(events.size()) + 1);
    e.set_kind(v1::RegistryEvent::KIND_ALIAS_SET);
    e.set_name(alias);
    e.set_version(version);
    e.set_target(name);
    events.push_back(e);
    cv.notify_all();
  }
  int LookupCalls() {
    std::lock_guard lock(mu);
    return lookups;
  }
  bool WaitForWatchers(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 5s, [&] { return watchers >= n; });
  }

  grpc::Status GetAlias(grpc::ServerContext*, const v1::GetAliasRequest* request,
                        v1::Alias* response) override {
    std::lock_guard lock(mu);
    ++lookups;
    auto it = aliases.find(request->alias());
    if (it == aliases.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such alias");
    response->set_alias(it->first);
    *response->mutable_target() = it->second;
    return grpc::Status::OK;
  }
  grpc::Status ListAliases(grpc::ServerContext*, const v1::ListAliasesRequest*,
                           v1::ListAliasesResponse* response) override {
    std::lock_guard lock(mu);
    for (const auto& [name, ref] : aliases) {
      v1::Alias* a = response->add_aliases();
      a->set_alias(name);
      *a->mutable_target() = ref;
    }
    return grpc::Status::OK;
  }
  // The registry's rule (ExpertStore::ResolveExpert) over this fake's tables: version 0 is an
  // alias's target, else the newest version not deprecated; a pinned version may be deprecated.
  grpc::Status ResolveExpert(grpc::ServerContext*, const v1::ResolveExpertRequest* request,
                             v1::ExpertInfo* response) override {
    std::lock_guard lock(mu);
    ++lookups;
    if (auto it = aliases.find(request->name()); it != aliases.end() && request->version() == 0) {
      response->set_name(it->second.name());
      response->set_version(it->second.version());
      response->set_sha256(it->second.sha256());
      return grpc::Status::OK;
    }
    const v1::ExpertInfo* best = nullptr;
    for (const v1::ExpertInfo& e : experts) {
      if (e.name() != request->name()) continue;
      if (request->version() != 0
              ? e.version() == request->version()
              : !e.deprecated() && (best == nullptr || e.version() > best->version())) {
        best = &e;
      }
    }
    if (best == nullptr)
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "resolve.name: no such expert");
    *response = *best;
    return grpc::Status::OK;
  }
  grpc::Status GetMixture(grpc::ServerContext*, const v1::GetMixtureRequest* request,
                          v1::Mixture* response) override {
    std::lock_guard lock(mu);
    auto it = mixtures.find(request->name());
    if (it == mixtures.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such mixture");
    *response = it->second;
    return grpc::Status::OK;
  }
  grpc::Status PutMixture(grpc::ServerContext*, const v1::PutMixtureRequest* request,
                          v1::Mixture* response) override {
    std::lock_guard lock(mu);
    mixtures[request->mixture().name()] = request->mixture();
    *response = request->mixture();
    return grpc::Status::OK;
  }
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::RegistryEvent>* writer) override {
    std::unique_lock lock(mu);
    ++watchers;
    cv.notify_all();
    // As the real registry: subscribed, then the established mark (unless a test holds it).
    cv.wait_for(lock, 60s, [&] { return !hold_watch || context->IsCancelled(); });
    context->AddInitialMetadata(rpc::kWatchEstablishedKey, std::to_string(events.size()));
    writer->SendInitialMetadata();
    size_t next = events.size();
    if (request->from_sequence() > 0)
      next = std::min<size_t>(events.size(), request->from_sequence());
    while (!context->IsCancelled()) {
      cv.wait_for(lock, 20ms);
      while (next < events.size()) {
        v1::RegistryEvent e = events[next++];
        lock.unlock();
        writer->Write(e);
        lock.lock();
      }
    }
    --watchers;
    return grpc::Status::OK;
  }
};

// ---------------------------------------------------------------- fake worker

class FakeWorker final : public v1::Worker::Service {
 public:
  using GenerateFn =
      std::function<grpc::Status(grpc::ServerContext*, const v1::WorkerGenerateRequest&,
                                 grpc::ServerWriter<v1::WorkerGenerateResponse>*)>;
  using ScoreFn = std::function<grpc::Status(const v1::ScoreRequest&, v1::ScoreResponse*)>;

  GenerateFn generate;                             // default: DefaultGenerate
  ScoreFn score;                                   // default: the first completion scores best
  std::string classify_answer = "\\boxed{other}";  // GENERATE-mode classification reply

  std::mutex mu;
  std::vector<v1::WorkerGenerateRequest> generate_requests;
  std::vector<v1::ScoreRequest> score_requests;
  std::vector<std::chrono::system_clock::time_point> deadlines;
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<bool> saw_cancel{false};

  int GenerateCalls() {
    std::lock_guard lock(mu);
    return static_cast<int>(generate_requests.size());
  }

  static grpc::Status Reply(grpc::ServerWriter<v1::WorkerGenerateResponse>* writer,
                            const std::vector<std::string>& pieces) {
    v1::WorkerGenerateResponse queued;
    queued.set_queue_ms(0.5);  // a first message without text, as a worker may send
    writer->Write(queued);
    for (const std::string& p : pieces) {
      v1::WorkerGenerateResponse m;
      m.set_text(p);
      m.add_token_ids(1);
      writer->Write(m);
    }
    v1::WorkerGenerateResponse last;
    last.set_finish_reason(v1::FINISH_REASON_EOS);
    last.mutable_usage()->set_prompt_tokens(5);
    last.mutable_usage()->set_completion_tokens(static_cast<int64_t>(pieces.size()));
    writer->Write(last);
    return grpc::Status::OK;
  }

  grpc::Status DefaultGenerate(const v1::WorkerGenerateRequest& r,
                               grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
    if (r.max_new_tokens() < 1) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "max_new_tokens must be >= 1");
    }
    if (LastContent(r).find("\\boxed{category}") != std::string::npos) {
      return Reply(writer, {classify_answer});
    }
    return Reply(writer, {"hello", " from ", LabelOf(r.adapter())});
  }

  grpc::Status Generate(grpc::ServerContext* context, const v1::WorkerGenerateRequest* request,
                        grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) override {
    int now = ++in_flight;
    int seen = max_in_flight.load();
    while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
    }
    {
      std::lock_guard lock(mu);
      generate_requests.push_back(*request);
      deadlines.push_back(context->deadline());
    }
    grpc::Status s =
        generate ? generate(context, *request, writer) : DefaultGenerate(*request, writer);
    if (context->IsCancelled()) saw_cancel = true;
    --in_flight;
    return s;
  }

  grpc::Status Score(grpc::ServerContext*, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override {
    {
      std::lock_guard lock(mu);
      score_requests.push_back(*request);
    }
    if (score) return score(*request, response);
    for (int i = 0; i < request->completions_size(); ++i) {
      auto* c = response->add_completions();
      c->set_logprob(-1.0 - i);
      c->set_tokens(3);
    }
    return grpc::Status::OK;
  }

  grpc::Status Info(grpc::ServerContext*, const v1::WorkerInfoRequest*,
                    v1::WorkerInfo* response) override {
    response->set_num_layers(4);
    response->set_max_batch_size(8);
    response->set_max_queue(64);
    return grpc::Status::OK;
  }
};

// ---------------------------------------------------------------- fixture

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddExpert("math-svf", 1);
    registry_.AddExpert("math-svf", 2);
    registry_.AddExpert("math-svf", 3, /*deprecated=*/true);
    registry_.AddExpert("code-svf", 1);
    registry_.AddExpert("cls-svf", 1);
    registry_.AddAlias("math", "math-svf", 2);
    registry_.AddAlias("code", "code-svf", 1);
    registry_server_ = Start(&registry_);
  }

  void TearDown() override {
    if (server_.server) server_.server->Shutdown(std::chrono::system_clock::now() + 2s);
    stub_.reset();
    service_.reset();
    resolver_.reset();
    pool_.reset();
    for (auto& s : worker_servers_) s.server->Shutdown(std::chrono::system_clock::now() + 1s);
    if (registry_server_.server)
      registry_server_.server->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  static rpc::RunningServer Start(grpc::Service* service) {
    absl::StatusOr<rpc::RunningServer> s = rpc::StartServer({.address = "127.0.0.1:0"}, {service});
    EXPECT_TRUE(s.ok()) << s.status();
    s->SetServing(true);
    return *std::move(s);
  }

  // Starts `n` fake workers and a dispatcher in front of them.
  void StartDispatcher(int n, AdaptOptions adapt = {}, ExpertResolver::Options resolver = {},
                       BoundedExecutor::Options handlers = {}) {
    std::vector<std::string> addresses;
    for (int i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<FakeWorker>());
      worker_servers_.push_back(Start(workers_.back().get()));
      addresses.push_back(worker_servers_.back().address);
    }
    StartDispatcherFor(addresses, adapt, resolver, handlers);
  }

  // A dispatcher in front of the workers at `addresses`.
  void StartDispatcherFor(const std::vector<std::string>& addresses, AdaptOptions adapt = {},
                          ExpertResolver::Options resolver = {},
                          BoundedExecutor::Options handlers = {}) {
    resolver_ = std::make_unique<ExpertResolver>(
        grpc::CreateChannel(registry_server_.address, t2::rpc::LoopbackChannelCredentials()),
        resolver);
    resolver_->StartWatch();
    ASSERT_TRUE(registry_.WaitForWatchers(1));
    pool_ = std::make_unique<WorkerPool>(WorkerPool::Options{.addresses = addresses,
                                                             .dns_targets = {},
                                                             .probe_interval = 100ms,
                                                             .probe_timeout = 500ms});
    pool_->ProbeNow();
    service_ = std::make_unique<DispatcherService>(
        *pool_, *resolver_,
        DispatcherService::Options{.first_pass = {.generate_max_tokens = 16},
                                   .adapt = adapt,
                                   .metrics = &metrics_,
                                   .handlers = handlers});
    server_ = Start(service_.get());
    stub_ = v1::Dispatcher::NewStub(
        grpc::CreateChannel(server_.address, t2::rpc::LoopbackChannelCredentials()));
  }

  static v1::GenerateRequest Prompt(const std::string& text, int max_new_tokens = 8) {
    v1::GenerateRequest r;
    r.set_prompt(text);
    r.set_max_new_tokens(max_new_tokens);
    return r;
  }

  grpc::Status Generate(const v1::GenerateRequest& request, v1::GenerateResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    return stub_->Generate(&context, request, response);
  }

  prometheus::Registry metrics_registry_;
  DispatcherMetrics metrics_{metrics_registry_};
  FakeRegistry registry_;
  rpc::RunningServer registry_server_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  std::vector<rpc::RunningServer> worker_servers_;
  std::unique_ptr<ExpertResolver> resolver_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<DispatcherService> service_;
  rpc::RunningServer server_;
  std::unique_ptr<v1::Dispatcher::Stub> stub_;
};

// ---------------------------------------------------------------- validation

TEST_F(DispatcherTest, InvalidAdaptationNamesTheField) {
  StartDispatcher(1);
  struct Case {
    std::function<void(v1::Adaptation*)> set;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](v1::Adaptation* a) { a->set_expert(""); }, "adaptation.expert"},
      {[](v1::Adaptation* a) { a->set_expert("Math Expert"); }, "adaptation.expert"},
      {[](v1::Adaptation* a) { a->set_expert("math@x"); }, "adaptation.expert"},
      {[](v1::Adaptation* a) { a->set_expert("math@0"); }, "adaptation.expert"},
      {[](v1::Adaptation* a) { a->set_mixture("m@2"); }, "adaptation.mixture"},
      {[](v1::Adaptation* a) { a->set_few_shot_task(""); }, "adaptation.few_shot_task"},
      {[](v1::Adaptation* a) { a->mutable_prompt()->set_mode(static_cast<v1::ClassifyMode>(9)); },
       "adaptation.prompt.mode"},
      {[](v1::Adaptation* a) {
         a->mutable_classifier_expert()->set_mode(static_cast<v1::ClassifyMode>(-1));
       },
       "adaptation.classifier_expert.mode"},
      {[](v1::Adaptation* a) { a->mutable_classifier_expert()->set_expert("BAD!"); },
       "adaptation.classifier_expert.expert"},
  };
  for (const Case& c : cases) {
    v1::GenerateRequest request = Prompt("hi");
    c.set(request.mutable_adaptation());
    v1::GenerateResponse response;
    grpc::Status s = Generate(request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  EXPECT_EQ(workers_[0]->GenerateCalls(), 0);  // nothing reached a worker
}

TEST_F(DispatcherTest, ClassifiedRequestsNeedInput) {
  StartDispatcher(1);
  v1::GenerateRequest request;
  request.set_max_new_tokens(4);
  request.mutable_adaptation()->mutable_prompt();
  v1::GenerateResponse response;
  grpc::Status s = Generate(request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("input"));

  grpc::ClientContext context;
  v1::ClassifyRequest classify;
  classify.set_prompt("what is 2+2?");
  v1::ClassifyResponse classified;
  s = stub_->Classify(&context, classify, &classified);  // no strategy
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("adaptation"));
}

TEST_F(DispatcherTest, WorkerValidationErrorsPassThroughUnchanged) {
  StartDispatcher(2);
  v1::GenerateResponse response;
  grpc::Status s = Generate(Prompt("hi", /*max_new_tokens=*/0), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("max_new_tokens"));
  EXPECT_EQ(workers_[0]->GenerateCalls() + workers_[1]->GenerateCalls(), 1);  // not retried
}

v1::AdaptRequest SmallAdapt() {
  v1::AdaptRequest r;
  r.set_task("arith");
  r.set_verifier(v1::VERIFIER_KIND_NUMERIC);
  for (int i = 0; i < 3; ++i) {
    auto* e = r.add_examples();
    e->set_question(absl::StrCat("question #", 10 + i));
    e->set_answer(absl::StrCat(10 + i));
  }
  return r;
}

TEST_F(DispatcherTest, InvalidAdaptRequestsNameTheField) {
  StartDispatcher(1);
  struct Case {
    std::function<void(v1::AdaptRequest*)> change;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](v1::AdaptRequest* r) { r->clear_examples(); }, "examples"},
      {[](v1::AdaptRequest* r) {
         for (int i = 0; i < 62; ++i) *r->add_examples() = r->examples(0);
       },
       "examples"},
      {[](v1::AdaptRequest* r) { r->set_verifier(v1::VERIFIER_KIND_UNSPECIFIED); }, "verifier"},
      {[](v1::AdaptRequest* r) { r->set_task(""); }, "task"},
      {[](v1::AdaptRequest* r) { r->set_population(1000); }, "population"},
      {[](v1::AdaptRequest* r) { r->set_generations(-1); }, "generations"},
      {[](v1::AdaptRequest* r) { r->set_max_new_tokens(-5); }, "max_new_tokens"},
      {[](v1::AdaptRequest* r) { r->add_experts("NOPE"); }, "experts[0]"},
      {[](v1::AdaptRequest* r) { r->mutable_examples(1)->set_answer("no number"); },
       "examples[1].answer"},
      {[](v1::AdaptRequest* r) {
         r->set_verifier(v1::VERIFIER_KIND_REGEX);
         r->mutable_examples(2)->set_answer("([unclosed");
       },
       "examples[2].answer"},
      {[](v1::AdaptRequest* r) { r->mutable_examples(0)->set_question(""); },
       "examples[0].question"},
  };
  for (const Case& c : cases) {
    v1::AdaptRequest request = SmallAdapt();
    c.change(&request);
    grpc::ClientContext context;
    v1::AdaptResponse response;
    grpc::Status s = stub_->Adapt(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  EXPECT_EQ(workers_[0]->GenerateCalls(), 0);
}

// ---------------------------------------------------------------- resolution

TEST_F(DispatcherTest, BaseExpertAliasAndPinnedVersion) {
  StartDispatcher(1);
  v1::GenerateResponse response;
  ASSERT_TRUE(Generate(Prompt("hi"), &response).ok());
  EXPECT_EQ(response.text(), "hello from base");
  EXPECT_EQ(response.first_pass().strategy(), "none");
  EXPECT_EQ(response.first_pass().adapter(), "base");
  EXPECT_EQ(response.finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_EQ(response.usage().completion_tokens(), 3);
  EXPECT_EQ(response.worker(), worker_servers_[0].address);

  struct Case {
    std::string asked;
    std::string adapter;
  };
  for (const Case& c : std::vector<Case>{{"math", "math-svf@2"},        // alias
                                         {"math-svf", "math-svf@2"},    // newest not deprecated
                                         {"math-svf@1", "math-svf@1"},  // pinned
                                         {"math-svf@3", "math-svf@3"},  // pinned, deprecated
                                         {"code", "code-svf@1"}}) {
    v1::GenerateRequest request = Prompt("hi");
    request.mutable_adaptation()->set_expert(c.asked);
    v1::GenerateResponse r;
    grpc::Status s = Generate(request, &r);
    ASSERT_TRUE(s.ok()) << c.asked << ": " << s.error_message();
    EXPECT_EQ(r.first_pass().strategy(), "expert");
    EXPECT_EQ(r.first_pass().adapter(), c.adapter) << c.asked;
    EXPECT_EQ(r.text(), "hello from " + c.adapter);
    ASSERT_EQ(r.first_pass().spec().experts_size(), 1);
    EXPECT_EQ(r.first_pass().spec().experts(0).sha256(),
              "sha-" + std::string(c.adapter).replace(c.adapter.find('@'), 1, "-"));
  }
}

TEST_F(DispatcherTest, UnknownNamesAreNotFoundAndNeverBase) {
  StartDispatcher(1);
  struct Case {
    std::function<void(v1::Adaptation*)> set;
    std::string mentions;
  };
  for (const Case& c : std::vector<Case>{
           {[](v1::Adaptation* a) { a->set_expert("poetry"); }, "poetry"},
           {[](v1::Adaptation* a) { a->set_expert("math-svf@9"); }, "math-svf@9"},
           {[](v1::Adaptation* a) { a->set_mixture("blend"); }, "blend"},
           {[](v1::Adaptation* a) { a->set_few_shot_task("trivia"); }, "trivia"},
           {[](v1::Adaptation* a) { a->mutable_classifier_expert(); }, "cls"},
       }) {
    v1::GenerateRequest request = Prompt("hi");
    c.set(request.mutable_adaptation());
    v1::GenerateResponse response;
    grpc::Status s = Generate(request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << c.mentions;
    EXPECT_THAT(s.error_message(), HasSubstr(c.mentions));
  }
  EXPECT_EQ(workers_[0]->GenerateCalls(), 0);
}

TEST_F(DispatcherTest, MixturesAndFewShotTasks) {
  {
    std::lock_guard lock(registry_.mu);
    v1::Mixture m;
    m.set_name("blend");
    *m.mutable_spec()->add_experts() = Ref("math-svf", 2);
    *m.mutable_spec()->add_experts() = Ref("code-svf", 1);
    m.mutable_spec()->add_alpha(0.25);
    m.mutable_spec()->add_alpha(0.75);
    registry_.mixtures["blend"] = m;
  }
  StartDispatcher(1);
  for (bool few_shot : {false, true}) {
    v1::GenerateRequest request = Prompt("hi");
    if (few_shot) {
      request.mutable_adaptation()->set_few_shot_task("blend");
    } else {
      request.mutable_adaptation()->set_mixture("blend");
    }
    v1::GenerateResponse r;
    ASSERT_TRUE(Generate(request, &r).ok());
    EXPECT_EQ(r.first_pass().strategy(), few_shot ? "few_shot" : "mixture");
    EXPECT_EQ(r.first_pass().adapter(), "mixture:blend");
    EXPECT_EQ(r.first_pass().spec().alpha_size(), 2);
  }
  std::lock_guard lock(workers_[0]->mu);
  EXPECT_EQ(workers_[0]->generate_requests.back().adapter().alpha(1), 0.75);
}

TEST_F(DispatcherTest, LookupsAreCachedAndWatchInvalidatesThem) {
  StartDispatcher(1);
  v1::GenerateRequest request = Prompt("hi");
  request.mutable_adaptation()->set_expert("math");
  v1::GenerateResponse r;
  ASSERT_TRUE(Generate(request, &r).ok());
  ASSERT_TRUE(Generate(request, &r).ok());
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(registry_.LookupCalls(), 1);
  EXPECT_EQ(r.first_pass().adapter(), "math-svf@2");

  registry_.MoveAlias("math", "math-svf", 1);
  // The event arrives asynchronously; the next lookups must see the move soon after.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  do {
    ASSERT_TRUE(Generate(request, &r).ok());
  } while (r.first_pass().adapter() != "math-svf@1" && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(r.first_pass().adapter(), "math-svf@1");
  EXPECT_GE(resolver_->stats().events, 1);
}

// Clients choose the names looked up: a stream of distinct missing names must not grow the
// cache without bound (each would be a cached NOT_FOUND).
TEST_F(DispatcherTest, TheLookupCacheStaysWithinItsBound) {
  StartDispatcher(1, {}, {.max_cache_entries = 8});
  v1::GenerateResponse r;
  for (int i = 0; i < 40; ++i) {
    v1::GenerateRequest request = Prompt("hi");
    request.mutable_adaptation()->set_expert("missing-" + std::to_string(i));
    EXPECT_EQ(Generate(request, &r).error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_LE(resolver_->cache_size(), 8u);
  }
  EXPECT_EQ(resolver_->cache_size(), 8u);
  // The newest entries are the ones kept: the last name is answered from the cache.
  const int64_t hits = resolver_->stats().hits;
  v1::GenerateRequest again = Prompt("hi");
  again.mutable_adaptation()->set_expert("missing-39");
  EXPECT_EQ(Generate(again, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_GT(resolver_->stats().hits, hits);
}

// The resolver used to call itself watching (and cache lookups) as soon as it opened the Watch
// call; a change the registry made before subscribing it was then never announced and a
// lookup cached in that window was served stale for the whole TTL.
TEST_F(DispatcherTest, LookupsAreCachedOnlyOnceTheWatchIsEstablished) {
  {
    std::lock_guard lock(registry_.mu);
    registry_.hold_watch = true;
  }
  StartDispatcher(1);  // returns once the Watch call has reached the registry
  v1::GenerateRequest request = Prompt("hi");
  request.mutable_adaptation()->set_expert("math");
  v1::GenerateResponse r;
  EXPECT_FALSE(resolver_->watching());
  const int before = registry_.LookupCalls();
  ASSERT_TRUE(Generate(request, &r).ok());
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(registry_.LookupCalls(), before + 2)
      << "nothing may be cached before the watch is established";

  {
    std::lock_guard lock(registry_.mu);
    registry_.hold_watch = false;
  }
  registry_.cv.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!resolver_->watching() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(resolver_->watching());
  ASSERT_TRUE(Generate(request, &r).ok());
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(registry_.LookupCalls(), before + 3) << "once established, the lookup is cached";
}

TEST_F(DispatcherTest, WatchReconnectsAfterARegistryRestart) {
  StartDispatcher(1);
  v1::GenerateRequest request = Prompt("hi");
  request.mutable_adaptation()->set_expert("math");
  v1::GenerateResponse r;
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(r.first_pass().adapter(), "math-svf@2");

  // The registry goes away; while it is down lookups fail (never a silent base model)...
  const std::string address = registry_server_.address;
  registry_server_.server->Shutdown(std::chrono::system_clock::now());
  registry_server_.server.reset();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (resolver_->watching() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(resolver_->watching());
  grpc::Status down = Generate(request, &r);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();

  // ...and it comes back on the same address with a change the old stream never announced.
  FakeRegistry restarted;
  restarted.AddExpert("math-svf", 1);
  restarted.AddAlias("math", "math-svf", 1);
  absl::StatusOr<rpc::RunningServer> again = rpc::StartServer({.address = address}, {&restarted});
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(restarted.WaitForWatchers(1));  // the resolver reconnected by itself
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(r.first_pass().adapter(), "math-svf@1");
  EXPECT_GE(resolver_->stats().reconnects, 1);
  // Stop the watch before `restarted` goes out of scope.
  server_.server->Shutdown(std::chrono::system_clock::now() + 1s);
  resolver_.reset();
  again->server->Shutdown(std::chrono::system_clock::now());
}

// ---------------------------------------------------------------- first pass

TEST_F(DispatcherTest, PromptLabelScoreChoosesTheCategoryAlias) {
  StartDispatcher(1);
  workers_[0]->score = [](const v1::ScoreRequest& r, v1::ScoreResponse* out) {
    for (const std::string& c : r.completions()) {
      auto* s = out->add_completions();
      s->set_logprob(c == "\\boxed{math}" ? -0.5 : -4.0);
      s->set_tokens(4);
    }
    return grpc::Status::OK;
  };
  v1::GenerateRequest request = Prompt("What is 17 * 23?");
  request.mutable_adaptation()->mutable_prompt()->set_mode(v1::CLASSIFY_MODE_LABEL_SCORE);
  v1::GenerateResponse r;
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(r.first_pass().strategy(), "prompt");
  EXPECT_EQ(r.first_pass().category(), "math");
  EXPECT_EQ(r.first_pass().adapter(), "math-svf@2");
  EXPECT_EQ(r.text(), "hello from math-svf@2");
  EXPECT_GT(r.first_pass().duration_ms(), 0);
  std::lock_guard lock(workers_[0]->mu);
  ASSERT_EQ(workers_[0]->score_requests.size(), 1u);  // one Score call, four labels
  const v1::ScoreRequest& scored = workers_[0]->score_requests[0];
  EXPECT_EQ(scored.completions_size(), 4);
  EXPECT_EQ(scored.adapter().experts_size(), 0);  // the base model classifies
  EXPECT_THAT(scored.chat().messages(0).content(), HasSubstr("What is 17 * 23?"));
}

TEST_F(DispatcherTest, UnspecifiedModeIsLabelScoreAndTiesGoFirst) {
  StartDispatcher(1);
  workers_[0]->score = [](const v1::ScoreRequest& r, v1::ScoreResponse* out) {
    for (int i = 0; i < r.completions_size(); ++i) out->add_completions()->set_logprob(-2.0);
    return grpc::Status::OK;
  };
  grpc::ClientContext context;
  v1::ClassifyRequest request;
  request.set_prompt("Write a function");
  request.mutable_adaptation()->mutable_prompt();
  v1::ClassifyResponse response;
  ASSERT_TRUE(stub_->Classify(&context, request, &response).ok());
  EXPECT_EQ(response.first_pass().category(), "code");
  EXPECT_EQ(response.first_pass().adapter(), "code-svf@1");
  EXPECT_EQ(response.label_logprobs().size(), 4u);
  EXPECT_EQ(response.label_logprobs().at("reasoning"), -2.0);
  EXPECT_EQ(workers_[0]->GenerateCalls(), 0);  // Classify runs no second pass
}

TEST_F(DispatcherTest, GenerateModeParsesTheBoxAndFallsBackToBase) {
  StartDispatcher(1);
  struct Case {
    std::string reply;
    std::string category;
    std::string adapter;
  };
  for (const Case& c : std::vector<Case>{{"It is \\boxed{Code}", "code", "code-svf@1"},
                                         // a category with no alias runs the base model
                                         {"\\boxed{reasoning}", "reasoning", "base"},
                                         {"\\boxed{cooking}", "other", "base"},
                                         {"no box at all", "other", "base"}}) {
    workers_[0]->classify_answer = c.reply;
    grpc::ClientContext context;
    v1::ClassifyRequest request;
    request.mutable_chat()->add_messages()->set_role("system");
    auto* user = request.mutable_chat()->add_messages();
    user->set_role("user");
    user->set_content("Which option is right?");
    request.mutable_adaptation()->mutable_prompt()->set_mode(v1::CLASSIFY_MODE_GENERATE);
    v1::ClassifyResponse response;
    ASSERT_TRUE(stub_->Classify(&context, request, &response).ok());
    EXPECT_EQ(response.raw_output(), c.reply);
    EXPECT_EQ(response.first_pass().category(), c.category) << c.reply;
    EXPECT_EQ(response.first_pass().adapter(), c.adapter) << c.reply;
  }
  std::lock_guard lock(workers_[0]->mu);
  const v1::WorkerGenerateRequest& g = workers_[0]->generate_requests.back();
  EXPECT_EQ(g.max_new_tokens(), 16);            // --first-pass-max-tokens
  EXPECT_EQ(g.sampling().temperature(), 0.0f);  // greedy
  EXPECT_THAT(LastContent(g), HasSubstr("Which option is right?"));
}

TEST_F(DispatcherTest, ClassifierExpertAdaptsTheClassifier) {
  registry_.AddAlias("cls", "cls-svf", 1);
  StartDispatcher(1);
  workers_[0]->classify_answer = "\\boxed{math}";
  v1::GenerateRequest request = Prompt("Integrate x^2");
  request.mutable_adaptation()->mutable_classifier_expert()->set_mode(v1::CLASSIFY_MODE_GENERATE);
  v1::GenerateResponse r;
  ASSERT_TRUE(Generate(request, &r).ok());
  EXPECT_EQ(r.first_pass().strategy(), "classifier_expert");
  EXPECT_EQ(r.first_pass().category(), "math");
  EXPECT_EQ(r.first_pass().adapter(), "math-svf@2");
  std::lock_guard lock(workers_[0]->mu);
  ASSERT_EQ(workers_[0]->generate_requests.size(), 2u);
  EXPECT_EQ(LabelOf(workers_[0]->generate_requests[0].adapter()), "cls-svf@1");
  EXPECT_EQ(LabelOf(workers_[0]->generate_requests[1].adapter()), "math-svf@2");
}

// ---------------------------------------------------------------- streaming, retry, choice

TEST_F(DispatcherTest, StreamStartsWithTheFirstPassAndEndsWithTheFinish) {
  StartDispatcher(1);
  grpc::ClientContext context;
  v1::GenerateRequest request = Prompt("hi");
  request.mutable_adaptation()->set_expert("code");
  auto reader = stub_->GenerateStream(&context, request);
  std::vector<v1::GenerateStreamResponse> messages;
  v1::GenerateStreamResponse m;
  while (reader->Read(&m)) messages.push_back(m);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_GE(messages.size(), 3u);
  EXPECT_TRUE(messages.front().has_first_pass());
  EXPECT_EQ(messages.front().first_pass().adapter(), "code-svf@1");
  std::string text;
  for (size_t i = 1; i < messages.size(); ++i) {
    EXPECT_FALSE(messages[i].has_first_pass());
    text += messages[i].text();
  }
  EXPECT_EQ(text, "hello from code-svf@1");
  EXPECT_EQ(messages.back().finish_reason(), v1::FINISH_REASON_EOS);
  EXPECT_EQ(messages.back().usage().completion_tokens(), 3);
}

TEST_F(DispatcherTest, UnavailableBeforeTheFirstTokenMovesToAnotherWorker) {
  StartDispatcher(2);
  for (auto& w : workers_) {
    w->generate = [](grpc::ServerContext*, const v1::WorkerGenerateRequest&,
                     grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
      v1::WorkerGenerateResponse queued;
      queued.set_queue_ms(3);  // no text yet: a retry repeats nothing
      writer->Write(queued);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    };
  }
  workers_[1]->generate = nullptr;  // the healthy one
  v1::GenerateResponse r;
  grpc::Status s = Generate(Prompt("hi"), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.text(), "hello from base");
  EXPECT_EQ(r.worker(), worker_servers_[1].address);
  EXPECT_EQ(workers_[1]->GenerateCalls(), 1);
  EXPECT_LE(workers_[0]->GenerateCalls(), 1);
}

TEST_F(DispatcherTest, FailureAfterTheFirstTokenIsUnavailableAndNeverRepeated) {
  StartDispatcher(2);
  auto broken = [](grpc::ServerContext*, const v1::WorkerGenerateRequest&,
                   grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
    v1::WorkerGenerateResponse m;
    m.set_text("partial");
    m.add_token_ids(7);
    writer->Write(m);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "gpu fell off the bus");
  };
  workers_[0]->generate = broken;
  workers_[1]->generate = broken;
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, Prompt("hi"));
  std::string text;
  v1::GenerateStreamResponse m;
  while (reader->Read(&m)) text += m.text();
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("after its answer had started"));
  EXPECT_EQ(text, "partial");  // once, from one worker
  EXPECT_EQ(workers_[0]->GenerateCalls() + workers_[1]->GenerateCalls(), 1);
}

// A worker that cannot reach the registry answers UNAVAILABLE marked as the registry's: the
// call tries the other workers, but none is taken out of the pool (a registry outage used to
// mark every worker down, so requests for the base model failed too).
TEST_F(DispatcherTest, ARegistryOutageOnAWorkerDoesNotMarkItDown) {
  StartDispatcher(2);
  for (auto& w : workers_) {
    w->generate = [](grpc::ServerContext* context, const v1::WorkerGenerateRequest&,
                     grpc::ServerWriter<v1::WorkerGenerateResponse>*) {
      context->AddTrailingMetadata(rpc::kUnavailableCauseKey, rpc::kUnavailableCauseRegistry);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "expert math@1: the registry is unreachable");
    };
  }
  v1::GenerateResponse r;
  grpc::Status s = Generate(Prompt("hi"), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("registry is unreachable"));
  EXPECT_EQ(workers_[0]->GenerateCalls() + workers_[1]->GenerateCalls(), 2)
      << "each worker tried once";
  EXPECT_EQ(pool_->unavailable_reports(), 0);
  for (const auto& w : pool_->Snapshot()) {
    EXPECT_EQ(w.health, WorkerPool::Health::kServing) << w.address;
  }
  // The next request (the registry back, or the base model) is served at once.
  for (auto& w : workers_) w->generate = nullptr;
  ASSERT_TRUE(Generate(Prompt("hi"), &r).ok());
  EXPECT_EQ(r.text(), "hello from base");

  // Without the mark, UNAVAILABLE is the worker's own (draining, crashed): it is routed around.
  workers_[0]->generate = [](grpc::ServerContext*, const v1::WorkerGenerateRequest&,
                             grpc::ServerWriter<v1::WorkerGenerateResponse>*) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  };
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Generate(Prompt("hi"), &r).ok());
  EXPECT_GE(pool_->unavailable_reports(), 1);
}

TEST_F(DispatcherTest, AllWorkersDownIsUnavailable) {
  StartDispatcher(2);
  for (auto& s : worker_servers_) s.server->Shutdown(std::chrono::system_clock::now());
  v1::GenerateResponse r;
  grpc::Status s = Generate(Prompt("hi"), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

// A worker counts as busy for us exactly while our call to it runs: by the time the client
// has its answer, the lease is over. (It used to end only when gRPC let go of the finished
// worker call's callback, after the answer: the next request could find the worker still
// counted busy and go to one that really was, which FewestOutstandingWins once saw.)
TEST_F(DispatcherTest, AWorkerIsNoLongerCountedBusyOnceTheAnswerArrives) {
  StartDispatcher(1);
  for (int i = 0; i < 300; ++i) {
    v1::GenerateResponse r;
    ASSERT_TRUE(Generate(Prompt("hi"), &r).ok());
    ASSERT_EQ(pool_->Snapshot().at(0).outstanding, 0) << "after unary request " << i;
    grpc::ClientContext context;
    auto reader = stub_->GenerateStream(&context, Prompt("hi"));
    v1::GenerateStreamResponse m;
    while (reader->Read(&m)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
    ASSERT_EQ(pool_->Snapshot().at(0).outstanding, 0) << "after stream " << i;
  }
}

TEST_F(DispatcherTest, FewestOutstandingWins) {
  StartDispatcher(2);
  // Hold one request on whichever worker gets it; the next must go to the other.
  std::atomic<bool> release{false};
  for (auto& w : workers_) {
    w->generate = [&release](grpc::ServerContext* ctx, const v1::WorkerGenerateRequest& r,
                             grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
      if (LastContent(r) == "hold") {
        while (!release && !ctx->IsCancelled()) std::this_thread::sleep_for(5ms);
      }
      return FakeWorker::Reply(writer, {"ok"});
    };
  }
  std::thread held([&] {
    v1::GenerateResponse r;
    Generate(Prompt("hold"), &r);
  });
  ASSERT_TRUE(t2::testing::Eventually(
      [&] { return workers_[0]->GenerateCalls() + workers_[1]->GenerateCalls() > 0; }, 30s))
      << "the held request never reached a worker";
  const int busy = workers_[0]->GenerateCalls() == 1 ? 0 : 1;
  for (int i = 0; i < 3; ++i) {
    v1::GenerateResponse r;
    ASSERT_TRUE(Generate(Prompt("quick"), &r).ok());
    EXPECT_EQ(r.worker(), worker_servers_[1 - busy].address);
  }
  release = true;
  held.join();
}

TEST_F(DispatcherTest, DeadlineReachesTheWorker) {
  StartDispatcher(1);
  grpc::ClientContext context;
  const auto deadline = std::chrono::system_clock::now() + 7s;
  context.set_deadline(deadline);
  v1::GenerateResponse r;
  ASSERT_TRUE(stub_->Generate(&context, Prompt("hi"), &r).ok());
  std::lock_guard lock(workers_[0]->mu);
  ASSERT_EQ(workers_[0]->deadlines.size(), 1u);
  auto diff = workers_[0]->deadlines[0] - deadline;
  EXPECT_LT(std::chrono::abs(diff), 1s);
}

TEST_F(DispatcherTest, ClientCancellationCancelsTheWorkerCall) {
  StartDispatcher(1);
  std::atomic<bool> started{false};
  workers_[0]->generate = [&started](grpc::ServerContext* ctx, const v1::WorkerGenerateRequest&,
                                     grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
    started = true;
    for (int i = 0; i < 1000 && !ctx->IsCancelled(); ++i) {
      v1::WorkerGenerateResponse m;
      m.set_text("x");
      writer->Write(m);
      std::this_thread::sleep_for(10ms);
    }
    return grpc::Status::OK;
  };
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, Prompt("long"));
  v1::GenerateStreamResponse m;
  ASSERT_TRUE(reader->Read(&m));  // first pass
  ASSERT_TRUE(reader->Read(&m));  // a token
  context.TryCancel();
  reader->Finish();
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (!workers_[0]->saw_cancel && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(workers_[0]->saw_cancel);
}

// Threads of this process, from /proc.
int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// Streams waiting on a worker hold no thread of the dispatcher (gRPC's synchronous API took
// one each): 100 open at once add far fewer than 100 threads, and cancelling them reaches
// the worker.
TEST_F(DispatcherTest, WaitingStreamsHoldNoThreads) {
  t2::testing::HeldWorker held;
  worker_servers_.push_back(Start(&held));
  StartDispatcherFor({worker_servers_.back().address});
  constexpr int kStreams = 100;
  struct Open {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader;
  };
  std::vector<std::unique_ptr<Open>> streams;
  const int before = ThreadCount();
  for (int i = 0; i < kStreams; ++i) {
    auto open = std::make_unique<Open>();
    open->context.set_deadline(std::chrono::system_clock::now() + 60s);
    open->reader = stub_->GenerateStream(&open->context, Prompt("wait"));
    v1::GenerateStreamResponse head;
    ASSERT_TRUE(open->reader->Read(&head)) << "stream " << i;  // the first pass is done
    ASSERT_TRUE(head.has_first_pass());
    streams.push_back(std::move(open));
  }
  ASSERT_TRUE(t2::testing::Eventually([&] { return held.open() == kStreams; }, 30s))
      << held.open() << " of " << kStreams << " reached the worker";
  const int during = ThreadCount();
  EXPECT_LT(during - before, kStreams / 4) << before << " threads before, " << during << " after";

  for (auto& open : streams) open->context.TryCancel();
  for (auto& open : streams) {
    EXPECT_EQ(open->reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(t2::testing::Eventually([&] { return held.open() == 0; }, 30s))
      << held.open() << " worker calls still open";
  // `held` ends with this test; its server must end first (TearDown would be too late).
  worker_servers_.back().server->Shutdown(std::chrono::system_clock::now() + 1s);
}

// A call that finds every handler thread busy and the queue full is refused at once with
// RESOURCE_EXHAUSTED, instead of the dispatcher starting threads without bound.
TEST_F(DispatcherTest, BusyHandlerThreadsRefuseWithResourceExhausted) {
  StartDispatcher(1, {}, {}, {.max_threads = 1, .max_queue = 0});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  workers_[0]->score = [released](const v1::ScoreRequest& r, v1::ScoreResponse* out) {
    released.wait_for(30s);
    for (int i = 0; i < r.completions_size(); ++i) out->add_completions()->set_logprob(-1.0 - i);
    return grpc::Status::OK;
  };
  std::thread classifying([&] {
    v1::GenerateRequest request = Prompt("hold the handler");
    request.mutable_adaptation()->mutable_prompt()->set_mode(v1::CLASSIFY_MODE_LABEL_SCORE);
    v1::GenerateResponse r;
    EXPECT_TRUE(Generate(request, &r).ok());
  });
  ASSERT_TRUE(t2::testing::Eventually(
      [&] {
        std::lock_guard lock(workers_[0]->mu);
        return !workers_[0]->score_requests.empty();
      },
      30s));
  v1::GenerateResponse r;
  grpc::Status refused = Generate(Prompt("hi"), &r);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("busy"));
  release.set_value();
  classifying.join();
  // The executor counts its thread free only when the first-pass task returns, which may be
  // after the worker's answer has reached the client (generate_calls.cc), so the next call
  // may be refused for a moment after the join; it must be served within a bound.
  EXPECT_TRUE(t2::testing::Eventually([&] { return Generate(Prompt("hi"), &r).ok(); }, 10s))
      << "served again once the thread is free";
}

// ---------------------------------------------------------------- adaptation

// A worker whose answers are right exactly when the mixture leans on math-svf (alpha >= 0.7),
// and whose log-likelihoods rise with that weight: CEM has something to find.
void MakeMixtureSensitive(FakeWorker& w) {
  auto math_weight = [](const v1::AdapterSpec& spec) {
    double weight = 0;
    for (int i = 0; i < spec.experts_size(); ++i) {
      if (spec.experts(i).name() != "math-svf") continue;
      weight = spec.alpha_size() == 0 ? 1.0 : spec.alpha(i);
    }
    return weight;
  };
  w.generate = [math_weight](grpc::ServerContext*, const v1::WorkerGenerateRequest& r,
                             grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
    std::this_thread::sleep_for(2ms);  // long enough for calls to overlap
    std::string q = LastContent(r);
    std::string answer = math_weight(r.adapter()) >= 0.7 ? q.substr(q.find('#') + 1) : "7";
    return FakeWorker::Reply(writer, {"The answer is ", answer});
  };
  w.score = [math_weight](const v1::ScoreRequest& r, v1::ScoreResponse* out) {
    auto* c = out->add_completions();
    c->set_logprob(4 * (math_weight(r.adapter()) - 1));
    c->set_tokens(2);
    return grpc::Status::OK;
  };
}

TEST_F(DispatcherTest, AdaptFindsTheMixtureAndStoresIt) {
  registry_.AddAlias("cls", "cls-svf", 1);  // never mixed in
  StartDispatcher(2);
  for (auto& w : workers_) MakeMixtureSensitive(*w);
  v1::GenerateRequest use_task = Prompt("question #12");
  use_task.mutable_adaptation()->set_few_shot_task("arith");
  v1::GenerateResponse before;
  EXPECT_EQ(Generate(use_task, &before).error_code(), grpc::StatusCode::NOT_FOUND);  // now cached

  v1::AdaptRequest request = SmallAdapt();
  request.set_population(8);
  request.set_generations(5);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::AdaptResponse response;
  grpc::Status s = stub_->Adapt(&context, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.task(), "arith");
  EXPECT_EQ(response.base_accuracy(), 0.0);
  EXPECT_EQ(response.best_accuracy(), 1.0);
  EXPECT_EQ(response.evaluations(), 3 + 5 * 8 * 3);
  ASSERT_EQ(response.spec().experts_size(), 2);  // the "code" and "math" aliases, not "cls"
  ASSERT_EQ(response.spec().alpha_size(), 2);
  double math_alpha = 0;
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(response.spec().experts(i).name(), "cls-svf");
    if (response.spec().experts(i).name() == "math-svf") math_alpha = response.spec().alpha(i);
  }
  EXPECT_GE(math_alpha, 0.7);
  EXPECT_NEAR(response.spec().alpha(0) + response.spec().alpha(1), 1.0, 1e-9);

  // The task is usable at once (the fake registry sends no MIXTURE_PUT event: the dispatcher
  // drops its own cached NOT_FOUND when it stores the mixture).
  v1::GenerateResponse after;
  grpc::Status used = Generate(use_task, &after);
  ASSERT_TRUE(used.ok()) << used.error_message();
  EXPECT_EQ(after.first_pass().strategy(), "few_shot");
  EXPECT_EQ(after.first_pass().adapter(), "mixture:arith");
  EXPECT_EQ(after.text(), "The answer is 12");

  std::lock_guard lock(registry_.mu);
  ASSERT_EQ(registry_.mixtures.count("arith"), 1u);
  EXPECT_EQ(registry_.mixtures["arith"].spec().alpha_size(), 2);
  // A generation's answers were in flight together, spread over both workers.
  EXPECT_GT(workers_[0]->max_in_flight + workers_[1]->max_in_flight, 3);
  EXPECT_GT(workers_[0]->GenerateCalls(), 0);
  EXPECT_GT(workers_[1]->GenerateCalls(), 0);
}

TEST_F(DispatcherTest, AdaptPerLayerAndSequentialOption) {
  StartDispatcher(1, AdaptOptions{.max_concurrent_candidates = 1});
  MakeMixtureSensitive(*workers_[0]);
  v1::AdaptRequest request = SmallAdapt();
  request.set_population(4);
  request.set_generations(2);
  request.set_per_layer(true);
  request.add_experts("math");
  request.add_experts("code-svf");
  request.add_experts("math-svf@2");  // the same version as "math": mixed once
  grpc::ClientContext context;
  v1::AdaptResponse response;
  grpc::Status s = stub_->Adapt(&context, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.spec().per_layer());
  EXPECT_EQ(response.spec().experts_size(), 2);
  EXPECT_EQ(response.spec().alpha_size(), 4 * 2);  // the fake worker has 4 layers
  // One candidate at a time: its 3 answers (and 3 scores) at most.
  EXPECT_LE(workers_[0]->max_in_flight, 3);
}

TEST_F(DispatcherTest, AdaptRetriesAFullQueueButNotABadRequest) {
  StartDispatcher(1);
  MakeMixtureSensitive(*workers_[0]);
  auto sensitive = workers_[0]->generate;
  std::atomic<int> refusals{0};
  workers_[0]->generate = [&, sensitive](grpc::ServerContext* ctx,
                                         const v1::WorkerGenerateRequest& r,
                                         grpc::ServerWriter<v1::WorkerGenerateResponse>* w) {
    if (refusals++ < 5) return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full");
    return sensitive(ctx, r, w);
  };
  v1::AdaptRequest request = SmallAdapt();
  request.set_population(4);
  request.set_generations(2);
  {
    grpc::ClientContext context;
    v1::AdaptResponse response;
    grpc::Status s = stub_->Adapt(&context, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response.evaluations(), 3 + 2 * 4 * 3);
  }
  workers_[0]->generate = [](grpc::ServerContext*, const v1::WorkerGenerateRequest&,
                             grpc::ServerWriter<v1::WorkerGenerateResponse>*) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "prompt too long for the context");
  };
  grpc::ClientContext context;
  v1::AdaptResponse response;
  grpc::Status s = stub_->Adapt(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("prompt too long"));
}

TEST_F(DispatcherTest, AdaptStopsAtTheClientsDeadline) {
  StartDispatcher(1);
  workers_[0]->generate = [](grpc::ServerContext* ctx, const v1::WorkerGenerateRequest&,
                             grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
    for (int i = 0; i < 500 && !ctx->IsCancelled(); ++i) std::this_thread::sleep_for(10ms);
    return FakeWorker::Reply(writer, {"7"});
  };
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 300ms);
  v1::AdaptResponse response;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = stub_->Adapt(&context, SmallAdapt(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // The worker calls ended with the client's deadline, not after their 5 s.
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (workers_[0]->in_flight > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(workers_[0]->in_flight, 0);
  EXPECT_TRUE(workers_[0]->saw_cancel);
}

TEST_F(DispatcherTest, AdaptWithoutExpertsFailsBeforeGenerating) {
  {
    std::lock_guard lock(registry_.mu);
    registry_.aliases.clear();
  }
  StartDispatcher(1);
  grpc::ClientContext context;
  v1::AdaptResponse response;
  grpc::Status s = stub_->Adapt(&context, SmallAdapt(), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(workers_[0]->GenerateCalls(), 0);
}

// ---------------------------------------------------------------- metrics
TEST_F(DispatcherTest, MetricsCountStrategiesCategoriesConfidenceAndRetries) {
  StartDispatcher(2);
  workers_[0]->generate = [](grpc::ServerContext*, const v1::WorkerGenerateRequest&,
                             grpc::ServerWriter<v1::WorkerGenerateResponse>*) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  };
  for (auto& w : workers_) {
    w->score = [](const v1::ScoreRequest& r, v1::ScoreResponse* out) {
      for (const std::string& c : r.completions()) {
        auto* s = out->add_completions();
        s->set_logprob(c == "\\boxed{math}" ? -0.5 : -4.0);
        s->set_tokens(4);
      }
      return grpc::Status::OK;
    };
  }
  v1::GenerateRequest classified = Prompt("What is 17 * 23?");
  classified.mutable_adaptation()->mutable_prompt()->set_mode(v1::CLASSIFY_MODE_LABEL_SCORE);
  v1::GenerateResponse r;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Generate(Prompt("hi"), &r).ok());
  ASSERT_TRUE(Generate(classified, &r).ok());
  v1::GenerateRequest unknown = Prompt("hi");
  unknown.mutable_adaptation()->set_expert("no-such-expert");
  EXPECT_EQ(Generate(unknown, &r).error_code(), grpc::StatusCode::NOT_FOUND);

  std::vector<prometheus::MetricFamily> families = metrics_registry_.Collect();
  for (auto& f : DispatcherMetrics::StateCollector(*pool_, *resolver_)->Collect())
    families.push_back(std::move(f));
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_requests_total",
                         {{"strategy", "none"}, {"category", "none"}, {"code", "OK"}}),
            3);
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_requests_total",
                         {{"strategy", "prompt"}, {"category", "math"}, {"code", "OK"}}),
            1);
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_requests_total",
                         {{"strategy", "expert"}, {"code", "NotFound"}}),
            1);
  // Label scoring: p(math) = 1 / (1 + 3 e^-3.5) among the four labels.
  const std::map<std::string, std::string> prompt = {{"strategy", "prompt"}};
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_first_pass_confidence_ratio", prompt), 1);
  EXPECT_NEAR(
      MetricSample(families, "t2_dispatcher_first_pass_confidence_ratio", prompt, /*sum=*/true),
      1 / (1 + 3 * std::exp(-3.5)), 1e-9);
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_first_pass_seconds", prompt), 1);
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_first_pass_share_ratio", prompt), 1);
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_first_pass_seconds", {{"strategy", "none"}}), 3);
  // Every call that reached the failing worker moved to the other one.
  EXPECT_GE(workers_[0]->GenerateCalls(), 1);
  EXPECT_EQ(MetricSample(families, "t2_dispatcher_worker_retries_total"),
            workers_[0]->GenerateCalls());
  double workers = 0;
  for (const char* health : {"serving", "not_serving", "unknown"}) {
    workers += MetricSample(families, "t2_dispatcher_workers", {{"health", health}});
  }
  EXPECT_EQ(workers, 2);
  EXPECT_GE(MetricSample(families, "t2_dispatcher_resolver_lookups_total", {{"result", "miss"}}),
            1);
}

// ---------------------------------------------------------------- workers by DNS
TEST(DnsTarget, ParsesBothFormsAndNamesWhatIsWrong) {
  auto system = ParseDnsTarget("dns:///t2-worker-headless.t2serve.svc.cluster.local:50053");
  ASSERT_TRUE(system.ok()) << system.status();
  EXPECT_EQ(system->server, "");
  EXPECT_EQ(system->name, "t2-worker-headless.t2serve.svc.cluster.local");
  EXPECT_EQ(system->port, 50053);
  auto own = ParseDnsTarget("dns://127.0.0.1:5353/workers.test:7000");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->server, "127.0.0.1");
  EXPECT_EQ(own->server_port, 5353);
  EXPECT_EQ(own->name, "workers.test");
  EXPECT_EQ(own->port, 7000);
  EXPECT_FALSE(IsDnsTarget("127.0.0.1:50053"));
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"dns:///workers.test", "port is missing"},
           {"dns:///workers.test:0", "not a port"},
           {"dns:///:7000", "empty name"},
           {"dns://resolver.example:53/workers.test:7000", "not an IPv4 address"},
           {"dns://127.0.0.1:99999/workers.test:7000", "not a port"},
           {"dns:workers.test:7000", "dns:///NAME:PORT"}}) {
    auto parsed = ParseDnsTarget(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(says)) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("--worker")) << bad;
  }
}

}  // namespace
}  // namespace t2::dispatcher
