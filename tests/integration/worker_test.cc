// t2-worker as a real process on loopback: its streamed greedy output equals the engine's
// in-process output, every limit is enforced with the right code before anything is queued
// (and leaves the worker's state alone), the queue cap answers RESOURCE_EXHAUSTED at once,
// a cancelled client frees its slot, health tracks loading, and SIGTERM drains.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <functional>
#include <thread>

#include "integration/service_process.h"
#include "t2/engine/generator.h"
#include "t2/tokenizer/chat_template.h"
#include "t2/v1/worker.grpc.pb.h"
#include "testing/eventually.h"
#include "testing/reference_data.h"

namespace t2 {
namespace {

using grpc::health::v1::HealthCheckResponse;
using t2::testing::ServiceProcess;
using t2::testing::StartService;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kMaxContext = 256;

struct StreamResult {
  grpc::Status status;
  std::string text;
  std::vector<int32_t> tokens;
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  v1::Usage usage;
  int messages = 0;
};

StreamResult Collect(v1::Worker::Stub& stub, const v1::WorkerGenerateRequest& request, grpc::ClientContext* context,
                     const std::function<void(const StreamResult&)>& on_message = nullptr) {
  StreamResult out;
  auto reader = stub.Generate(context, request);
  v1::WorkerGenerateResponse message;
  while (reader->Read(&message)) {
    ++out.messages;
    out.text += message.text();
    out.tokens.insert(out.tokens.end(), message.token_ids().begin(), message.token_ids().end());
    if (message.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) out.finish = message.finish_reason();
    if (message.has_usage()) out.usage = message.usage();
    if (on_message) on_message(out);
  }
  out.status = reader->Finish();
  return out;
}

v1::WorkerGenerateRequest Chat(const std::string& user, int max_new) {
  v1::WorkerGenerateRequest r;
  auto* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content(user);
  r.set_max_new_tokens(max_new);
  return r;
}

v1::WorkerGenerateRequest Prompt(const std::string& text, int max_new) {
  v1::WorkerGenerateRequest r;
  r.set_prompt(text);
  r.set_max_new_tokens(max_new);
  return r;
}

// A prompt the model keeps continuing (no early end-of-sequence): holds a slot for a while.
v1::WorkerGenerateRequest LongRunning() {
  return Prompt("Count from 1 to 1000, separated by commas: 1, 2, 3, 4,", 200);
}

class WorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    binary_ = t2::testing::BinaryFromEnv("T2_WORKER_BINARY");
    dir_ = t2::testing::MakeTempDir("t2-worker-test");
    auto w = StartService(binary_,
                          {"--model", t2::testing::DefaultModelPath().string(), "--device", "cpu", "--max-batch-size",
                           "2", "--max-queue", "2", "--max-context", std::to_string(kMaxContext), "--expert-dir",
                           (dir_ / "experts").string()},
                          dir_, "worker");
    ASSERT_TRUE(w.ok()) << w.status();
    worker_ = w->release();
    auto g = engine::Generator::Create(
        {.model = t2::testing::DefaultModelPath(), .device = t2::model::DeviceSpec::Cpu()});
    ASSERT_TRUE(g.ok()) << g.status();
    engine_ = g->release();
  }
  static void TearDownTestSuite() {
    delete worker_;
    delete engine_;
    std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    ASSERT_NE(worker_, nullptr);
    stub_ = v1::Worker::NewStub(worker_->channel);
  }
  v1::WorkerInfo Info() {
    grpc::ClientContext context;
    v1::WorkerInfo info;
    EXPECT_TRUE(stub_->Info(&context, {}, &info).ok());
    return info;
  }
  // The engine's own greedy output for a chat turn, formatted the way the worker does.
  engine::GenerationResult EngineChat(const std::string& user, int max_new) {
    auto tmpl = tokenizer::ChatTemplate::FromJinja(engine_->tokenizer().chat_template());
    EXPECT_TRUE(tmpl.ok());
    std::vector<tokenizer::ChatMessage> messages = {{"user", user}};
    engine::GenerationRequest r;
    r.prompt_ids = engine_->tokenizer().Encode(*tmpl->Apply(messages, true), false);
    r.max_new_tokens = max_new;
    auto out = engine_->Generate(std::span(&r, 1));
    EXPECT_TRUE(out.ok()) << out.status();
    return (*out)[0];
  }
  int PromptTokens(const std::string& text) {
    return static_cast<int>(engine_->tokenizer().Encode(text, true).size());
  }

  static std::string binary_;
  static std::filesystem::path dir_;
  static ServiceProcess* worker_;
  static engine::Generator* engine_;
  std::unique_ptr<v1::Worker::Stub> stub_;
};
std::string WorkerTest::binary_;
std::filesystem::path WorkerTest::dir_;
ServiceProcess* WorkerTest::worker_ = nullptr;
engine::Generator* WorkerTest::engine_ = nullptr;

TEST_F(WorkerTest, StreamedGreedyChatEqualsTheEngine) {
  const v1::WorkerInfo before = Info();
  for (const char* question : {"What is the capital of France?", "Write a haiku about the sea."}) {
    auto expected = EngineChat(question, 48);
    grpc::ClientContext context;
    auto got = Collect(*stub_, Chat(question, 48), &context);
    ASSERT_TRUE(got.status.ok()) << got.status.error_message();
    EXPECT_EQ(got.tokens, expected.token_ids) << question;
    EXPECT_EQ(got.text, expected.text);
    EXPECT_GT(got.messages, 1) << "text must stream, not arrive in one message";
    EXPECT_EQ(got.usage.completion_tokens(), static_cast<int64_t>(expected.token_ids.size()));
    EXPECT_EQ(got.usage.prompt_tokens(), expected.prompt_tokens);
    EXPECT_EQ(got.finish, expected.finish_reason == engine::FinishReason::kEndOfSequence ? v1::FINISH_REASON_EOS
                                                                                          : v1::FINISH_REASON_LENGTH);
  }
  // The second chat turn began with the template's system prompt, which the worker's prefix
  // cache (on by default) kept from the first: it was reused, and changed nothing above.
  const v1::WorkerInfo after = Info();
  EXPECT_GT(after.prefix_cache_hits(), before.prefix_cache_hits());
  EXPECT_GE(after.prefix_reused_tokens() - before.prefix_reused_tokens(), 16);
  EXPECT_GT(after.prefix_cache_bytes(), 0);
}

TEST_F(WorkerTest, BadRequestsGetTheRightCodeAndChangeNothing) {
  // A prompt whose length is known, to put prompt + max_new_tokens at the context limit.
  std::string long_text;
  for (int i = 0; i < 60; ++i) long_text += "word ";
  const int prompt_tokens = PromptTokens(long_text);
  ASSERT_LT(prompt_tokens, kMaxContext - 8);
  const int at_limit = kMaxContext - prompt_tokens;

  struct Case {
    std::string name;
    std::function<void(v1::WorkerGenerateRequest&)> edit;
    grpc::StatusCode code;
    std::string message;  // a part of the error that names the field
  };
  const std::string sha(64, 'a');
  std::vector<Case> cases = {
      {"no input", [](auto& r) { r.clear_input(); }, grpc::INVALID_ARGUMENT, "input"},
      {"empty prompt", [](auto& r) { r.set_prompt(""); }, grpc::INVALID_ARGUMENT, "prompt"},
      {"empty chat", [](auto& r) { r.mutable_chat(); }, grpc::INVALID_ARGUMENT, "chat.messages"},
      {"unknown role",
       [](auto& r) {
         auto* m = r.mutable_chat()->add_messages();
         m->set_role("wizard");
         m->set_content("hi");
       },
       grpc::INVALID_ARGUMENT, "chat"},
      {"max_new_tokens 0", [](auto& r) { r.set_max_new_tokens(0); }, grpc::INVALID_ARGUMENT,
       "max_new_tokens"},
      {"max_new_tokens -1", [](auto& r) { r.set_max_new_tokens(-1); }, grpc::INVALID_ARGUMENT,
       "max_new_tokens"},
      {"context limit + 1",
       [&](auto& r) {
         r.set_prompt(long_text);
         r.set_max_new_tokens(at_limit + 1);
       },
       grpc::INVALID_ARGUMENT, "context of 256"},
      {"context limit + 100",
       [&](auto& r) {
         r.set_prompt(long_text);
         r.set_max_new_tokens(at_limit + 100);
       },
       grpc::INVALID_ARGUMENT, "context"},
      {"temperature -1", [](auto& r) { r.mutable_sampling()->set_temperature(-1); },
       grpc::INVALID_ARGUMENT, "temperature"},
      {"temperature 101", [](auto& r) { r.mutable_sampling()->set_temperature(101); },
       grpc::INVALID_ARGUMENT, "temperature"},
      {"top_p 1.5", [](auto& r) { r.mutable_sampling()->set_top_p(1.5); }, grpc::INVALID_ARGUMENT,
       "top_p"},
      {"top_p -0.1", [](auto& r) { r.mutable_sampling()->set_top_p(-0.1f); },
       grpc::INVALID_ARGUMENT, "top_p"},
      {"top_k -1", [](auto& r) { r.mutable_sampling()->set_top_k(-1); }, grpc::INVALID_ARGUMENT,
       "top_k"},
      {"17 stop strings",
       [](auto& r) {
         for (int i = 0; i < 17; ++i) r.add_stop("s" + std::to_string(i));
       },
       grpc::INVALID_ARGUMENT, "stop_strings"},
      {"empty stop string", [](auto& r) { r.add_stop(""); }, grpc::INVALID_ARGUMENT,
       "stop_strings[0]"},
      {"257-byte stop string", [](auto& r) { r.add_stop(std::string(257, 's')); },
       grpc::INVALID_ARGUMENT, "stop_strings[0]: 257 bytes"},
      // Refused by size before tokenizing (a tokenized prompt would fail "exceeds the context").
      {"prompt over 32 bytes per context token",
       [](auto& r) { r.set_prompt(std::string(32 * 256 + 1, 'x')); }, grpc::INVALID_ARGUMENT,
       "prompt: 8193 bytes, at most 8192"},
      {"chat over 32 bytes per context token",
       [](auto& r) {
         auto* m = r.mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content(std::string(8192, 'x'));
       },
       grpc::INVALID_ARGUMENT, "chat.messages: 8196 bytes, at most 8192"},
      {"1025 chat messages",
       [](auto& r) {
         for (int i = 0; i < 1025; ++i) {
           auto* m = r.mutable_chat()->add_messages();
           m->set_role("user");
           m->set_content("hi");
         }
       },
       grpc::INVALID_ARGUMENT, "chat.messages: 1025 messages, at most 1024"},
      {"17 experts in one spec",
       [&](auto& r) {
         for (int i = 0; i < 17; ++i) {
           auto* e = r.mutable_adapter()->add_experts();
           e->set_name("e" + std::to_string(i));
           e->set_version(1);
           e->set_sha256(sha);
           r.mutable_adapter()->add_alpha(1.0);
         }
       },
       grpc::INVALID_ARGUMENT, "adapter.experts: 17 experts, at most 16"},
      {"expert without name",
       [&](auto& r) {
         auto* e = r.mutable_adapter()->add_experts();
         e->set_version(1);
         e->set_sha256(sha);
       },
       grpc::INVALID_ARGUMENT, "adapter.experts[0].name"},
      {"expert version 0",
       [&](auto& r) {
         auto* e = r.mutable_adapter()->add_experts();
         e->set_name("math");
         e->set_sha256(sha);
       },
       grpc::INVALID_ARGUMENT, "adapter.experts[0].version"},
      {"expert sha256 not hex",
       [](auto& r) {
         auto* e = r.mutable_adapter()->add_experts();
         e->set_name("math");
         e->set_version(1);
         e->set_sha256("xyz");
       },
       grpc::INVALID_ARGUMENT, "adapter.experts[0].sha256"},
      {"alpha count",
       [&](auto& r) {
         for (int i = 0; i < 2; ++i) {
           auto* e = r.mutable_adapter()->add_experts();
           e->set_name("e" + std::to_string(i));
           e->set_version(1);
           e->set_sha256(sha);
         }
         r.mutable_adapter()->add_alpha(1.0);
       },
       grpc::INVALID_ARGUMENT, "adapter.alpha"},
      {"negative alpha",
       [&](auto& r) {
         auto* e = r.mutable_adapter()->add_experts();
         e->set_name("e");
         e->set_version(1);
         e->set_sha256(sha);
         r.mutable_adapter()->add_alpha(-1.0);
       },
       grpc::INVALID_ARGUMENT, "adapter.alpha[0]"},
      {"alpha without experts", [](auto& r) { r.mutable_adapter()->add_alpha(1.0); },
       grpc::INVALID_ARGUMENT, "adapter.alpha"},
      {"expert on a worker without registry",
       [&](auto& r) {
         auto* e = r.mutable_adapter()->add_experts();
         e->set_name("math");
         e->set_version(1);
         e->set_sha256(sha);
       },
       grpc::FAILED_PRECONDITION, "registry"},
      {"oversized message (5 MiB prompt)", [](auto& r) { r.set_prompt(std::string(5 << 20, 'x')); },
       grpc::RESOURCE_EXHAUSTED, ""},
  };
  const v1::WorkerInfo before = Info();
  for (const auto& c : cases) {
    auto request = Prompt("Hello", 4);
    c.edit(request);
    grpc::ClientContext context;
    auto got = Collect(*stub_, request, &context);
    EXPECT_EQ(got.status.error_code(), c.code) << c.name << ": " << got.status.error_message();
    EXPECT_THAT(got.status.error_message(), HasSubstr(c.message)) << c.name;
    EXPECT_TRUE(got.tokens.empty()) << c.name;
  }
  // The same limits one below and at the edge are accepted.
  for (int max_new : {at_limit - 1, at_limit}) {
    auto request = Prompt(long_text, max_new);
    request.add_stop(",");  // ends it early: the test is about admission, not length
    for (int i = 1; i < 16; ++i) request.add_stop("stop" + std::to_string(i));
    grpc::ClientContext context;
    auto got = Collect(*stub_, request, &context);
    EXPECT_TRUE(got.status.ok()) << "max_new_tokens " << max_new << ": " << got.status.error_message();
  }
  // Score's own limits.
  {
    v1::ScoreRequest s;
    s.set_prompt("Hello");
    v1::ScoreResponse reply;
    grpc::ClientContext c1;
    EXPECT_EQ(stub_->Score(&c1, s, &reply).error_code(), grpc::INVALID_ARGUMENT) << "no completions";
    for (int i = 0; i < 65; ++i) s.add_completions("x");
    grpc::ClientContext c2;
    EXPECT_EQ(stub_->Score(&c2, s, &reply).error_code(), grpc::INVALID_ARGUMENT) << "65 completions";
    s.clear_completions();
    s.add_completions("");
    grpc::ClientContext c3;
    EXPECT_EQ(stub_->Score(&c3, s, &reply).error_code(), grpc::INVALID_ARGUMENT) << "empty completion";
    s.clear_completions();
    s.add_completions(" the sea");
    s.add_completions(std::string(32 * 256 + 1, 'x'));
    grpc::ClientContext c5;
    grpc::Status long_completion = stub_->Score(&c5, s, &reply);
    EXPECT_EQ(long_completion.error_code(), grpc::INVALID_ARGUMENT)
        << "completion over the byte cap";
    EXPECT_THAT(long_completion.error_message(),
                HasSubstr("completions[1]: 8193 bytes, at most 8192"));
    s.clear_completions();
    s.add_completions(" the sea");
    s.add_completions(" the sea is");
    s.set_first_token_only(true);
    grpc::ClientContext c4;
    grpc::Status same = stub_->Score(&c4, s, &reply);
    EXPECT_EQ(same.error_code(), grpc::INVALID_ARGUMENT) << "first_token_only, completions alike";
    EXPECT_THAT(same.error_message(), HasSubstr("completions[0] and [1]"));
  }
  const v1::WorkerInfo after = Info();
  EXPECT_EQ(after.active(), 0);
  EXPECT_EQ(after.queued(), 0);
  EXPECT_EQ(after.experts_fetched(), before.experts_fetched());
  EXPECT_EQ(after.loaded_experts_size(), before.loaded_experts_size());
  // And the worker still answers correctly.
  grpc::ClientContext context;
  auto ok = Collect(*stub_, Chat("What is the capital of France?", 8), &context);
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.tokens, EngineChat("What is the capital of France?", 8).token_ids);
}

TEST_F(WorkerTest, FullQueueIsRejectedAtOnceAndCancellationFreesASlot) {
  // 2 slots + 2 queue places: four long requests fill them; the fifth is refused at once.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> clients;
  std::vector<StreamResult> results(4);
  std::atomic<int> first_tokens{0};
  for (int i = 0; i < 4; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    clients.emplace_back([&, i] {
      auto stub = v1::Worker::NewStub(worker_->channel);
      bool counted = false;
      results[i] = Collect(*stub, LongRunning(), contexts[i].get(), [&](const StreamResult& r) {
        if (!counted && !r.tokens.empty()) {
          counted = true;
          ++first_tokens;
        }
      });
    });
    // One at a time, each admitted (or queued behind full slots) before the next: the
    // first two hold the slots.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto info = Info();
      if (info.active() == std::min(i + 1, 2) && info.queued() == std::max(0, i - 1)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto info = Info();
  EXPECT_EQ(info.active(), 2);
  EXPECT_EQ(info.queued(), 2);
  auto start = std::chrono::steady_clock::now();
  grpc::ClientContext rejected_context;
  auto rejected = Collect(*stub_, Prompt("Hello", 4), &rejected_context);
  EXPECT_EQ(rejected.status.error_code(), grpc::RESOURCE_EXHAUSTED) << rejected.status.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2)) << "must not wait for a slot";

  // Cancelling a running client frees its slot for a queued one.
  contexts[0]->TryCancel();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (first_tokens < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(first_tokens.load(), 3) << "a queued request should have started";
  for (int i = 1; i < 4; ++i) contexts[i]->TryCancel();
  for (auto& t : clients) t.join();
  EXPECT_EQ(results[0].status.error_code(), grpc::CANCELLED);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(results[i].status.ok() || results[i].status.error_code() == grpc::CANCELLED)
        << "client " << i << ": " << results[i].status.error_message();
  }
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((Info().active() != 0 || Info().queued() != 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Info().active(), 0) << "cancelled streams must leave the batch";
}

TEST_F(WorkerTest, QueuedRequestWhoseDeadlinePassesIsDropped) {
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    clients.emplace_back([&, i] {
      auto stub = v1::Worker::NewStub(worker_->channel);
      Collect(*stub, LongRunning(), contexts[i].get());
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (Info().active() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  auto got = Collect(*stub_, Prompt("Hello", 4), &context);
  EXPECT_EQ(got.status.error_code(), grpc::DEADLINE_EXCEEDED);
  EXPECT_TRUE(got.tokens.empty());
  // The worker dropped it from its queue (it would otherwise sit there until a slot frees).
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Info().queued() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Info().queued(), 0);
  for (auto& c : contexts) c->TryCancel();
  for (auto& t : clients) t.join();
}

// A separate worker: this one is stopped by the test.
// Flags are checked before anything starts: out-of-range values were narrowed to int32
// (4294967297 became 1) or taken as they were (a negative queue, NaN seconds).
TEST(WorkerLifecycleTest, OutOfRangeFlagsExitNamingTheFlag) {
  const auto dir = t2::testing::MakeTempDir("t2-worker-flags");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--max-queue", "-1"}, "--max-queue: must be an integer in [0, 1048576], got '-1'"},
      {{"--max-batch-size", "4294967297"}, "--max-batch-size: must be an integer in [1, 4096]"},
      {{"--threads", "-2"}, "--threads: must be an integer in [0, 1024]"},
      {{"--max-loaded-experts", "0"}, "--max-loaded-experts: must be an integer in [1, 65536]"},
      {{"--max-context", "-5"}, "--max-context: must be an integer in"},
      {{"--drain-seconds", "nan"}, "--drain-seconds: must be a number in [0, 86400], got 'nan'"},
      {{"--drain-seconds", "-1"}, "--drain-seconds: must be a number in [0, 86400]"},
      {{"--svf-mode", "fast"}, "--svf-mode: must be one of auto|merged|factored, got 'fast'"},
      {{"stray"}, "not expected: stray"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [flags, message] = cases[i];
    std::vector<std::string> argv = {t2::testing::BinaryFromEnv("T2_WORKER_BINARY"), "--listen",
                                     "127.0.0.1:0", "--insecure-loopback"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const auto log = dir / ("flags-" + std::to_string(i) + ".log");
    t2::ChildProcess worker;
    ASSERT_TRUE(worker.Start(argv, log));
    const int status = worker.Wait(std::chrono::seconds(30));
    ASSERT_TRUE(status != -1 && WIFEXITED(status))
        << flags[0] << " did not exit: " << t2::Tail(log);
    EXPECT_EQ(WEXITSTATUS(status), 2) << flags[0];
    EXPECT_THAT(t2::Tail(log), HasSubstr(message)) << flags[0];
  }
}

// A peer registered this model's fingerprint under another name first, so the registry answers
// ALREADY_EXISTS however often it is asked. The worker retried every 0.5 s for as long as it
// ran ("will retry" from the first refusal on); now it logs the refusal once and serves.
TEST(WorkerLifecycleTest, ARefusedBaseModelRegistrationIsNotRetried) {
  const auto dir = t2::testing::MakeTempDir("t2-worker-refused");
  auto registry = StartService(t2::testing::BinaryFromEnv("T2_REGISTRY_BINARY"),
                               {"--root", (dir / "root").string()}, dir, "registry");
  ASSERT_TRUE(registry.ok()) << registry.status();
  const std::string worker_binary = t2::testing::BinaryFromEnv("T2_WORKER_BINARY");
  // The SVD cache is found by fingerprint: the copy below reuses the default model's.
  const std::vector<std::string> common = {
      "--device",        "cpu",
      "--max-context",   "256",
      "--registry",      (*registry)->address,
      "--svf-cache-dir", t2::testing::DefaultModelPath().parent_path().string()};
  auto with_model = [&](const std::filesystem::path& model) {
    std::vector<std::string> args = {"--model", model.string()};
    args.insert(args.end(), common.begin(), common.end());
    return args;
  };
  auto first =
      StartService(worker_binary, with_model(t2::testing::DefaultModelPath()), dir, "first");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_THAT((*first)->LogTail(), HasSubstr("registered base model")) << (*first)->LogTail();
  // The same weights under another file name: the same fingerprint, another model name.
  const auto renamed = dir / "renamed-model.gguf";
  std::filesystem::copy_file(t2::testing::DefaultModelPath(), renamed);
  auto second = StartService(worker_binary, with_model(renamed), dir, "second");
  ASSERT_TRUE(second.ok()) << second.status();
  const std::string log = (*second)->LogTail();
  EXPECT_THAT(log, HasSubstr("registry refused base model renamed-model"));
  EXPECT_THAT(log, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(log, Not(HasSubstr("will retry"))) << log;
}

TEST(WorkerLifecycleTest, NotServingWhileLoadingThenSigtermDrainsInFlightStreams) {
  const auto dir = t2::testing::MakeTempDir("t2-worker-drain");
  auto w = StartService(t2::testing::BinaryFromEnv("T2_WORKER_BINARY"),
                        {"--model", t2::testing::DefaultModelPath().string(), "--device", "cpu", "--max-context", "512"},
                        dir, "worker", /*wait_serving=*/false);
  ASSERT_TRUE(w.ok()) << w.status();
  auto& worker = **w;
  // The port file is written before the model loads.
  EXPECT_EQ(t2::testing::HealthOf(worker.channel), HealthCheckResponse::NOT_SERVING);
  auto stub = v1::Worker::NewStub(worker.channel);
  {
    grpc::ClientContext context;
    auto early = Collect(*stub, Prompt("Hello", 2), &context);
    EXPECT_EQ(early.status.error_code(), grpc::UNAVAILABLE) << early.status.error_message();
  }
  ASSERT_TRUE(t2::testing::WaitForHealth(worker.channel, HealthCheckResponse::SERVING, std::chrono::seconds(120)))
      << worker.LogTail();

  std::atomic<bool> streaming{false};
  StreamResult in_flight;
  grpc::ClientContext context;
  std::thread client([&] {
    in_flight = Collect(*stub, Prompt("Count from 1 to 1000, separated by commas: 1, 2, 3, 4,", 60), &context,
                        [&](const StreamResult&) { streaming = true; });
  });
  if (!t2::testing::Eventually([&] { return streaming.load(); }, std::chrono::minutes(2))) {
    context.TryCancel();
    client.join();
    FAIL() << "the stream never answered: " << in_flight.status.error_message() << worker.LogTail();
  }
  worker.process.Signal(SIGTERM);
  // Health turns NOT_SERVING and new calls are refused while the stream finishes.
  EXPECT_TRUE(t2::testing::WaitForHealth(worker.channel, HealthCheckResponse::NOT_SERVING, std::chrono::seconds(5)));
  {
    grpc::ClientContext context;
    auto late = Collect(*stub, Prompt("Hello", 2), &context);
    EXPECT_EQ(late.status.error_code(), grpc::UNAVAILABLE) << late.status.error_message();
  }
  client.join();
  EXPECT_TRUE(in_flight.status.ok()) << in_flight.status.error_message();
  EXPECT_EQ(in_flight.tokens.size(), 60u);
  EXPECT_EQ(in_flight.finish, v1::FINISH_REASON_LENGTH);
  int status = worker.process.Wait(std::chrono::seconds(30));
  ASSERT_NE(status, -1) << "worker did not exit after draining";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << worker.LogTail();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace t2
