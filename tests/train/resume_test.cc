// Kill -9 while training, then run again with the same arguments: the run continues from its
// last checkpoint and ends with exactly the expert an uninterrupted run makes, with one
// metrics line per step. `t2 train` runs as a real process on the tiny chat model
// (make_train_fixtures.py), with sampled rollouts so that the sampling seeds are checked too.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/formats/safetensors.h"
#include "testing/process.h"
#include "testing/reference_data.h"
#include "testing/scratch_dir.h"

namespace t2::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* binary = std::getenv("T2_BINARY");
    ASSERT_NE(binary, nullptr);
    binary_ = binary;
    std::ofstream data(dir_.path() / "task.jsonl");
    for (int i = 0; i < 24; ++i) {
      data << nlohmann::json{{"question", absl::StrCat("What is ", i, " plus one?")}, {"answer", i + 1}}.dump() << "\n";
    }
  }

  std::vector<std::string> Args(const fs::path& work) const {
    return {binary_, "train", "--model", (testing::FixturesDir("train") / "tiny_chat").string(), "--data",
            (dir_.path() / "task.jsonl").string(), "--verifier", "numeric", "--work-dir", work.string(), "--steps", "6",
            "--batch-size", "4", "--micro-batch-size", "3", "--eval-every", "2", "--validation-size", "3",
            "--max-new-tokens", "6", "--temperature", "0.8", "--lr", "0.05", "--kl-coef", "0.1", "--threads", "1",
            "--reward-baseline", "mean"};
  }

  // `args` with `flag` set to `value`, replacing the value Args gave it: a flag given twice is
  // a usage error.
  static std::vector<std::string> With(std::vector<std::string> args, const std::string& flag,
                                       const std::string& value) {
    if (auto it = std::find(args.begin(), args.end(), flag); it != args.end()) {
      *std::next(it) = value;
    } else {
      args.insert(args.end(), {flag, value});
    }
    return args;
  }

  // Runs to completion (exit 0 expected) or until killed; returns the wait status.
  int Run(const fs::path& work, const std::string& crash_at = "", std::function<bool()> kill_when = nullptr) {
    if (!crash_at.empty()) setenv("T2_TRAINER_CRASH_AT", crash_at.c_str(), 1);
    ChildProcess child;
    const bool started = child.Start(Args(work), dir_.path() / "log");
    unsetenv("T2_TRAINER_CRASH_AT");
    EXPECT_TRUE(started);
    if (kill_when) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (child.running() && !kill_when() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      child.Signal(SIGKILL);
    }
    return child.Wait(std::chrono::seconds(300));
  }

  static fs::path RunDir(const fs::path& work) {
    for (const auto& entry : fs::directory_iterator(work)) return entry.path();
    return {};
  }

  static std::vector<nlohmann::json> Metrics(const fs::path& work) {
    std::vector<nlohmann::json> lines;
    std::ifstream in(RunDir(work) / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  // The expert's vectors, byte for byte (its created_at is the run's start, which differs).
  static std::map<std::string, std::string> Vectors(const fs::path& work) {
    auto file = formats::SafetensorsFile::Open(RunDir(work) / "expert.safetensors");
    EXPECT_TRUE(file.ok()) << file.status();
    std::map<std::string, std::string> out;
    if (!file.ok()) return out;
    for (const auto& t : file->tensors()) out[t.name] = std::string(t.data.begin(), t.data.end());
    return out;
  }

  std::string Log() const { return Tail(dir_.path() / "log"); }

  testing::ScratchDir dir_;
  std::string binary_;
};

TEST_F(ResumeTest, KilledRunsEndWithTheSameExpert) {
  const fs::path whole = dir_.path() / "whole", killed = dir_.path() / "killed";
  int status = Run(whole);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  const auto reference = Metrics(whole);
  ASSERT_EQ(reference.size(), 7u);  // step 0 (the initial expert's validation) and 6 steps

  // 1. Killed between step 3's metrics line and its checkpoint (the worst moment).
  status = Run(killed, "after_metrics:3");
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << Log();
  // 2. Killed from outside as soon as step 5's line appears (wherever it is then).
  status = Run(killed, "", [&] { return Metrics(killed).size() >= 6; });
  ASSERT_TRUE(WIFSIGNALED(status)) << Log();
  // 3. Runs to the end.
  status = Run(killed);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();

  EXPECT_EQ(Vectors(killed), Vectors(whole));
  const auto resumed = Metrics(killed);
  ASSERT_EQ(resumed.size(), reference.size());
  for (size_t i = 0; i < resumed.size(); ++i) {
    EXPECT_EQ(resumed[i]["step"], static_cast<int>(i));
    for (const char* key : {"loss", "reward_mean", "kl", "grad_norm", "validation_accuracy"}) {
      EXPECT_EQ(resumed[i].value(key, -9.0), reference[i].value(key, -9.0)) << "step " << i << " " << key;
    }
  }

  // A finished run is found finished: nothing is trained again, the expert is untouched.
  const auto before = fs::last_write_time(RunDir(whole) / "expert.safetensors");
  status = Run(whole);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  EXPECT_EQ(fs::last_write_time(RunDir(whole) / "expert.safetensors"), before);
  EXPECT_EQ(Metrics(whole).size(), reference.size());
}

TEST_F(ResumeTest, OtherArgumentsGetTheirOwnRun) {
  const fs::path work = dir_.path() / "work";
  std::vector<std::string> args = With(Args(work), "--steps", "1");
  ChildProcess first;
  ASSERT_TRUE(first.Start(args, dir_.path() / "log"));
  int status = first.Wait(std::chrono::seconds(300));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  args = With(args, "--seed", "5");
  ChildProcess second;
  ASSERT_TRUE(second.Start(args, dir_.path() / "log"));
  status = second.Wait(std::chrono::seconds(300));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  int runs = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(work)) ++runs;
  EXPECT_EQ(runs, 2);
}

TEST_F(ResumeTest, BadArgumentsExitTwoNamingTheFlag) {
  for (const auto& [flag, value, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--batch-size", "0", "--batch-size must be >= 1"},
           {"--lr", "-1", "--lr must be > 0"},
           {"--kl-coef", "nan", "--kl-coef: must be a number in [-1e+300, 1e+300], got 'nan'"},
           {"--kl-coef", "-1", "--kl-coef must be >= 0"},
           {"--verifier", "fuzzy", "--verifier"},
           {"--task", "math", "exactly one of --task"},
       }) {
    const std::vector<std::string> args = With(Args(dir_.path() / "bad"), flag, value);
    ChildProcess child;
    ASSERT_TRUE(child.Start(args, dir_.path() / "bad.log"));
    const int status = child.Wait(std::chrono::seconds(60));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << flag;
    EXPECT_THAT(Tail(dir_.path() / "bad.log"), HasSubstr(message)) << flag;
  }
}

}  // namespace
}  // namespace t2::train
