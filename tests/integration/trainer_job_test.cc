// The trainer job (t2-trainer) as a real process against a real registry on loopback, on the
// tiny chat model (tests/train/make_train_fixtures.py). The task's answers are the base
// model's own greedy answers, so that the base model is right on all of them:
//   - with no alias the current version is the base model; a freshly trained expert (close to
//     the constant one it starts from) is no better: kept, exit 3, nothing published;
//   - with the alias on a harmful expert (every MLP matrix scaled by 0.05) the trained one is
//     much better: published as the next version and the alias moved, exit 0;
//   - killed right after the registry accepted the version and run again: one version, alias
//     moved, exit 0; a finished job run again changes nothing;
//   - the registry unreachable: exit 1 at once.
// Each run pushes its result to a real Pushgateway, read back as Prometheus would scrape it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "integration/service_process.h"
#include "nlohmann/json.hpp"
#include "t2/engine/generator.h"
#include "t2/registry_client/registry_client.h"
#include "t2/rpc/security.h"
#include "t2/tasks/task.h"
#include "t2/train/evaluate.h"
#include "testing/process.h"
#include "testing/reference_data.h"

namespace t2 {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<grpc::Channel> LoopbackChannel(const std::string& address) {
  return grpc::CreateChannel(address, rpc::LoopbackChannelCredentials());
}
using ::testing::HasSubstr;

// A port free now (the Pushgateway cannot listen on port 0 and say which it got).
int FreePort() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  const bool ok = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(s, reinterpret_cast<sockaddr*>(&a), &n) == 0;
  close(s);
  return ok ? ntohs(a.sin_port) : 0;
}

// A Prometheus Pushgateway (Debian's prometheus-pushgateway) on loopback.
class Pushgateway {
 public:
  explicit Pushgateway(const fs::path& dir) : port_(FreePort()) {
    started_ = process_.Start({testing::BinaryFromEnv("T2_PUSHGATEWAY"),
                               absl::StrCat("--web.listen-address=127.0.0.1:", port_)},
                              dir / "pushgateway.log");
    for (int i = 0; started_ && i < 300 && !ready_; ++i) {  // at most 30 s
      auto r = Client().Get("/-/ready");
      ready_ = r && r->status == 200;
      if (!ready_) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  bool ready() const { return ready_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // The value of the trainer's series `name` (extra labels sorted, e.g. model="current", first)
  // for task "echo"; -1 when there is none.
  double Sample(const std::string& name, const std::string& extra_labels = "") {
    auto r = Client().Get("/metrics");
    if (!r || r->status != 200) return -1;
    const std::string series =
        absl::StrCat(name, "{instance=\"\",job=\"t2-trainer\",", extra_labels, "task=\"echo\"} ");
    for (const std::string& line : std::vector<std::string>(absl::StrSplit(r->body, '\n'))) {
      double v = -1;
      if (line.rfind(series, 0) == 0 && absl::SimpleAtod(line.substr(series.size()), &v)) return v;
    }
    return -1;
  }

 private:
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    return c;
  }
  int port_;
  ChildProcess process_;
  bool started_ = false, ready_ = false;
};

struct Exit {
  int code = -1;  // -SIGNAL when killed
  std::string log;
};

class TrainerJobTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::MakeTempDir("t2-trainer-job-test");
    model_ = testing::FixturesDir("train") / "tiny_chat";
    auto registry = testing::StartService(testing::BinaryFromEnv("T2_REGISTRY_BINARY"),
                                          {"--root", (dir_ / "registry").string()}, dir_, "registry");
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = registry->release();
    WriteTask();
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  // 40 questions answered by the base model itself (greedy, the job's own decoding).
  static void WriteTask() {
    auto generator = engine::Generator::Create({.model = model_,
                                                .device = t2::model::DeviceSpec::Cpu(),
                                                .cpu_threads = 1,
                                                .svf = engine::SvfOptions{}});
    ASSERT_TRUE(generator.ok()) << generator.status();
    tasks::Task task{.name = "echo", .max_new_tokens = 6};
    for (int i = 0; i < 60; ++i) {
      task.test.push_back({absl::StrCat(i), absl::StrCat("Tell me about the number ", i, "."), ""});
    }
    auto answers = train::Evaluate(**generator, task, task.test, "");
    ASSERT_TRUE(answers.ok()) << answers.status();
    std::ofstream out(dir_ / "echo.jsonl");
    int written = 0;
    for (size_t i = 0; i < task.test.size() && written < 40; ++i) {
      if (answers->answers[i].find_first_not_of(" \t\n") == std::string::npos) continue;  // empty after trimming
      out << nlohmann::json{{"question", task.test[i].question}, {"answer", answers->answers[i]}}.dump() << "\n";
      ++written;
    }
    ASSERT_EQ(written, 40);
  }

  static Exit RunJob(const fs::path& work, const std::string& registry, const std::string& crash_at = "",
                     const std::string& pushgateway = "", const std::vector<std::string>& extra = {}) {
    if (!crash_at.empty()) setenv("T2_TRAINER_CRASH_AT", crash_at.c_str(), 1);
    ChildProcess child;
    const fs::path log = work.string() + ".log";
    std::vector<std::string> argv = {testing::BinaryFromEnv("T2_TRAINER_BINARY"),
                                     "--registry",
                                     registry,
                                     "--model",
                                     model_.string(),
                                     "--data",
                                     (dir_ / "echo.jsonl").string(),
                                     "--verifier",
                                     "exact",
                                     "--max-new-tokens",
                                     "6",
                                     "--validation-fraction",
                                     "0.2",
                                     "--test-fraction",
                                     "0.4",
                                     "--work-dir",
                                     work.string(),
                                     "--steps",
                                     "2",
                                     "--batch-size",
                                     "4",
                                     "--eval-every",
                                     "2",
                                     "--threads",
                                     "1",
                                     "--pushgateway",
                                     pushgateway.empty() ? "127.0.0.1:1" : pushgateway,
                                     "--report",
                                     work.string() + ".report.json",
                                     "--insecure-loopback"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const bool started = child.Start(argv, log);
    unsetenv("T2_TRAINER_CRASH_AT");
    EXPECT_TRUE(started);
    const int status = child.Wait(std::chrono::seconds(300));
    Exit e;
    e.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? -WTERMSIG(status) : -1000;
    e.log = Tail(log, 6000);
    return e;
  }

  static std::vector<t2::v1::ExpertInfo> Versions() {
    auto v =
        registry::RegistryClient(LoopbackChannel(registry_->address)).ListExperts("echo-svf", true);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::vector<t2::v1::ExpertInfo>{};
  }

  static nlohmann::json Report(const fs::path& work) {
    for (const auto& entry : fs::directory_iterator(work)) {
      if (entry.is_directory()) return testing::ReadJson(entry.path() / "report.json");
    }
    return {};
  }

  static inline fs::path dir_, model_;
  static inline testing::ServiceProcess* registry_ = nullptr;
};

TEST_F(TrainerJobTest, KeepsTheBaseModelPublishesABetterExpertOnceAndFailsWithoutARegistry) {
  Pushgateway gateway(dir_);
  ASSERT_TRUE(gateway.ready()) << Tail(dir_ / "pushgateway.log");

  // 1. No alias: the candidate is judged against the base model, which it does not beat.
  Exit kept = RunJob(dir_ / "kept", registry_->address, "", gateway.address());
  ASSERT_EQ(kept.code, 3) << kept.log;
  EXPECT_THAT(kept.log, HasSubstr("gate against base"));
  EXPECT_THAT(kept.log, HasSubstr("gain too small"));
  EXPECT_TRUE(Versions().empty());
  const nlohmann::json kept_report = Report(dir_ / "kept");
  EXPECT_EQ(kept_report["outcome"], "kept_current");
  // What the run pushed: a success that published nothing, with the gate's accuracies.
  EXPECT_EQ(gateway.Sample("t2_trainer_last_run_failed"), 0);
  EXPECT_GT(gateway.Sample("t2_trainer_last_success_timestamp_seconds"), 1.7e9);
  EXPECT_EQ(gateway.Sample("t2_trainer_published"), 0);
  EXPECT_DOUBLE_EQ(gateway.Sample("t2_trainer_test_accuracy", "model=\"candidate\","),
                   kept_report["gate"]["candidate_accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(gateway.Sample("t2_trainer_test_accuracy", "model=\"current\","),
                   kept_report["gate"]["current_accuracy"].get<double>());
  EXPECT_GE(gateway.Sample("t2_trainer_validation_accuracy"), 0);
  EXPECT_GE(gateway.Sample("t2_trainer_reward_mean"), -1);
  // The same finished job where a kept version must not look like a failure (a CronJob):
  // exit 0 with the same decision; a status that means failure is bad usage.
  Exit kept_zero = RunJob(dir_ / "kept", registry_->address, "", gateway.address(), {"--kept-exit-code", "0"});
  EXPECT_EQ(kept_zero.code, 0) << kept_zero.log;
  EXPECT_THAT(kept_zero.log, HasSubstr("kept the current version"));
  EXPECT_EQ(RunJob(dir_ / "kept", registry_->address, "", "", {"--kept-exit-code", "1"}).code, 2);
  EXPECT_TRUE(Versions().empty());
  EXPECT_GT(gateway.Sample("t2_trainer_last_run_timestamp_seconds"), 1.7e9);
  EXPECT_GE(gateway.Sample("t2_trainer_training_seconds"), 0);

  // 2. The alias on a harmful expert: echo-svf@1 scales every MLP matrix by 0.05.
  const fs::path harmful = dir_ / "harmful.safetensors";
  ChildProcess maker;
  ASSERT_TRUE(maker.Start({testing::BinaryFromEnv("T2_BINARY"), "expert", "constant", "--model", model_.string(),
                           "--value", "0.05", "--normalization", "none", "--task", "echo", "--device", "cpu",
                           "--out", harmful.string()},
                          dir_ / "maker.log"));
  ASSERT_EQ(maker.Wait(std::chrono::seconds(120)), 0) << Tail(dir_ / "maker.log");
  registry::RegistryClient client(LoopbackChannel(registry_->address));
  ASSERT_TRUE(client.Publish("echo-svf", 1, harmful).ok());
  ASSERT_TRUE(client.SetAlias("echo", "echo-svf", 1).ok());

  // Killed right after the registry accepted the new version, before the alias moved.
  Exit crashed = RunJob(dir_ / "better", registry_->address, "published");
  ASSERT_EQ(crashed.code, -SIGKILL) << crashed.log;
  ASSERT_EQ(Versions().size(), 2u);
  auto alias = client.GetAlias("echo");
  ASSERT_TRUE(alias.ok() && alias->has_value());
  EXPECT_EQ((*alias)->target().version(), 1);

  // Run again: the evaluations and the decision are reused, the version found, the alias moved.
  Exit published = RunJob(dir_ / "better", registry_->address, "", gateway.address());
  ASSERT_EQ(published.code, 0) << published.log;
  EXPECT_EQ(gateway.Sample("t2_trainer_published"), 1);
  const double succeeded = gateway.Sample("t2_trainer_last_success_timestamp_seconds");
  EXPECT_THAT(published.log, HasSubstr("already holds this expert"));
  const auto versions = Versions();
  ASSERT_EQ(versions.size(), 2u);
  alias = client.GetAlias("echo");
  ASSERT_TRUE(alias.ok() && alias->has_value());
  EXPECT_EQ((*alias)->target().version(), 2);
  const nlohmann::json report = Report(dir_ / "better");
  EXPECT_EQ(report["outcome"], "published");
  EXPECT_EQ(report["expert"], "echo-svf@2");
  EXPECT_GT(report["gate"]["candidate_accuracy"].get<double>(), report["gate"]["current_accuracy"].get<double>());
  EXPECT_LT(report["gate"]["p_value"].get<double>(), 0.05);
  // The published expert carries the result in its metadata.
  nlohmann::json metrics = nlohmann::json::parse(versions[1].metrics_json());
  EXPECT_EQ(metrics["gate"]["n"], report["gate"]["n"]);
  EXPECT_EQ(metrics["training"]["steps"], 2);
  EXPECT_EQ(metrics["base_fingerprint"].get<std::string>().size(), 64u);
  EXPECT_EQ(versions[1].sha256(), report["sha256"]);

  // A finished job run again: nothing changes, and --report still gets the report.
  fs::remove(dir_ / "better.report.json");
  Exit again = RunJob(dir_ / "better", registry_->address);
  ASSERT_EQ(again.code, 0) << again.log;
  EXPECT_THAT(again.log, HasSubstr("finished before"));
  EXPECT_EQ(Versions().size(), 2u);
  EXPECT_EQ(testing::ReadJson(dir_ / "better.report.json"), report);

  // 3. No registry: exit 1 before any training. The push says the run failed and keeps the
  // last success's time and figures.
  Exit down = RunJob(dir_ / "down", "127.0.0.1:1", "", gateway.address());
  EXPECT_EQ(down.code, 1) << down.log;
  EXPECT_THAT(down.log, HasSubstr("UNAVAILABLE"));
  EXPECT_FALSE(fs::exists(dir_ / "down"));
  EXPECT_EQ(gateway.Sample("t2_trainer_last_run_failed"), 1);
  EXPECT_GE(gateway.Sample("t2_trainer_last_run_timestamp_seconds"), succeeded);
  EXPECT_EQ(gateway.Sample("t2_trainer_last_success_timestamp_seconds"), succeeded);
  EXPECT_EQ(gateway.Sample("t2_trainer_published"), 1);
  // A gateway that cannot be reached does not change the exit status.
  EXPECT_THAT(kept.log + crashed.log, ::testing::Not(HasSubstr("metrics not pushed")));
  Exit no_gateway = RunJob(dir_ / "down", "127.0.0.1:1");
  EXPECT_EQ(no_gateway.code, 1) << no_gateway.log;
  EXPECT_THAT(no_gateway.log, HasSubstr("metrics not pushed: pushgateway 127.0.0.1:1"));
}

}  // namespace
}  // namespace t2
