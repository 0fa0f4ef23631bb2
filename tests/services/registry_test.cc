// t2-registry as a real process on loopback: the gRPC surface, the publish stream protocol,
// Watch, restarts, kill -9 in the middle of a publish, and a damaged blob on disk.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "store/expert_fixture.h"
#include "t2/common/sha256.h"
#include "t2/rpc/security.h"
#include "t2/v1/registry.grpc.pb.h"
#include "testing/process.h"

namespace t2::registry {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using store::testing::ExpertBytes;
using store::testing::ScratchDir;
using store::testing::TinyBase;
using store::testing::TinyExpert;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMiB = 1 << 20;

std::chrono::system_clock::time_point In(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

// The status code and message of a finished call, for readable failures.
MATCHER_P2(GrpcIs, code, substring, "") {
  *result_listener << "which is " << arg.error_code() << ": " << arg.error_message();
  return arg.error_code() == code && arg.error_message().find(substring) != std::string::npos;
}

MATCHER(GrpcOk, "") {
  *result_listener << "which is " << arg.error_code() << ": " << arg.error_message();
  return arg.ok();
}

struct GetResult {
  grpc::Status status;
  int messages = 0;
  v1::ExpertInfo info;
  std::string bytes;
};

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* binary = std::getenv("T2_REGISTRY_BINARY");
    ASSERT_NE(binary, nullptr) << "T2_REGISTRY_BINARY is not set; run through ctest";
    binary_ = binary;
    StartServer();
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << "--- t2-registry log ---\n" << t2::testing::Tail(log()) << "\n";
  }

  std::filesystem::path root() const { return scratch_ / "root"; }
  std::filesystem::path log() const { return scratch_ / "registry.log"; }

  void StartServer(const std::vector<std::string>& extra_flags = {}) {
    const std::filesystem::path port_file = scratch_ / "registry.port";
    const std::filesystem::path metrics_file = scratch_ / "metrics.port";
    std::filesystem::remove(port_file);
    std::filesystem::remove(metrics_file);
    std::vector<std::string> args = {binary_,
                                     "--root",
                                     root().string(),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     port_file.string(),
                                     "--metrics-listen",
                                     "127.0.0.1:0",
                                     "--metrics-port-file",
                                     metrics_file.string(),
                                     "--insecure-loopback"};
    args.insert(args.end(), extra_flags.begin(), extra_flags.end());
    ASSERT_TRUE(server_.Start(args, log()));
    address_ = t2::testing::WaitForFile(port_file, server_, seconds(30));
    metrics_address_ = t2::testing::WaitForFile(metrics_file, server_, seconds(30));
    ASSERT_FALSE(address_.empty()) << "t2-registry did not start:\n" << t2::testing::Tail(log());
    channel_ = grpc::CreateChannel(address_, t2::rpc::LoopbackChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(In(seconds(10))));
    stub_ = v1::Registry::NewStub(channel_);
  }

  // SIGTERM; the server must exit 0 within a few seconds. The client's connection is closed
  // first: gRPC's server waits (up to its shutdown grace) for connected clients to go away.
  void StopServer() {
    stub_.reset();
    channel_.reset();
    server_.Signal(SIGTERM);
    const int status = server_.Wait(seconds(10));
    ASSERT_NE(status, -1) << "t2-registry did not stop on SIGTERM";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  }

  void KillServer() {
    server_.Signal(SIGKILL);
    server_.Wait(seconds(10));
  }

  void RegisterBase() {
    v1::BaseModel request;
    request.set_fingerprint(base_.fingerprint);
    request.set_name(base_.name);
    request.set_targets(base_.targets);
    for (const auto& [name, rank] : base_.target_ranks)
      (*request.mutable_target_ranks())[name] = rank;
    grpc::ClientContext context;
    context.set_deadline(In(seconds(10)));
    v1::BaseModel response;
    ASSERT_THAT(stub_->RegisterBaseModel(&context, request, &response), GrpcOk());
  }

  std::string Bytes(float value) { return ExpertBytes(TinyExpert(base_, value), scratch_); }

  static v1::PublishExpertRequest Header(const std::string& name, int64_t version,
                                         const std::string& bytes) {
    v1::PublishExpertRequest message;
    auto* header = message.mutable_header();
    header->set_name(name);
    header->set_version(version);
    header->set_size_bytes(static_cast<int64_t>(bytes.size()));
    header->set_sha256(Sha256Hex(bytes));
    return message;
  }

  static v1::PublishExpertRequest Chunk(const std::string& bytes) {
    v1::PublishExpertRequest message;
    message.set_chunk(bytes);
    return message;
  }

  // Sends `messages` as one publish stream; the final status.
  grpc::Status PublishMessages(const std::vector<v1::PublishExpertRequest>& messages,
                               v1::ExpertInfo* info = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(In(seconds(20)));
    v1::ExpertInfo response;
    auto writer = stub_->PublishExpert(&context, &response);
    for (const auto& m : messages) {
      if (!writer->Write(m)) break;  // the server has answered already
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (info != nullptr) *info = response;
    return status;
  }

  grpc::Status Publish(const std::string& name, int64_t version, const std::string& bytes,
                       size_t chunk_bytes = 64, v1::ExpertInfo* info = nullptr) {
    std::vector<v1::PublishExpertRequest> messages = {Header(name, version, bytes)};
    for (size_t at = 0; at < bytes.size(); at += chunk_bytes) {
      messages.push_back(Chunk(bytes.substr(at, chunk_bytes)));
    }
    return PublishMessages(messages, info);
  }

  GetResult Get(const std::string& name, int64_t version) {
    grpc::ClientContext context;
    context.set_deadline(In(seconds(20)));
    v1::GetExpertRequest request;
    request.set_name(name);
    request.set_version(version);
    auto reader = stub_->GetExpert(&context, request);
    GetResult result;
    v1::GetExpertResponse message;
    while (reader->Read(&message)) {
      if (result.messages++ == 0) {
        EXPECT_TRUE(message.has_info()) << "the first message carries the info";
        result.info = message.info();
      } else {
        EXPECT_TRUE(message.has_chunk());
        EXPECT_LE(static_cast<int64_t>(message.chunk().size()), kMiB);
        result.bytes += message.chunk();
      }
    }
    result.status = reader->Finish();
    return result;
  }

  template <typename Request, typename Response, typename Method>
  grpc::Status Call(Method method, const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(In(seconds(10)));
    return (stub_.get()->*method)(&context, request, response);
  }

  std::vector<std::string> ListedLabels(const std::string& name, bool include_deprecated) {
    v1::ListExpertsRequest request;
    request.set_name(name);
    request.set_include_deprecated(include_deprecated);
    v1::ListExpertsResponse response;
    EXPECT_THAT(Call(&v1::Registry::Stub::ListExperts, request, &response), GrpcOk());
    std::vector<std::string> out;
    for (const auto& e : response.experts())
      out.push_back(e.name() + "@" + std::to_string(e.version()));
    return out;
  }

  grpc::Status SetAlias(const std::string& alias, const std::string& name, int64_t version,
                        v1::Alias* out = nullptr) {
    v1::SetAliasRequest request;
    request.set_alias(alias);
    request.set_name(name);
    request.set_version(version);
    v1::Alias response;
    grpc::Status status = Call(&v1::Registry::Stub::SetAlias, request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  std::filesystem::path BlobFile(const std::string& bytes) const {
    const std::string sha = Sha256Hex(bytes);
    return root() / "blobs" / sha.substr(0, 2) / sha;
  }

  ScratchDir scratch_;
  store::BaseModel base_ = TinyBase();
  std::string binary_;
  t2::testing::ChildProcess server_;
  std::string address_;
  std::string metrics_address_;  // HOST:PORT of /metrics

  // The value of the first sample of `name` whose labels include every `key="value"` of
  // `labels`, from a scrape of /metrics now; NaN if none.
  double Scraped(const std::string& name, const std::vector<std::string>& labels = {}) {
    const size_t colon = metrics_address_.rfind(':');
    httplib::Client client(metrics_address_.substr(0, colon), std::stoi(metrics_address_.substr(colon + 1)));
    client.set_read_timeout(10, 0);
    auto response = client.Get("/metrics");
    if (!response || response->status != 200) return std::nan("");
    for (absl::string_view line : absl::StrSplit(response->body, '\n')) {
      if (line.empty() || line[0] == '#') continue;
      const size_t end = line.find_first_of("{ ");
      if (line.substr(0, end) != name) continue;
      bool all = true;
      for (const std::string& l : labels) all = all && line.find(l) != absl::string_view::npos;
      double value = 0;
      if (all && absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
    }
    return std::nan("");
  }
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Registry::Stub> stub_;
};

TEST_F(RegistryTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string& service : std::vector<std::string>{"", "t2.v1.Registry"}) {
    grpc::ClientContext context;
    context.set_deadline(In(seconds(5)));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_THAT(health->Check(&context, request, &response), GrpcOk()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(RegistryTest, PublishInChunksAndGetTheSameBytesBack) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  ASSERT_GT(v1.size(), 64u * 4) << "the blob should take several chunks";
  v1::ExpertInfo info;
  ASSERT_THAT(Publish("math", 1, v1, 64, &info), GrpcOk());
  EXPECT_EQ(info.name(), "math");
  EXPECT_EQ(info.version(), 1);
  EXPECT_EQ(info.sha256(), Sha256Hex(v1));
  EXPECT_EQ(info.size_bytes(), static_cast<int64_t>(v1.size()));
  EXPECT_EQ(info.base_fingerprint(), base_.fingerprint);
  EXPECT_EQ(info.task(), "math");
  EXPECT_EQ(info.targets(), "mlp");
  EXPECT_EQ(info.normalization(), "nuclear");
  EXPECT_EQ(info.created_at(), "2025-01-01T00:00:00Z");

  // Odd chunk sizes, one byte at a time included.
  const std::string v2 = Bytes(2.0f);
  ASSERT_THAT(Publish("math", 2, v2, 1), GrpcOk());
  ASSERT_THAT(Publish("code", 1, Bytes(3.0f), 1000), GrpcOk());
  // A repeat is fine; other bytes under the same version are not.
  ASSERT_THAT(Publish("math", 1, v1, 100), GrpcOk());
  EXPECT_THAT(Publish("math", 1, Bytes(4.0f)),
              GrpcIs(grpc::StatusCode::ALREADY_EXISTS, "publish.header.version"));

  GetResult got = Get("math", 1);
  ASSERT_THAT(got.status, GrpcOk());
  EXPECT_EQ(got.bytes, v1);
  EXPECT_EQ(got.info.sha256(), Sha256Hex(v1));
  got = Get("math", 0);
  ASSERT_THAT(got.status, GrpcOk());
  EXPECT_EQ(got.info.version(), 2);
  EXPECT_EQ(got.bytes, v2);
  EXPECT_THAT(Get("math", 5).status, GrpcIs(grpc::StatusCode::NOT_FOUND, "get.version"));
  EXPECT_THAT(Get("nope", 0).status, GrpcIs(grpc::StatusCode::NOT_FOUND, "'nope'"));

  EXPECT_THAT(ListedLabels("", false), ElementsAre("code@1", "math@1", "math@2"));
  EXPECT_THAT(ListedLabels("math", false), ElementsAre("math@1", "math@2"));
}

TEST_F(RegistryTest, BlobChecksAndStoreErrorsKeepTheirCodes) {
  // No base model registered yet.
  const std::string bytes = Bytes(1.0f);
  EXPECT_THAT(Publish("math", 1, bytes),
              GrpcIs(grpc::StatusCode::FAILED_PRECONDITION, base_.fingerprint));
  RegisterBase();
  auto spec = TinyExpert(base_, 1.0f);
  spec.z.begin()->second.push_back(1.0f);
  EXPECT_THAT(Publish("math", 1, ExpertBytes(spec, scratch_)),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "publish.blob: tensor"));
  EXPECT_THAT(Publish("math", 1, "garbage bytes"),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "publish.blob"));
  // The reader's error named the upload's temporary file, a path on the server.
  const grpc::Status garbage = Publish("math", 1, std::string(64, 'x'));
  EXPECT_THAT(garbage.error_message(), HasSubstr("publish.blob: the uploaded file"));
  EXPECT_THAT(garbage.error_message(), Not(HasSubstr("/"))) << garbage.error_message();

  v1::BaseModel other;
  other.set_fingerprint(base_.fingerprint);
  other.set_name("another");
  other.set_targets("mlp");
  (*other.mutable_target_ranks())["model.layers.0.mlp.up_proj.weight"] = 3;
  v1::BaseModel response;
  EXPECT_THAT(Call(&v1::Registry::Stub::RegisterBaseModel, other, &response),
              GrpcIs(grpc::StatusCode::ALREADY_EXISTS, "base_model.fingerprint"));
  EXPECT_THAT(ListedLabels("", true), ElementsAre());
}

TEST_F(RegistryTest, ProtocolErrorsAreInvalidArgument) {
  RegisterBase();
  const std::string bytes = Bytes(1.0f);
  // No header at all, and a chunk where the header should be.
  EXPECT_THAT(PublishMessages({}), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "before the header"));
  EXPECT_THAT(PublishMessages({Chunk(bytes)}),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "first message must be the header"));
  EXPECT_THAT(PublishMessages({Header("math", 1, bytes), Header("math", 1, bytes), Chunk(bytes)}),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "second header"));
  // A chunk over 1 MiB, though the message itself is within gRPC's limit.
  std::string big(kMiB + 1, 'x');
  v1::PublishExpertRequest big_header = Header("math", 1, big + big);
  EXPECT_THAT(PublishMessages({big_header, Chunk(big)}),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "at most 1048576"));
  // More bytes than declared.
  v1::PublishExpertRequest short_header = Header("math", 1, bytes);
  short_header.mutable_header()->set_size_bytes(static_cast<int64_t>(bytes.size()) - 10);
  EXPECT_THAT(
      PublishMessages({short_header, Chunk(bytes.substr(0, 100)), Chunk(bytes.substr(100))}),
      GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "more bytes than"));
  // Fewer bytes than declared.
  EXPECT_THAT(PublishMessages({Header("math", 1, bytes), Chunk(bytes.substr(0, 100))}),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "publish.header.size_bytes"));
  // A bad header is refused before any byte.
  EXPECT_THAT(Publish("Math!", 1, bytes),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "publish.header.name"));
  EXPECT_THAT(Publish("math", 0, bytes),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "publish.header.version"));
  v1::PublishExpertRequest huge = Header("math", 1, bytes);
  huge.mutable_header()->set_size_bytes(257 * kMiB);
  EXPECT_THAT(PublishMessages({huge}), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "size_bytes"));
  v1::PublishExpertRequest bad_sha = Header("math", 1, bytes);
  bad_sha.mutable_header()->set_sha256(Sha256Hex(std::string("other")));
  EXPECT_THAT(PublishMessages({bad_sha, Chunk(bytes)}),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "publish.header.sha256"));

  EXPECT_THAT(ListedLabels("", true), ElementsAre());
  // The server is unharmed and no staged upload is left behind.
  ASSERT_THAT(Publish("math", 1, bytes), GrpcOk());
  EXPECT_TRUE(std::filesystem::is_empty(root() / "tmp"));
}

TEST_F(RegistryTest, AliasesMixturesDeprecation) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  const std::string v2 = Bytes(2.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());
  ASSERT_THAT(Publish("math", 2, v2), GrpcOk());

  v1::Alias alias;
  ASSERT_THAT(SetAlias("math-prod", "math", 2, &alias), GrpcOk());
  EXPECT_EQ(alias.target().sha256(), Sha256Hex(v2));
  EXPECT_EQ(Get("math-prod", 0).bytes, v2);
  ASSERT_THAT(SetAlias("math-prod", "math", 1), GrpcOk());  // rollback
  GetResult got = Get("math-prod", 0);
  ASSERT_THAT(got.status, GrpcOk());
  EXPECT_EQ(got.info.version(), 1);
  EXPECT_EQ(got.bytes, v1);
  v1::GetAliasRequest get_alias;
  get_alias.set_alias("math-prod");
  ASSERT_THAT(Call(&v1::Registry::Stub::GetAlias, get_alias, &alias), GrpcOk());
  EXPECT_EQ(alias.target().version(), 1);
  EXPECT_THAT(SetAlias("math", "math", 1),
              GrpcIs(grpc::StatusCode::ALREADY_EXISTS, "set_alias.alias"));

  v1::DeprecateExpertRequest deprecate;
  deprecate.set_name("math");
  deprecate.set_version(2);
  v1::ExpertInfo info;
  ASSERT_THAT(Call(&v1::Registry::Stub::DeprecateExpert, deprecate, &info), GrpcOk());
  EXPECT_TRUE(info.deprecated());
  EXPECT_THAT(SetAlias("math-prod", "math", 2),
              GrpcIs(grpc::StatusCode::FAILED_PRECONDITION, "deprecated"));
  EXPECT_EQ(Get("math", 0).info.version(), 1);
  EXPECT_THAT(ListedLabels("math", false), ElementsAre("math@1"));
  EXPECT_THAT(ListedLabels("math", true), ElementsAre("math@1", "math@2"));

  v1::ListAliasesResponse aliases;
  ASSERT_THAT(Call(&v1::Registry::Stub::ListAliases, v1::ListAliasesRequest(), &aliases), GrpcOk());
  ASSERT_EQ(aliases.aliases_size(), 1);
  EXPECT_EQ(aliases.aliases(0).alias(), "math-prod");
  v1::DeleteAliasRequest delete_alias;
  delete_alias.set_alias("math-prod");
  v1::DeleteAliasResponse deleted;
  ASSERT_THAT(Call(&v1::Registry::Stub::DeleteAlias, delete_alias, &deleted), GrpcOk());
  EXPECT_THAT(Call(&v1::Registry::Stub::DeleteAlias, delete_alias, &deleted),
              GrpcIs(grpc::StatusCode::NOT_FOUND, "delete_alias.alias"));

  v1::PutMixtureRequest put;
  v1::Mixture* mixture = put.mutable_mixture();
  mixture->set_name("few-shot");
  mixture->set_source("cem: 8 x 12");
  for (auto [version, bytes] : {std::pair<int64_t, const std::string*>{1, &v1}, {2, &v2}}) {
    v1::ExpertRef* ref = mixture->mutable_spec()->add_experts();
    ref->set_name("math");
    ref->set_version(version);
    ref->set_sha256(Sha256Hex(*bytes));
  }
  mixture->mutable_spec()->add_alpha(0.3);
  mixture->mutable_spec()->add_alpha(0.7);
  v1::Mixture stored;
  ASSERT_THAT(Call(&v1::Registry::Stub::PutMixture, put, &stored), GrpcOk());
  EXPECT_GT(stored.updated_unix_ms(), 0);
  v1::GetMixtureRequest get_mixture;
  get_mixture.set_name("few-shot");
  ASSERT_THAT(Call(&v1::Registry::Stub::GetMixture, get_mixture, &stored), GrpcOk());
  EXPECT_EQ(stored.spec().experts_size(), 2);
  EXPECT_THAT(stored.spec().alpha(), ElementsAre(0.3, 0.7));
  EXPECT_EQ(stored.source(), "cem: 8 x 12");
  v1::ListMixturesResponse mixtures;
  ASSERT_THAT(Call(&v1::Registry::Stub::ListMixtures, v1::ListMixturesRequest(), &mixtures),
              GrpcOk());
  EXPECT_EQ(mixtures.mixtures_size(), 1);

  mixture->mutable_spec()->add_alpha(0.1);
  EXPECT_THAT(Call(&v1::Registry::Stub::PutMixture, put, &stored),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "mixture.spec.alpha"));
  mixture->mutable_spec()->clear_alpha();
  mixture->mutable_spec()->add_alpha(0.5);
  mixture->mutable_spec()->add_alpha(0.5);
  mixture->mutable_spec()->mutable_experts(0)->set_sha256(Sha256Hex(v2));
  EXPECT_THAT(Call(&v1::Registry::Stub::PutMixture, put, &stored),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "mixture.spec.experts[0].sha256"));

  v1::DeleteMixtureRequest delete_mixture;
  delete_mixture.set_name("few-shot");
  v1::DeleteMixtureResponse mixture_deleted;
  ASSERT_THAT(Call(&v1::Registry::Stub::DeleteMixture, delete_mixture, &mixture_deleted), GrpcOk());
  EXPECT_THAT(Call(&v1::Registry::Stub::GetMixture, get_mixture, &stored),
              GrpcIs(grpc::StatusCode::NOT_FOUND, "get_mixture.name"));
  EXPECT_THAT(Call(&v1::Registry::Stub::DeleteMixture, delete_mixture, &mixture_deleted),
              GrpcIs(grpc::StatusCode::NOT_FOUND, "delete_mixture.name"));
  delete_mixture.set_name("");
  EXPECT_THAT(Call(&v1::Registry::Stub::DeleteMixture, delete_mixture, &mixture_deleted),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "delete_mixture.name"));
}

// ResolveExpert answers what GetExpert would announce, without the blob: the one place a name
// or an alias becomes a version (the dispatcher asks it).
TEST_F(RegistryTest, ResolveExpertAppliesTheResolutionRuleWithoutTheBlob) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  const std::string v2 = Bytes(2.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());
  ASSERT_THAT(Publish("math", 2, v2), GrpcOk());
  auto resolve = [&](const std::string& name, int64_t version, v1::ExpertInfo* info) {
    v1::ResolveExpertRequest request;
    request.set_name(name);
    request.set_version(version);
    return Call(&v1::Registry::Stub::ResolveExpert, request, info);
  };
  v1::ExpertInfo info;
  ASSERT_THAT(resolve("math", 0, &info), GrpcOk());
  EXPECT_EQ(info.version(), 2);
  EXPECT_EQ(info.sha256(), Sha256Hex(v2));
  EXPECT_EQ(info.size_bytes(), static_cast<int64_t>(v2.size()));

  ASSERT_THAT(SetAlias("math-prod", "math", 1), GrpcOk());
  ASSERT_THAT(resolve("math-prod", 0, &info), GrpcOk());
  EXPECT_EQ(info.name(), "math");
  EXPECT_EQ(info.version(), 1);
  EXPECT_EQ(info.sha256(), Get("math-prod", 0).info.sha256());

  v1::DeprecateExpertRequest deprecate;
  deprecate.set_name("math");
  deprecate.set_version(2);
  ASSERT_THAT(Call(&v1::Registry::Stub::DeprecateExpert, deprecate, &info), GrpcOk());
  ASSERT_THAT(resolve("math", 0, &info), GrpcOk());
  EXPECT_EQ(info.version(), 1) << "a plain name skips deprecated versions";
  ASSERT_THAT(resolve("math", 2, &info), GrpcOk());
  EXPECT_TRUE(info.deprecated()) << "a pinned version stays usable";

  EXPECT_THAT(resolve("physics", 0, &info), GrpcIs(grpc::StatusCode::NOT_FOUND, "resolve.name"));
  EXPECT_THAT(resolve("math", 7, &info), GrpcIs(grpc::StatusCode::NOT_FOUND, "resolve.version"));
  EXPECT_THAT(resolve("math-prod", 1, &info),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "resolve.version"));
  EXPECT_THAT(resolve("Bad Name", 0, &info),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "resolve.name"));
  EXPECT_THAT(resolve("math", -1, &info),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, "resolve.version"));
}

TEST_F(RegistryTest, WatchStreamsEventsInOrder) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());  // before the watch: not seen with from 0

  grpc::ClientContext context;
  context.set_deadline(In(seconds(20)));
  v1::WatchRequest request;
  auto reader = stub_->Watch(&context, request);
  reader->WaitForInitialMetadata();  // the server has taken its starting point

  ASSERT_THAT(Publish("math", 2, Bytes(2.0f)), GrpcOk());
  ASSERT_THAT(SetAlias("prod", "math", 2), GrpcOk());
  ASSERT_THAT(SetAlias("prod", "math", 1), GrpcOk());
  v1::DeprecateExpertRequest deprecate;
  deprecate.set_name("math");
  deprecate.set_version(2);
  v1::ExpertInfo info;
  ASSERT_THAT(Call(&v1::Registry::Stub::DeprecateExpert, deprecate, &info), GrpcOk());
  v1::PutMixtureRequest put;
  put.mutable_mixture()->set_name("task");
  v1::ExpertRef* ref = put.mutable_mixture()->mutable_spec()->add_experts();
  ref->set_name("math");
  ref->set_version(1);
  ref->set_sha256(Sha256Hex(v1));
  v1::Mixture stored;
  ASSERT_THAT(Call(&v1::Registry::Stub::PutMixture, put, &stored), GrpcOk());
  v1::DeleteMixtureRequest delete_mixture;
  delete_mixture.set_name("task");
  v1::DeleteMixtureResponse deleted;
  ASSERT_THAT(Call(&v1::Registry::Stub::DeleteMixture, delete_mixture, &deleted), GrpcOk());

  std::vector<std::string> seen;
  int64_t last_sequence = 0;
  v1::RegistryEvent event;
  while (seen.size() < 6 && reader->Read(&event)) {
    EXPECT_GT(event.sequence(), last_sequence);
    last_sequence = event.sequence();
    seen.push_back(absl::StrCat(v1::RegistryEvent::Kind_Name(event.kind()), " ", event.name(), " ",
                                event.version(), " ", event.target()));
  }
  EXPECT_THAT(seen, ElementsAre("KIND_EXPERT_PUBLISHED math 2 ", "KIND_ALIAS_SET prod 2 math",
                                "KIND_ALIAS_SET prod 1 math", "KIND_EXPERT_DEPRECATED math 2 ",
                                "KIND_MIXTURE_PUT task 0 ", "KIND_MIXTURE_DELETED task 0 "));
  EXPECT_EQ(last_sequence, 7);
  context.TryCancel();
  EXPECT_THAT(reader->Finish(), GrpcIs(grpc::StatusCode::CANCELLED, ""));

  // from_sequence replays what is in the log after it.
  grpc::ClientContext replay_context;
  replay_context.set_deadline(In(seconds(20)));
  request.set_from_sequence(3);
  auto replay = stub_->Watch(&replay_context, request);
  std::vector<int64_t> sequences;
  while (sequences.size() < 2 && replay->Read(&event)) sequences.push_back(event.sequence());
  EXPECT_THAT(sequences, ElementsAre(4, 5));
  replay_context.TryCancel();
  replay->Finish();
}

// Threads of process `pid`, from /proc.
int ThreadsOf(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

// A Watch waits for changes without a thread of the registry (gRPC's synchronous API held
// one per stream): 200 open streams add far fewer than 200 threads, and every one of them
// still gets the next change.
TEST_F(RegistryTest, OpenWatchStreamsHoldNoThreads) {
  RegisterBase();
  constexpr int kWatchers = 200;
  struct Open {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::RegistryEvent>> reader;
  };
  std::vector<std::unique_ptr<Open>> watchers;
  const int before = ThreadsOf(server_.pid());
  for (int i = 0; i < kWatchers; ++i) {
    auto open = std::make_unique<Open>();
    open->context.set_deadline(In(seconds(60)));
    open->reader = stub_->Watch(&open->context, v1::WatchRequest());
    open->reader->WaitForInitialMetadata();  // established
    watchers.push_back(std::move(open));
  }
  const int during = ThreadsOf(server_.pid());
  EXPECT_LT(during - before, kWatchers / 4) << before << " threads before, " << during << " after";
  ASSERT_THAT(Publish("math", 1, Bytes(1.0f)), GrpcOk());
  for (auto& open : watchers) {
    v1::RegistryEvent event;
    ASSERT_TRUE(open->reader->Read(&event));
    EXPECT_EQ(event.kind(), v1::RegistryEvent::KIND_EXPERT_PUBLISHED);
    open->context.TryCancel();
    EXPECT_THAT(open->reader->Finish(), GrpcIs(grpc::StatusCode::CANCELLED, ""));
  }
}

TEST_F(RegistryTest, ShutdownEndsOpenWatchStreams) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(In(seconds(30)));
  auto reader = stub_->Watch(context.get(), v1::WatchRequest());
  reader->WaitForInitialMetadata();
  // The client is blocked in Read, as a real watcher is.
  bool read = true;
  std::chrono::steady_clock::time_point ended;
  std::thread watcher([&] {
    v1::RegistryEvent event;
    read = reader->Read(&event);
    ended = std::chrono::steady_clock::now();
  });
  const auto start = std::chrono::steady_clock::now();
  server_.Signal(SIGTERM);
  watcher.join();
  EXPECT_FALSE(read);
  EXPECT_LT(ended - start, seconds(2)) << "an open Watch must end when the server shuts down";
  EXPECT_THAT(reader->Finish(), GrpcIs(grpc::StatusCode::UNAVAILABLE, "shutting down"));
  reader.reset();
  context.reset();  // holds the call, and so the connection
  StopServer();     // exits 0, and promptly once the client has let go of its connection
}

TEST_F(RegistryTest, RestartKeepsEverything) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());
  ASSERT_THAT(SetAlias("prod", "math", 1), GrpcOk());
  StopServer();
  StartServer();
  GetResult got = Get("prod", 0);
  ASSERT_THAT(got.status, GrpcOk());
  EXPECT_EQ(got.bytes, v1);
  EXPECT_THAT(ListedLabels("", true), ElementsAre("math@1"));
  // The base model is still registered, and event numbering goes on.
  ASSERT_THAT(Publish("math", 2, Bytes(2.0f)), GrpcOk());
  grpc::ClientContext context;
  context.set_deadline(In(seconds(20)));
  v1::WatchRequest request;
  request.set_from_sequence(2);
  auto reader = stub_->Watch(&context, request);
  v1::RegistryEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.sequence(), 3);
  EXPECT_EQ(event.kind(), v1::RegistryEvent::KIND_EXPERT_PUBLISHED);
  EXPECT_EQ(event.version(), 2);
  context.TryCancel();
  reader->Finish();
}

TEST_F(RegistryTest, KillNineDuringAPublishLeavesAConsistentStore) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  const std::string v2 = Bytes(2.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());

  {
    grpc::ClientContext context;
    context.set_deadline(In(seconds(20)));
    v1::ExpertInfo response;
    auto writer = stub_->PublishExpert(&context, &response);
    ASSERT_TRUE(writer->Write(Header("math", 2, v2)));
    ASSERT_TRUE(writer->Write(Chunk(v2.substr(0, 64))));
    // Wait until the server has staged those bytes: the kill lands mid-stream.
    bool staged = false;
    for (int i = 0; i < 500 && !staged; ++i) {
      for (const auto& entry : std::filesystem::directory_iterator(root() / "tmp")) {
        staged = staged || entry.file_size() == 64;
      }
      if (!staged) std::this_thread::sleep_for(milliseconds(10));
    }
    ASSERT_TRUE(staged) << "the server never staged the first chunk";
    KillServer();
    writer->Write(Chunk(v2.substr(64)));
    writer->WritesDone();
    EXPECT_THAT(writer->Finish(), GrpcIs(grpc::StatusCode::UNAVAILABLE, ""));
  }

  StartServer();
  GetResult old_version = Get("math", 1);
  ASSERT_THAT(old_version.status, GrpcOk());
  EXPECT_EQ(old_version.bytes, v1);
  EXPECT_THAT(Get("math", 2).status, GrpcIs(grpc::StatusCode::NOT_FOUND, "get.version"));
  EXPECT_THAT(ListedLabels("", true), ElementsAre("math@1"));
  EXPECT_TRUE(std::filesystem::is_empty(root() / "tmp")) << "the half upload is gone";
  // The publisher retries.
  ASSERT_THAT(Publish("math", 2, v2), GrpcOk());
  EXPECT_EQ(Get("math", 2).bytes, v2);
}

// A publisher that stops sending used to hold its thread and staging file until its own
// deadline (none, if it set none); a publish the disk cannot hold was accepted until the disk
// filled.
TEST_F(RegistryTest, StalledUploadsEndAndAFullDiskRefusesPublishes) {
  StopServer();
  StartServer({"--transfer-idle-seconds", "1", "--min-free-disk-mb", "0"});
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  {
    grpc::ClientContext context;
    context.set_deadline(In(seconds(30)));
    v1::ExpertInfo response;
    auto writer = stub_->PublishExpert(&context, &response);
    ASSERT_TRUE(writer->Write(Header("math", 1, v1)));
    ASSERT_TRUE(writer->Write(Chunk(v1.substr(0, 64))));
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status stalled = writer->Finish();  // no WritesDone: the client just stops
    EXPECT_FALSE(stalled.ok());
    EXPECT_NE(stalled.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
        << "ended by the client's deadline";
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(15));
  }
  EXPECT_THAT(ListedLabels("", true), ::testing::IsEmpty());
  for (int i = 0; i < 500 && !std::filesystem::is_empty(root() / "tmp"); ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(std::filesystem::is_empty(root() / "tmp")) << "the staged bytes are gone";
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk()) << "the registry serves on";

  // 1 TiB kept free: more than this disk has.
  StopServer();
  StartServer({"--min-free-disk-mb", "1048576"});
  const std::string v2 = Bytes(2.0f);
  const grpc::Status full = Publish("math", 2, v2);
  EXPECT_THAT(full, GrpcIs(grpc::StatusCode::RESOURCE_EXHAUSTED, "no room for"));
  EXPECT_THAT(full.error_message(), Not(HasSubstr(root().string()))) << "no server path to clients";
  EXPECT_THAT(ListedLabels("", true), ElementsAre("math@1"));
  EXPECT_TRUE(std::filesystem::is_empty(root() / "tmp"));
}

// Transfers wait for their peer without a thread of the registry (gRPC's synchronous API held
// one per transfer until the idle watchdog ended it): 100 uploads that stopped after their
// first chunk and 20 downloads nobody reads add far fewer threads than that, the registry
// answers meanwhile, and each stalled transfer goes on or ends cleanly afterwards.
TEST_F(RegistryTest, OpenTransfersHoldNoThreads) {
  // A 3 MiB expert, so that an unread download waits on flow control.
  for (auto& [name, rank] : base_.target_ranks) rank = 1 << 17;
  RegisterBase();
  const std::string big = Bytes(1.0f);
  ASSERT_THAT(Publish("big", 1, big, kMiB), GrpcOk());
  const std::string small = Bytes(2.0f);
  const int before = ThreadsOf(server_.pid());

  constexpr int kUploads = 100;
  constexpr int kDownloads = 20;
  struct Upload {
    grpc::ClientContext context;
    v1::ExpertInfo response;
    std::unique_ptr<grpc::ClientWriter<v1::PublishExpertRequest>> writer;
  };
  std::vector<std::unique_ptr<Upload>> uploads;
  for (int i = 0; i < kUploads; ++i) {
    auto upload = std::make_unique<Upload>();
    upload->context.set_deadline(In(seconds(60)));
    upload->writer = stub_->PublishExpert(&upload->context, &upload->response);
    ASSERT_TRUE(upload->writer->Write(Header(absl::StrCat("u", i), 1, small)));
    ASSERT_TRUE(upload->writer->Write(Chunk(small.substr(0, 64))));
    uploads.push_back(std::move(upload));
  }
  struct Download {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::GetExpertResponse>> reader;
    std::string bytes;
  };
  std::vector<std::unique_ptr<Download>> downloads;
  for (int i = 0; i < kDownloads; ++i) {
    auto download = std::make_unique<Download>();
    download->context.set_deadline(In(seconds(60)));
    v1::GetExpertRequest request;
    request.set_name("big");
    download->reader = stub_->GetExpert(&download->context, request);
    v1::GetExpertResponse info;
    ASSERT_TRUE(download->reader->Read(&info));  // the info; the blob waits for the client
    ASSERT_TRUE(info.has_info());
    downloads.push_back(std::move(download));
  }
  EXPECT_THAT(ListedLabels("", true), ElementsAre("big@1")) << "the registry answers meanwhile";
  const int during = ThreadsOf(server_.pid());
  EXPECT_LT(during - before, (kUploads + kDownloads) / 4)
      << before << " threads before, " << during << " with the transfers open";

  // The downloads go on where they stopped; the uploads end as their clients choose.
  for (auto& download : downloads) {
    v1::GetExpertResponse message;
    while (download->reader->Read(&message)) download->bytes += message.chunk();
    EXPECT_THAT(download->reader->Finish(), GrpcOk());
    EXPECT_TRUE(download->bytes == big) << download->bytes.size() << " of " << big.size() << " bytes";
  }
  for (int i = 0; i < kUploads; ++i) {
    Upload& upload = *uploads[i];
    if (i % 2 == 0) {
      upload.context.TryCancel();
      EXPECT_THAT(upload.writer->Finish(), GrpcIs(grpc::StatusCode::CANCELLED, ""));
    } else {
      for (size_t at = 64; at < small.size(); at += kMiB) {
        ASSERT_TRUE(upload.writer->Write(Chunk(small.substr(at, kMiB))));
      }
      upload.writer->WritesDone();
      EXPECT_THAT(upload.writer->Finish(), GrpcOk());
      EXPECT_EQ(upload.response.name(), absl::StrCat("u", i));
    }
  }
  EXPECT_EQ(ListedLabels("", true).size(), 1 + kUploads / 2);
}

// A download whose client stops reading is cancelled by the idle watchdog, so it does not
// hold the blob open until the client's deadline.
TEST_F(RegistryTest, StalledDownloadsEnd) {
  StopServer();
  StartServer({"--transfer-idle-seconds", "1"});
  for (auto& [name, rank] : base_.target_ranks) rank = 1 << 17;  // 3 MiB: more than is buffered
  RegisterBase();
  const std::string big = Bytes(1.0f);
  ASSERT_THAT(Publish("big", 1, big, kMiB), GrpcOk());
  // Without BDP probing the client's receive window stays at its initial 64 KiB, so what it
  // leaves unread holds the registry's next write back.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = v1::Registry::NewStub(
      grpc::CreateCustomChannel(address_, t2::rpc::LoopbackChannelCredentials(), args));
  grpc::ClientContext context;
  context.set_deadline(In(seconds(30)));
  v1::GetExpertRequest request;
  request.set_name("big");
  auto reader = stub->GetExpert(&context, request);
  v1::GetExpertResponse message;
  ASSERT_TRUE(reader->Read(&message));
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(seconds(3));  // stalled: the registry gives up after 1 s idle
  std::string bytes;
  while (reader->Read(&message)) bytes += message.chunk();
  EXPECT_THAT(reader->Finish(), GrpcIs(grpc::StatusCode::CANCELLED, ""));
  EXPECT_LT(bytes.size(), big.size());
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(15)) << "ended by the client's deadline";
  EXPECT_EQ(Get("big", 1).bytes, big) << "the registry serves on";
}

TEST_F(RegistryTest, OutOfRangeFlagsExitNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--transfer-idle-seconds", "0"},
       "--transfer-idle-seconds: must be an integer in [1, 3600], got '0'"},
      {{"--min-free-disk-mb", "-1"},
       "--min-free-disk-mb: must be an integer in [0, 1048576], got '-1'"},
      {{"--max-message-bytes", "1024"},
       "--max-message-bytes: must be an integer in [1049600, 2147483647]"},
      // Not taken and ignored: unknown flags, stray arguments, a flag given twice.
      {{"--bogus"}, "not expected: --bogus"},
      {{"stray"}, "not expected: stray"},
      {{"--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"}, "--listen: At Most 1"},
      // A client flag the registry would otherwise take and ignore: it calls no service.
      {{"--token-file", "/dev/null"}, "--token-file: the registry calls no other service"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& [flags, message] = cases[i];
    std::vector<std::string> argv = {binary_, "--root", (scratch_ / "flags-root").string(),
                                     "--insecure-loopback"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const auto log = scratch_ / ("flags-" + std::to_string(i) + ".log");
    t2::testing::ChildProcess registry;
    ASSERT_TRUE(registry.Start(argv, log));
    const int status = registry.Wait(seconds(30));
    ASSERT_TRUE(status != -1 && WIFEXITED(status))
        << flags[0] << " did not exit: " << t2::testing::Tail(log);
    EXPECT_EQ(WEXITSTATUS(status), 2) << flags[0];
    EXPECT_THAT(t2::testing::Tail(log), HasSubstr(message)) << flags[0];
  }
}

TEST_F(RegistryTest, DamagedBlobIsDataLossWhileOthersKeepServing) {
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  const std::string v2 = Bytes(2.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());
  ASSERT_THAT(Publish("math", 2, v2), GrpcOk());
  std::string damaged = v1;
  damaged[damaged.size() - 5] ^= 0x40;
  store::testing::WriteFileBytes(BlobFile(v1), damaged);

  GetResult bad = Get("math", 1);
  EXPECT_THAT(bad.status, GrpcIs(grpc::StatusCode::DATA_LOSS, "corrupt"));
  EXPECT_EQ(bad.messages, 0) << "nothing of a damaged blob is sent";
  GetResult good = Get("math", 2);
  ASSERT_THAT(good.status, GrpcOk());
  EXPECT_EQ(good.bytes, v2);
  EXPECT_THAT(ListedLabels("math", true), ElementsAre("math@1", "math@2"));
  // Publishing the same version's bytes again repairs it.
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());
  EXPECT_EQ(Get("math", 1).bytes, v1);
}

TEST_F(RegistryTest, MetricsCountPublishesWatchersAndTheStore) {
  EXPECT_EQ(Scraped("t2_registry_publishes_total", {"result=\"accepted\""}), 0);  // there from the start
  RegisterBase();
  const std::string v1 = Bytes(1.0f);
  ASSERT_THAT(Publish("math", 1, v1), GrpcOk());
  ASSERT_THAT(Publish("math", 2, v1), GrpcOk());  // the same bytes: one blob
  ASSERT_THAT(Publish("code", 1, Bytes(3.0f)), GrpcOk());
  EXPECT_THAT(Publish("math", 1, Bytes(4.0f)), GrpcIs(grpc::StatusCode::ALREADY_EXISTS, ""));
  EXPECT_THAT(Publish("math", 3, "garbage bytes"), GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, ""));
  ASSERT_THAT(SetAlias("prod", "math", 2), GrpcOk());

  grpc::ClientContext context;
  context.set_deadline(In(seconds(20)));
  auto reader = stub_->Watch(&context, v1::WatchRequest());
  reader->WaitForInitialMetadata();  // the stream is open on the server

  EXPECT_EQ(Scraped("t2_registry_publishes_total", {"result=\"accepted\"", "reason=\"none\""}), 3);
  EXPECT_EQ(Scraped("t2_registry_publishes_total", {"result=\"refused\"", "reason=\"exists\""}), 1);
  EXPECT_EQ(Scraped("t2_registry_publishes_total", {"result=\"refused\"", "reason=\"invalid\""}), 1);
  EXPECT_EQ(Scraped("t2_registry_experts"), 2);
  EXPECT_EQ(Scraped("t2_registry_expert_versions"), 3);
  EXPECT_EQ(Scraped("t2_registry_aliases"), 1);
  EXPECT_EQ(Scraped("t2_registry_mixtures"), 0);
  EXPECT_EQ(Scraped("t2_registry_blob_bytes"), static_cast<double>(v1.size() + Bytes(3.0f).size()));
  EXPECT_EQ(Scraped("t2_registry_watch_subscribers"), 1);
  context.TryCancel();
  reader->Finish();
  for (int i = 0; i < 100 && Scraped("t2_registry_watch_subscribers") != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the server sees the cancel within its 1 s poll
  }
  EXPECT_EQ(Scraped("t2_registry_watch_subscribers"), 0);
}

}  // namespace
}  // namespace t2::registry
