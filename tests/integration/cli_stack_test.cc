// The t2 client subcommands against a real stack (registry, one worker, dispatcher as
// processes on loopback), each run as a separate t2 process as a user runs it: `t2 experts`
// publish/list/alias/get/deprecate, `t2 generate --server` with a registry expert and with an
// unknown one, `t2 adapt` over two experts and generation with the task it stored. (Their
// usage errors, which never reach a stack, are in cli_test.)
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "integration/service_process.h"
#include "t2/common/process.h"
#include "t2/common/sha256.h"
#include "t2/rpc/security.h"
#include "t2/rpc/throwaway_pki.h"
#include "testing/reference_data.h"

namespace t2 {
namespace {

using t2::testing::ServiceProcess;
using t2::testing::StartService;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A loopback port nothing listens on: bound to learn a free number, then closed.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  return ok ? ntohs(address.sin_port) : 1;
}

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

class CliStackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = t2::testing::MakeTempDir("t2-cli-stack-test");
    const std::string model = t2::testing::DefaultModelPath().string();
    // Two experts that change the model (every singular value x0.9 and x1.1), written while
    // the services start.
    std::vector<ChildProcess> makers(2);
    const std::pair<const char*, const char*> values[] = {{"low", "0.9"}, {"high", "1.1"}};
    for (size_t i = 0; i < makers.size(); ++i) {
      const auto path = dir_ / (std::string(values[i].first) + ".safetensors");
      ASSERT_TRUE(makers[i].Start({t2::testing::BinaryFromEnv("T2_BINARY"), "expert", "constant", "--model", model,
                                   "--value", values[i].second, "--normalization", "none", "--task", "math",
                                   "--device", "cpu", "--out", path.string()},
                                  dir_ / "expert.log"));
      files_[values[i].first] = path;
    }
    // The stack runs as in production: TLS, each service calling the others with its own
    // certificate, roles from an auth file; the t2 runs below present the `client` certificate
    // (or a token made by `t2 token`).
    ASSERT_TRUE(
        t2::rpc::WriteThrowawayPki(pki(), {.names = {"registry", "worker", "dispatcher", "client"}})
            .ok());
    std::ofstream(pki() / "auth") << "cert dispatcher read,adapt,generate\ncert worker read,admin\n"
                                  << "cert client generate,adapt,publish,admin,read\n";
    auto client = t2::rpc::MakeChannelCredentials(Identity("client"));
    ASSERT_TRUE(client.ok()) << client.status();
    auto registry = StartService(t2::testing::BinaryFromEnv("T2_REGISTRY_BINARY"),
                                 Secured("registry", {"--root", (dir_ / "registry").string()}),
                                 dir_, "registry", true, std::chrono::seconds(120), *client);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = registry->release();
    auto worker = StartService(
        t2::testing::BinaryFromEnv("T2_WORKER_BINARY"),
        Secured("worker", {"--model", model, "--device", "cpu", "--registry", registry_->address,
                           "--max-batch-size", "4", "--max-context", "1024", "--expert-dir",
                           (dir_ / "worker-experts").string()}),
        dir_, "worker", true, std::chrono::seconds(120), *client);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = worker->release();
    auto dispatcher = StartService(
        t2::testing::BinaryFromEnv("T2_DISPATCHER_BINARY"),
        Secured("dispatcher", {"--registry", registry_->address, "--worker", worker_->address}),
        dir_, "dispatcher", true, std::chrono::seconds(120), *client);
    ASSERT_TRUE(dispatcher.ok()) << dispatcher.status();
    dispatcher_ = dispatcher->release();
    for (auto& maker : makers) {
      int status = maker.Wait(std::chrono::minutes(5));
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << t2::Tail(dir_ / "expert.log");
    }
  }
  static void TearDownTestSuite() {
    delete dispatcher_;
    delete worker_;
    delete registry_;
    dispatcher_ = nullptr;
    worker_ = nullptr;
    registry_ = nullptr;
    std::filesystem::remove_all(dir_);
  }
  void SetUp() override { ASSERT_NE(dispatcher_, nullptr) << "the stack did not start"; }

  static std::filesystem::path pki() { return dir_ / "pki"; }
  static t2::rpc::Security Identity(const std::string& name) {
    return {.cert_file = pki() / (name + ".pem"),
            .key_file = pki() / (name + ".key"),
            .ca_file = pki() / "ca.pem"};
  }
  // A service's flags plus TLS with its own certificate. Client certificates are verified when
  // presented but not required, so that callers with only a token get in too.
  static std::vector<std::string> Secured(const std::string& name, std::vector<std::string> args) {
    const t2::rpc::Security s = Identity(name);
    args.insert(args.end(), {"--tls-cert", s.cert_file, "--tls-key", s.key_file, "--tls-ca",
                             s.ca_file, "--auth-file", (pki() / "auth").string()});
    return args;
  }
  // The client certificate's flags, which T2() adds to every run.
  static std::vector<std::string> AsClient() {
    const t2::rpc::Security s = Identity("client");
    return {"--tls-ca", s.ca_file, "--tls-cert", s.cert_file, "--tls-key", s.key_file};
  }

  // Runs `t2 ARGS...` as a process, as the `client` certificate unless `credentials` says
  // otherwise; its output goes to a file that is read back.
  static CliRun T2(const std::vector<std::string>& args) { return T2As(args, AsClient()); }
  static CliRun T2As(const std::vector<std::string>& args,
                     const std::vector<std::string>& credentials) {
    static std::atomic<int> counter{0};
    const auto log = dir_ / ("t2-" + std::to_string(counter++) + ".log");
    std::vector<std::string> argv = {t2::testing::BinaryFromEnv("T2_BINARY")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), credentials.begin(), credentials.end());
    ChildProcess child;
    CliRun run;
    if (!child.Start(argv, log)) return run;
    int status = child.Wait(std::chrono::minutes(3));
    if (status == -1) status = child.Stop(std::chrono::seconds(1));
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.output = Slurp(log);
    return run;
  }

  // `t2 experts COMMAND --registry ADDR ARGS...`
  static CliRun Experts(const std::string& command, std::vector<std::string> args) {
    args.insert(args.begin(), {"experts", command, "--registry", registry_->address});
    return T2(args);
  }

  static void PublishAndAlias(const std::string& name, const std::string& file, const std::string& alias) {
    CliRun r = Experts("publish", {"--name", name, "--version", "1", files_[file].string()});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = Experts("alias", {alias, name + "@1"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  static std::filesystem::path dir_;
  static std::map<std::string, std::filesystem::path> files_;
  static ServiceProcess* registry_;
  static ServiceProcess* worker_;
  static ServiceProcess* dispatcher_;
};
std::filesystem::path CliStackTest::dir_;
std::map<std::string, std::filesystem::path> CliStackTest::files_;
ServiceProcess* CliStackTest::registry_ = nullptr;
ServiceProcess* CliStackTest::worker_ = nullptr;
ServiceProcess* CliStackTest::dispatcher_ = nullptr;

TEST_F(CliStackTest, ExpertsPublishListAliasGetDeprecate) {
  const std::string blob = Slurp(files_["low"]);
  const std::string sha = Sha256Hex(blob);

  CliRun r = Experts("publish", {"--name", "scaled", "--version", "1", files_["low"].string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("published scaled@1 sha256 " + sha));

  r = Experts("alias", {"fav", "scaled@1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("alias fav -> scaled@1"));

  r = Experts("list", {});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* column :
       {"NAME", "VERSION", "SHA256", "SIZE", "TASK", "BASE MODEL", "DEPRECATED", "PUBLISHED BY"}) {
    EXPECT_THAT(r.output, HasSubstr(column));
  }
  // The registry recorded who published: the identity of the `client` certificate.
  int scaled_rows = 0;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    if (!absl::StartsWith(line, "scaled ")) continue;
    ++scaled_rows;
    EXPECT_TRUE(absl::EndsWith(absl::StripTrailingAsciiWhitespace(line), " client")) << line;
  }
  EXPECT_EQ(scaled_rows, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(sha.substr(0, 12)));
  EXPECT_THAT(r.output, Not(HasSubstr(sha.substr(0, 13))));
  EXPECT_THAT(r.output, HasSubstr(std::to_string(blob.size())));
  EXPECT_THAT(r.output, HasSubstr("math"));
  EXPECT_THAT(r.output, HasSubstr("fav -> scaled@1"));

  // Through the alias and pinned: the bytes come back unchanged.
  const auto out = dir_ / "downloaded.safetensors";
  r = Experts("get", {"fav", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("scaled@1"));
  EXPECT_THAT(r.output, HasSubstr("verified"));
  EXPECT_EQ(Slurp(out), blob);
  const auto pinned = dir_ / "pinned.safetensors";
  r = Experts("get", {"scaled@1", "--out", pinned.string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Slurp(pinned), blob);

  // Refusals are exit 1 with the gRPC code name; a failed download leaves no file behind.
  const auto missing = dir_ / "missing.safetensors";
  r = Experts("get", {"no-such-expert", "--out", missing.string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("t2 experts: NOT_FOUND: "));
  EXPECT_FALSE(std::filesystem::exists(missing));
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_THAT(entry.path().filename().string(), Not(HasSubstr("missing.safetensors"))) << "temp file left behind";
  }
  r = Experts("publish", {"--name", "scaled", "--version", "1", files_["high"].string()});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ALREADY_EXISTS"));

  r = Experts("deprecate", {"scaled@1"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("deprecated scaled@1"));
  r = Experts("list", {"--name", "scaled"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no expert named scaled"));
  r = Experts("list", {"--name", "scaled", "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(sha.substr(0, 12)));
  EXPECT_THAT(r.output, HasSubstr("yes"));
  r = Experts("alias", {"other", "scaled@1"});
  EXPECT_EQ(r.exit_code, 1) << "an alias cannot point at a deprecated version\n" << r.output;

  r = Experts("alias", {"--delete", "fav"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Experts("list", {});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("fav ->")));
}

TEST_F(CliStackTest, GenerateThroughTheDispatcherWithARegistryExpert) {
  PublishAndAlias("gen", "low", "gen-alias");
  CliRun r = T2({"generate", "--server", dispatcher_->address, "--chat", "--prompt", "What is 2 plus 3?",
              "--expert", "gen-alias", "--max-new-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n" << dispatcher_->LogTail();
  EXPECT_THAT(r.output, HasSubstr("first pass: strategy expert"));
  EXPECT_THAT(r.output, HasSubstr("adapter gen@1"));
  EXPECT_THAT(r.output, HasSubstr("[t2] finish: "));
  // Some answer text besides the [t2] lines.
  std::string text;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("[t2]", 0) != 0) text += line;
  }
  EXPECT_FALSE(text.empty()) << r.output;

  r = T2({"generate", "--server", dispatcher_->address, "--prompt", "hi", "--expert", "no-such", "--max-new-tokens",
          "4"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("t2 generate: NOT_FOUND: "));
}

TEST_F(CliStackTest, AdaptFitsAMixtureThatGenerateUsesByTask) {
  PublishAndAlias("lower", "low", "math");
  PublishAndAlias("higher", "high", "code");
  const auto examples = dir_ / "examples.jsonl";
  std::ofstream(examples) << R"({"question": "What is 2 plus 3? Answer with a number.", "answer": "5"})" << "\n"
                          << R"({"question": "What is 4 plus 4? Answer with a number.", "answer": "8"})" << "\n\n"
                          << R"({"question": "What is 10 minus 3? Answer with a number.", "answer": 7})" << "\n";
  CliRun r = T2({"adapt", "--server", dispatcher_->address, "--task", "arith", "--examples",
                 examples.string(), "--verifier", "numeric", "--experts", "math,code",
                 "--population", "2", "--generations", "1", "--max-new-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n" << dispatcher_->LogTail();
  EXPECT_THAT(r.output, HasSubstr("task arith: mixture of 2 experts"));
  EXPECT_THAT(r.output, HasSubstr("lower@1"));
  EXPECT_THAT(r.output, HasSubstr("higher@1"));
  EXPECT_THAT(r.output, HasSubstr("alpha "));
  EXPECT_THAT(r.output, HasSubstr("best accuracy "));
  // 3 base answers + 1 generation x 2 candidates x 3 examples: the search itself is
  // stack_test's (4 x 2); here it is the tool's flags, examples file and report.
  EXPECT_THAT(r.output, HasSubstr("9 evaluations in "));

  r = T2({"generate", "--server", dispatcher_->address, "--chat", "--prompt", "What is 6 plus 1?", "--task", "arith",
          "--max-new-tokens", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.output << "\n" << dispatcher_->LogTail();
  EXPECT_THAT(r.output, HasSubstr("strategy few_shot"));
  EXPECT_THAT(r.output, HasSubstr("adapter mixture:arith"));

  r = T2({"experts", "mixtures", "--registry", registry_->address});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("NAME"));
  EXPECT_THAT(r.output, HasSubstr("arith"));
  EXPECT_THAT(r.output, HasSubstr("lower@1,higher@1"));
  EXPECT_THAT(r.output, HasSubstr("cem"));

  // Deleted: the task is gone for the dispatcher too (its cache follows the registry's Watch).
  r = T2({"experts", "mixtures", "--delete", "arith", "--registry", registry_->address});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("deleted mixture arith"));
  r = T2({"experts", "mixtures", "--delete", "arith", "--registry", registry_->address});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("NOT_FOUND"));
  r = T2({"experts", "mixtures", "--registry", registry_->address});
  EXPECT_THAT(r.output, HasSubstr("no mixtures"));
  // The event reaches the dispatcher a moment after the delete returns.
  for (int attempt = 0; attempt < 20; ++attempt) {
    r = T2({"generate", "--server", dispatcher_->address, "--chat", "--prompt", "What is 6 plus 1?", "--task",
            "arith", "--max-new-tokens", "8"});
    if (r.exit_code != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("NOT_FOUND"));
}

TEST_F(CliStackTest, HealthReportsServingAndFailsOtherwise) {
  // The server as a whole, and each service by its full name (what a Kubernetes gRPC probe
  // with `service:` asks).
  const std::pair<const ServiceProcess*, const char*> services[] = {
      {registry_, "t2.v1.Registry"}, {worker_, "t2.v1.Worker"}, {dispatcher_, "t2.v1.Dispatcher"}};
  for (const auto& [s, name] : services) {
    for (const std::string service : {"", name}) {
      CliRun r = T2({"health", "--server", s->address, "--service", service});
      EXPECT_EQ(r.exit_code, 0) << name << " '" << service << "': " << r.output;
      EXPECT_THAT(r.output, HasSubstr(": SERVING"));
    }
  }
  CliRun r = T2({"health", "--server", worker_->address, "--service", "t2.v1.NoSuchService"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("NOT_FOUND"));
  // Nothing listens on a port the kernel just handed out and took back: waiting gives up.
  const int closed = ClosedPort();
  const auto start = std::chrono::steady_clock::now();
  r = T2({"health", "--server", "127.0.0.1:" + std::to_string(closed), "--wait-s", "1", "--timeout", "0.2"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("UNAVAILABLE"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(1)) << "--wait-s 1 kept polling";
}

// The real services check credentials and roles: what t2 (any client) gets without a
// certificate or token, with a token made by `t2 token`, and with a role it lacks.
TEST_F(CliStackTest, ServicesRequireCredentialsAndTheRoleEachCallNeeds) {
  const std::string reg = registry_->address, disp = dispatcher_->address;
  const std::string ca = (pki() / "ca.pem").string();
  CliRun r = T2As({"experts", "list", "--registry", reg}, {});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--tls-ca (or --tls-cert/--tls-key) is required"));
  r = T2As({"experts", "list", "--registry", reg}, {"--insecure-loopback"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("UNAVAILABLE")) << "plaintext to a TLS server";
  r = T2As({"experts", "list", "--registry", reg}, {"--tls-ca", ca});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("UNAUTHENTICATED"));

  // A reader's token, granted by appending to the live auth file: the registry re-reads it.
  const auto token = dir_ / "reader.token";
  r = T2As({"token", "--identity", "reader", "--roles", "read", "--token-file", token.string(),
            "--auth-file", (pki() / "auth").string()},
           {});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("token sha256:"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr(Slurp(token).substr(0, 20))))
      << "only the hash is printed";
  EXPECT_EQ(std::filesystem::status(token).permissions(),
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::vector<std::string> reader = {"--tls-ca", ca, "--token-file", token.string()};
  bool accepted = false;
  for (int attempt = 0; attempt < 30 && !accepted; ++attempt) {
    r = T2As({"experts", "list", "--registry", reg}, reader);
    accepted = r.exit_code == 0;
    if (!accepted) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(accepted) << r.output;
  r = T2As({"experts", "publish", "--registry", reg, "--name", "by-reader", "--version", "1",
            files_["low"].string()},
           reader);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("PERMISSION_DENIED"));
  EXPECT_THAT(r.output, HasSubstr("'reader' lacks the role publish"));
  r = T2As({"generate", "--server", disp, "--prompt", "hi", "--max-new-tokens", "1"}, reader);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("PERMISSION_DENIED"));
  // Health stays open: a probe needs to trust the server, nothing more.
  r = T2As({"health", "--server", disp}, {"--tls-ca", ca});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace t2
