// The whole stack as real processes on loopback: registry, two workers and the dispatcher,
// each started by the test on an ephemeral port. Answers through the dispatcher (unary and
// streaming) equal the engine's own in-process output, with and without an expert; unknown
// names are NOT_FOUND; moving an alias while a stream is in flight does not disturb it; a
// dead worker is routed around.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>

#include "integration/service_process.h"
#include "t2/common/process.h"
#include "t2/common/sha256.h"
#include "t2/engine/generator.h"
#include "t2/tokenizer/chat_template.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "t2/v1/registry.grpc.pb.h"
#include "t2/v1/worker.grpc.pb.h"
#include "testing/eventually.h"
#include "testing/reference_data.h"

namespace t2 {
namespace {

using t2::testing::ServiceProcess;
using t2::testing::StartService;
using ::testing::HasSubstr;

constexpr const char* kQuestion = "What is 12 times 12?";

struct Answer {
  grpc::Status status;
  std::string text;
  v1::FirstPass first_pass;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  int messages = 0;
};

v1::GenerateRequest ChatRequest(const std::string& question, int max_new) {
  v1::GenerateRequest r;
  auto* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content(question);
  r.set_max_new_tokens(max_new);
  return r;
}

Answer Stream(v1::Dispatcher::Stub& stub, const v1::GenerateRequest& request,
              const std::function<void(const Answer&)>& on_message = nullptr) {
  Answer out;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(3));
  auto reader = stub.GenerateStream(&context, request);
  v1::GenerateStreamResponse m;
  while (reader->Read(&m)) {
    if (m.has_first_pass()) out.first_pass = m.first_pass();
    out.text += m.text();
    if (m.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) out.finish = m.finish_reason();
    ++out.messages;
    if (on_message) on_message(out);
  }
  out.status = reader->Finish();
  return out;
}

Answer Unary(v1::Dispatcher::Stub& stub, const v1::GenerateRequest& request) {
  Answer out;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(3));
  v1::GenerateResponse response;
  out.status = stub.Generate(&context, request, &response);
  out.text = response.text();
  out.first_pass = response.first_pass();
  out.finish = response.finish_reason();
  return out;
}

class StackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = t2::testing::MakeTempDir("t2-stack-test");
    const std::string model = t2::testing::DefaultModelPath().string();
    // Two real experts: every singular value scaled by 0.9 and by 1.1 (no renormalisation),
    // written by `t2 expert constant`, as a trainer would publish them.
    for (auto [name, value] : {std::pair{"v1", "0.9"}, std::pair{"v2", "1.1"}}) {
      const auto path = dir_ / (std::string(name) + ".safetensors");
      ChildProcess maker;
      ASSERT_TRUE(maker.Start({t2::testing::BinaryFromEnv("T2_BINARY"), "expert", "constant", "--model", model,
                               "--value", value, "--normalization", "none", "--task", "math", "--device", "cpu",
                               "--out", path.string()},
                              dir_ / "expert.log"));
      int status = maker.Wait(std::chrono::minutes(5));
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << t2::Tail(dir_ / "expert.log");
      expert_files_[name] = path;
    }
    auto registry = StartService(t2::testing::BinaryFromEnv("T2_REGISTRY_BINARY"), {"--root", (dir_ / "registry").string()},
                                 dir_, "registry");
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = registry->release();
    for (int i = 0; i < 2; ++i) {
      auto worker = StartWorker(i);
      ASSERT_TRUE(worker.ok()) << worker.status();
      workers_.push_back(worker->release());
    }
    auto dispatcher = StartDispatcher();
    ASSERT_TRUE(dispatcher.ok()) << dispatcher.status();
    dispatcher_ = dispatcher->release();

    auto engine = engine::Generator::Create({.model = t2::testing::DefaultModelPath(),
                                             .device = t2::model::DeviceSpec::Cpu(),
                                             .svf = engine::SvfOptions{}});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = engine->release();
    for (const auto& [name, path] : expert_files_) ASSERT_TRUE(engine_->AddExpert(name, path).ok());
  }
  // Worker `i`; `listen`: where a restarted one must be (the dispatcher knows that address).
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> StartWorker(
      int i, const std::string& listen = "") {
    std::vector<std::string> args = {
        "--model",          t2::testing::DefaultModelPath().string(),
        "--device",         "cpu",
        "--registry",       registry_->address,
        "--max-batch-size", "4",
        "--max-context",    "1024",
        "--expert-dir",     (dir_ / ("experts" + std::to_string(i))).string()};
    if (!listen.empty()) args.insert(args.end(), {"--listen", listen});
    return StartService(t2::testing::BinaryFromEnv("T2_WORKER_BINARY"), args, dir_,
                        "worker" + std::to_string(i));
  }
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> StartDispatcher() {
    return StartService(t2::testing::BinaryFromEnv("T2_DISPATCHER_BINARY"),
                        {"--registry", registry_->address, "--worker", workers_[0]->address,
                         "--worker", workers_[1]->address,
                         // The drain test checks that a stream finishes, not how fast: a
                         // sanitizer build on a loaded machine takes more than the default 10 s.
                         "--shutdown-grace-seconds", "120"},
                        dir_, "dispatcher");
  }
  // The worker generating something now (WorkerInfo.active), or -1 if none is within `patience`.
  static int BusyWorker(std::chrono::milliseconds patience,
                        const std::function<bool()>& still_wanted = nullptr) {
    const auto until = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < until) {
      if (still_wanted && !still_wanted()) return -1;
      for (int i = 0; i < 2; ++i) {
        auto stub = v1::Worker::NewStub(workers_[i]->channel);
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::WorkerInfo info;
        if (stub->Info(&context, {}, &info).ok() && info.active() > 0) return i;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return -1;
  }

  static void TearDownTestSuite() {
    delete dispatcher_;
    for (auto* w : workers_) delete w;
    workers_.clear();
    delete registry_;
    delete engine_;
    std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    ASSERT_NE(dispatcher_, nullptr);
    dispatcher_stub_ = v1::Dispatcher::NewStub(dispatcher_->channel);
    registry_stub_ = v1::Registry::NewStub(registry_->channel);
  }

  // What the engine generates in-process for a chat turn ("" adapter = base model).
  static std::string EngineAnswer(const std::string& question, int max_new, const std::string& adapter) {
    auto tmpl = tokenizer::ChatTemplate::FromJinja(engine_->tokenizer().chat_template());
    std::vector<tokenizer::ChatMessage> messages = {{"user", question}};
    engine::GenerationRequest r;
    r.prompt_ids = engine_->tokenizer().Encode(*tmpl->Apply(messages, true), false);
    r.max_new_tokens = max_new;
    r.adapter = adapter;
    auto out = engine_->Generate(std::span(&r, 1));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? (*out)[0].text : "";
  }

  v1::ExpertInfo Publish(const std::string& name, int64_t version, const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::string blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    grpc::ClientContext context;
    v1::ExpertInfo info;
    auto writer = registry_stub_->PublishExpert(&context, &info);
    v1::PublishExpertRequest header;
    header.mutable_header()->set_name(name);
    header.mutable_header()->set_version(version);
    header.mutable_header()->set_size_bytes(static_cast<int64_t>(blob.size()));
    header.mutable_header()->set_sha256(Sha256Hex(blob));
    EXPECT_TRUE(writer->Write(header));
    for (size_t offset = 0; offset < blob.size(); offset += 1 << 20) {
      v1::PublishExpertRequest chunk;
      chunk.set_chunk(blob.substr(offset, 1 << 20));
      EXPECT_TRUE(writer->Write(chunk));
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return info;
  }

  void SetAlias(const std::string& alias, const std::string& name, int64_t version) {
    grpc::ClientContext context;
    v1::SetAliasRequest request;
    request.set_alias(alias);
    request.set_name(name);
    request.set_version(version);
    v1::Alias reply;
    grpc::Status status = registry_stub_->SetAlias(&context, request, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static std::filesystem::path dir_;
  static std::map<std::string, std::filesystem::path> expert_files_;
  static ServiceProcess* registry_;
  static std::vector<ServiceProcess*> workers_;
  static ServiceProcess* dispatcher_;
  static engine::Generator* engine_;
  std::unique_ptr<v1::Dispatcher::Stub> dispatcher_stub_;
  std::unique_ptr<v1::Registry::Stub> registry_stub_;
};
std::filesystem::path StackTest::dir_;
std::map<std::string, std::filesystem::path> StackTest::expert_files_;
ServiceProcess* StackTest::registry_ = nullptr;
std::vector<ServiceProcess*> StackTest::workers_;
ServiceProcess* StackTest::dispatcher_ = nullptr;
engine::Generator* StackTest::engine_ = nullptr;

TEST_F(StackTest, ChatAnswerThroughTheDispatcherEqualsTheEngine) {
  const std::string expected = EngineAnswer(kQuestion, 40, "");
  auto unary = Unary(*dispatcher_stub_, ChatRequest(kQuestion, 40));
  ASSERT_TRUE(unary.status.ok()) << unary.status.error_message() << "\n" << dispatcher_->LogTail();
  EXPECT_EQ(unary.text, expected);
  EXPECT_EQ(unary.first_pass.adapter(), "base");
  auto stream = Stream(*dispatcher_stub_, ChatRequest(kQuestion, 40));
  ASSERT_TRUE(stream.status.ok()) << stream.status.error_message();
  EXPECT_EQ(stream.text, expected);
  EXPECT_GT(stream.messages, 2) << "the answer must stream";
}

TEST_F(StackTest, NamedExpertIsAppliedAndUnknownNamesAreNotFound) {
  auto info = Publish("scaled", 1, expert_files_["v1"]);
  ASSERT_EQ(info.version(), 1);
  auto request = ChatRequest(kQuestion, 40);
  request.mutable_adaptation()->set_expert("scaled");
  auto got = Unary(*dispatcher_stub_, request);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message() << "\n" << dispatcher_->LogTail();
  EXPECT_EQ(got.first_pass.adapter(), "scaled@1");
  EXPECT_EQ(got.text, EngineAnswer(kQuestion, 40, "v1"));
  EXPECT_NE(got.text, EngineAnswer(kQuestion, 40, "")) << "the expert should change the answer";

  for (auto edit : std::vector<std::function<void(v1::Adaptation&)>>{
           [](auto& a) { a.set_expert("no-such-expert"); }, [](auto& a) { a.set_expert("scaled@7"); },
           [](auto& a) { a.set_mixture("no-such-mixture"); }, [](auto& a) { a.set_few_shot_task("no-such-task"); }}) {
    auto bad = ChatRequest(kQuestion, 8);
    edit(*bad.mutable_adaptation());
    auto answer = Unary(*dispatcher_stub_, bad);
    EXPECT_EQ(answer.status.error_code(), grpc::NOT_FOUND)
        << bad.adaptation().ShortDebugString() << ": " << answer.status.error_message();
    EXPECT_TRUE(answer.text.empty());
  }
}

TEST_F(StackTest, MovingAnAliasDuringAStreamDoesNotDisturbItAndTheNextRequestUsesTheNewVersion) {
  Publish("hot", 1, expert_files_["v1"]);
  SetAlias("math", "hot", 1);
  auto request = ChatRequest(kQuestion, 64);
  request.mutable_adaptation()->set_expert("math");
  std::atomic<bool> streaming{false};
  Answer in_flight;
  std::thread client([&] { in_flight = Stream(*dispatcher_stub_, request, [&](const Answer&) { streaming = true; }); });
  if (!t2::testing::Eventually([&] { return streaming.load(); }, std::chrono::minutes(3))) {
    client.join();  // the stream's own deadline bounds this
    FAIL() << "the stream never answered: " << in_flight.status.error_message();
  }
  Publish("hot", 2, expert_files_["v2"]);
  SetAlias("math", "hot", 2);
  client.join();
  ASSERT_TRUE(in_flight.status.ok()) << in_flight.status.error_message();
  EXPECT_EQ(in_flight.first_pass.adapter(), "hot@1");
  EXPECT_EQ(in_flight.text, EngineAnswer(kQuestion, 64, "v1"));

  // The dispatcher hears of the move through Registry.Watch; give it a moment.
  Answer next;
  for (int attempt = 0; attempt < 50; ++attempt) {
    next = Unary(*dispatcher_stub_, request);
    if (next.first_pass.adapter() == "hot@2") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.first_pass.adapter(), "hot@2");
  EXPECT_EQ(next.text, EngineAnswer(kQuestion, 64, "v2"));
}

// Workers follow Registry.Watch: the version an alias moves to is loaded where the expert is
// already served, before any request asks for it, and a deprecated version is unloaded.
TEST_F(StackTest, WorkersLoadTheVersionAnAliasMovesToAndUnloadDeprecatedOnes) {
  Publish("warm", 1, expert_files_["v1"]);
  Publish("warm", 2, expert_files_["v2"]);
  SetAlias("warmed", "warm", 1);
  auto request = ChatRequest(kQuestion, 4);
  request.mutable_adaptation()->set_expert("warmed");
  auto first = Unary(*dispatcher_stub_, request);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_EQ(first.first_pass.adapter(), "warm@1");

  auto info = [](ServiceProcess* worker) {
    v1::WorkerInfo out;
    grpc::ClientContext context;
    EXPECT_TRUE(v1::Worker::NewStub(worker->channel)->Info(&context, {}, &out).ok());
    return out;
  };
  auto has = [](const v1::WorkerInfo& i, const std::string& key) {
    return std::find(i.loaded_experts().begin(), i.loaded_experts().end(), key) != i.loaded_experts().end();
  };
  // Waits up to 30 s for `loaded` to become what is wanted.
  auto wait_until = [&](ServiceProcess* worker, const std::string& key, bool loaded) {
    for (int attempt = 0; attempt < 300 && has(info(worker), key) != loaded; ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return has(info(worker), key) == loaded;
  };
  ServiceProcess* serving = nullptr;
  for (ServiceProcess* w : workers_) {
    if (has(info(w), "warm@1")) serving = w;
  }
  ASSERT_NE(serving, nullptr) << "no worker loaded warm@1";
  const int64_t prefetched = info(serving).experts_prefetched();

  SetAlias("warmed", "warm", 2);
  EXPECT_TRUE(wait_until(serving, "warm@2", true)) << serving->LogTail();
  EXPECT_EQ(info(serving).experts_prefetched(), prefetched + 1);
  for (ServiceProcess* w : workers_) {
    if (w != serving) {
      EXPECT_FALSE(has(info(w), "warm@2")) << "a worker that never served warm loaded it";
    }
  }

  grpc::ClientContext context;
  v1::DeprecateExpertRequest deprecate;
  deprecate.set_name("warm");
  deprecate.set_version(1);
  v1::ExpertInfo deprecated;
  ASSERT_TRUE(registry_stub_->DeprecateExpert(&context, deprecate, &deprecated).ok());
  EXPECT_TRUE(wait_until(serving, "warm@1", false)) << serving->LogTail();
  // The moved alias's requests are served by the loaded version, without another fetch.
  const int64_t fetched = info(serving).experts_fetched();
  auto next = Unary(*dispatcher_stub_, request);
  ASSERT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.first_pass.adapter(), "warm@2");
  EXPECT_EQ(info(serving).experts_fetched(), fetched);
}

TEST_F(StackTest, PromptClassificationChoosesACategory) {
  v1::ClassifyRequest request;
  auto* m = request.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("Solve for x: 3x + 5 = 20.");
  request.mutable_adaptation()->mutable_prompt()->set_mode(v1::CLASSIFY_MODE_LABEL_SCORE);
  grpc::ClientContext context;
  v1::ClassifyResponse response;
  grpc::Status status = dispatcher_stub_->Classify(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(std::vector<std::string>({"code", "math", "reasoning", "other"}),
              ::testing::Contains(response.first_pass().category()));
  EXPECT_EQ(response.label_logprobs_size(), 4);
  EXPECT_GT(response.first_pass().duration_ms(), 0);
}

TEST_F(StackTest, FewShotAdaptStoresAMixtureThatLaterRequestsUse) {
  Publish("fa", 1, expert_files_["v1"]);
  Publish("fb", 1, expert_files_["v2"]);
  v1::AdaptRequest request;
  request.set_task("arith");
  for (auto [q, a] : {std::pair{"What is 2 + 3? Answer with a number.", "5"},
                      std::pair{"What is 4 + 4? Answer with a number.", "8"},
                      std::pair{"What is 10 - 7? Answer with a number.", "3"}}) {
    auto* e = request.add_examples();
    e->set_question(q);
    e->set_answer(a);
  }
  request.set_verifier(v1::VERIFIER_KIND_NUMERIC);
  request.add_experts("fa");
  request.add_experts("fb");
  request.set_population(4);
  request.set_generations(2);
  request.set_max_new_tokens(12);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::AdaptResponse response;
  grpc::Status status = dispatcher_stub_->Adapt(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << dispatcher_->LogTail();
  ASSERT_EQ(response.spec().experts_size(), 2);
  ASSERT_EQ(response.spec().alpha_size(), 2);
  EXPECT_NEAR(response.spec().alpha(0) + response.spec().alpha(1), 1.0, 1e-9);
  EXPECT_EQ(response.spec().experts(0).name(), "fa");
  // The base model once, then generations x population candidates, on every example.
  EXPECT_EQ(response.evaluations(), 3 + 2 * 4 * 3);
  EXPECT_GE(response.best_accuracy(), response.base_accuracy() - 1e-9);

  // Stored in the registry under the task name, and used by requests naming the task: the
  // answer equals the engine's with the same mixture.
  grpc::ClientContext get_context;
  v1::GetMixtureRequest get;
  get.set_name("arith");
  v1::Mixture stored;
  ASSERT_TRUE(registry_stub_->GetMixture(&get_context, get, &stored).ok());
  EXPECT_EQ(stored.spec().alpha(0), response.spec().alpha(0));
  auto generate = ChatRequest(kQuestion, 32);
  generate.mutable_adaptation()->set_few_shot_task("arith");
  auto got = Unary(*dispatcher_stub_, generate);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_EQ(got.first_pass.adapter(), "mixture:arith");
  std::vector<double> alpha(response.spec().alpha().begin(), response.spec().alpha().end());
  ASSERT_TRUE(engine_->AddMixture("arith", {"v1", "v2"}, alpha).ok());
  EXPECT_EQ(got.text, EngineAnswer(kQuestion, 32, "arith"));
}

// A worker killed while it prefills has sent nothing of the answer: the dispatcher retries on
// the other worker and the client gets one whole answer. The killed worker is then restarted
// where the dispatcher expects it.
TEST_F(StackTest, YWorkerKilledDuringPrefillIsRetriedElsewhereAndTheClientGetsOneAnswer) {
  // Long enough that its prefill on CPU takes seconds: time to find the worker and kill it.
  std::string question = "Repeat the last word of this text:";
  for (int i = 0; i < 70; ++i) question += " the quick brown fox jumps over the lazy dog,";
  const auto request = ChatRequest(question, 8);
  std::atomic<bool> text_seen{false}, done{false};
  Answer answer;
  std::thread client([&] {
    answer = Stream(*dispatcher_stub_, request,
                    [&](const Answer& a) { text_seen = text_seen || !a.text.empty(); });
    done = true;
  });
  const int victim = BusyWorker(std::chrono::seconds(120), [&] { return !done; });
  const bool nothing_sent = !text_seen;
  if (victim >= 0) workers_[victim]->process.Signal(SIGKILL);
  client.join();
  ASSERT_GE(victim, 0) << "no worker was seen prefilling";
  ASSERT_TRUE(nothing_sent) << "the answer had begun before the kill: not a prefill";
  ASSERT_TRUE(answer.status.ok()) << answer.status.error_message() << "\n"
                                  << dispatcher_->LogTail();
  EXPECT_EQ(answer.text, EngineAnswer(question, 8, ""))
      << "one whole answer, from the other worker";
  workers_[victim]->process.Wait(std::chrono::seconds(10));

  const std::string address = workers_[victim]->address;
  delete workers_[victim];
  auto restarted = StartWorker(victim, address);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  workers_[victim] = restarted->release();
}

// SIGTERM: the dispatcher stops taking calls, lets the streams in flight finish, and exits 0.
// It is then started again for the tests after this one.
TEST_F(StackTest, YDispatcherDrainsItsStreamsOnSigtermAndExits) {
  const std::string question = "Count from 1 to 500, separated by commas.";
  const auto request = ChatRequest(question, 48);
  std::atomic<int> messages{0};
  Answer answer;
  std::thread client(
      [&] { answer = Stream(*dispatcher_stub_, request, [&](const Answer&) { ++messages; }); });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (messages < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const int before_signal = messages;
  dispatcher_->process.Signal(SIGTERM);
  // Once its health no longer answers, it takes no new call.
  EXPECT_TRUE(t2::testing::WaitForHealth(dispatcher_->channel,
                                         grpc::health::v1::HealthCheckResponse::UNKNOWN,
                                         std::chrono::seconds(30)));
  auto refused = Unary(*dispatcher_stub_, ChatRequest(kQuestion, 4));
  EXPECT_FALSE(refused.status.ok()) << "a call after SIGTERM was served";
  client.join();
  ASSERT_TRUE(answer.status.ok()) << answer.status.error_message() << "\n"
                                  << dispatcher_->LogTail();
  EXPECT_EQ(answer.finish, v1::FINISH_REASON_LENGTH);
  EXPECT_GT(answer.messages, before_signal) << "the stream was not in flight at SIGTERM";
  EXPECT_EQ(answer.text, EngineAnswer(question, 48, "")) << "the stream in flight finished whole";
  const int status = dispatcher_->process.Wait(std::chrono::seconds(30));
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "wait status " << status;

  delete dispatcher_;
  dispatcher_ = nullptr;
  auto dispatcher = StartDispatcher();
  ASSERT_TRUE(dispatcher.ok()) << dispatcher.status();
  dispatcher_ = dispatcher->release();
}

// Last: it kills a worker.
TEST_F(StackTest, ZWorkerDyingMidStreamIsUnavailableAndLaterRequestsGoToTheOtherUntilNoneIsLeft) {
  // A long answer; find the worker generating it and kill it mid-stream.
  auto request = ChatRequest("Count from 1 to 500, separated by commas.", 400);
  std::atomic<int> messages{0};
  Answer interrupted;
  std::thread client([&] { interrupted = Stream(*dispatcher_stub_, request, [&](const Answer&) { ++messages; }); });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (messages < 3 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int victim = BusyWorker(std::chrono::seconds(5));
  if (victim < 0) {
    client.join();
    FAIL() << "no worker is generating";
  }
  const auto killed_at = std::chrono::steady_clock::now();
  workers_[victim]->process.Signal(SIGKILL);
  client.join();
  EXPECT_EQ(interrupted.status.error_code(), grpc::UNAVAILABLE) << interrupted.status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds(10));
  // What arrived is a prefix of the answer, never repeated by a retry elsewhere.
  const std::string full = EngineAnswer("Count from 1 to 500, separated by commas.", 400, "");
  EXPECT_FALSE(interrupted.text.empty());
  EXPECT_EQ(full.substr(0, interrupted.text.size()), interrupted.text);
  workers_[victim]->process.Wait(std::chrono::seconds(10));

  // Later requests go to the live worker (one that picks the dead one retries there: no
  // token had been sent).
  const std::string expected = EngineAnswer(kQuestion, 16, "");
  for (int i = 0; i < 4; ++i) {
    auto got = Unary(*dispatcher_stub_, ChatRequest(kQuestion, 16));
    ASSERT_TRUE(got.status.ok()) << "request " << i << ": " << got.status.error_message() << "\n"
                                 << dispatcher_->LogTail();
    EXPECT_EQ(got.text, expected);
  }

  // With every worker gone, a request is UNAVAILABLE at once, not at its deadline.
  const int survivor = 1 - victim;
  workers_[survivor]->process.Signal(SIGKILL);
  workers_[survivor]->process.Wait(std::chrono::seconds(10));
  const auto sent_at = std::chrono::steady_clock::now();
  auto none = Unary(*dispatcher_stub_, ChatRequest(kQuestion, 16));
  EXPECT_EQ(none.status.error_code(), grpc::UNAVAILABLE) << none.status.error_message();
  EXPECT_THAT(none.status.error_message(), HasSubstr("worker"));
  EXPECT_LT(std::chrono::steady_clock::now() - sent_at, std::chrono::seconds(30)) << "the deadline is 3 minutes";
  EXPECT_TRUE(none.text.empty());
}

}  // namespace
}  // namespace t2
