// TLS, mutual TLS, certificate reload, loopback-only plaintext and the role check, over real
// gRPC connections to a server started the way every t2 service starts (rpc::StartServer).
#include "t2/rpc/security.h"

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "t2/rpc/auth.h"
#include "t2/rpc/server.h"
#include "t2/rpc/throwaway_pki.h"
#include "t2/v1/dispatcher.grpc.pb.h"
#include "t2/v1/registry.grpc.pb.h"
#include "t2/v1/worker.grpc.pb.h"
#include "testing/scratch_dir.h"

namespace t2::rpc {
namespace {

using ::testing::HasSubstr;

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

TEST(AuthFileTest, ParsesTokensAndCertificatesAndRefusesMalformedLinesByNumber) {
  const std::string hash = std::string(64, 'a');
  auto table = ParseAuthFile(absl::StrCat("# comment\n\ntoken sha256:", hash,
                                          " app generate,read  # trailing\n",
                                          "cert t2-dispatcher generate,adapt,read\n"));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->token_hashes.at(hash).identity, "app");
  EXPECT_EQ(table->token_hashes.at(hash).roles, (std::set<std::string>{"generate", "read"}));
  EXPECT_EQ(table->certificates.at("t2-dispatcher").roles.size(), 3u);

  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {absl::StrCat("\ntoken sha256:", hash, " app root"), "line 2: unknown role 'root'"},
           {"token abc app read", "line 1: the token must be given as sha256:"},
           {absl::StrCat("token sha256:", std::string(64, 'A'), " app read"),
            "sha256:<64 lowercase hex"},
           {absl::StrCat("token sha256:", hash, " app"), "expected 'token sha256:<hex>"},
           {absl::StrCat("token sha256:", hash, " a read\ntoken sha256:", hash, " b read"),
            "line 2: this token is listed twice"},
           {"cert x read\ncert x admin", "line 2: certificate name 'x' is listed twice"},
           {"user x read", "starts with 'token' or 'cert'"}}) {
    auto bad = ParseAuthFile(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(bad.status().message(), HasSubstr(message)) << text;
  }
}

TEST(AuthorizeTest, UnauthenticatedWithoutAValidCredentialDeniedWithoutTheRole) {
  const std::string token = NewToken();
  EXPECT_GE(token.size(), 40u);
  EXPECT_NE(token, NewToken());
  auto table =
      ParseAuthFile(absl::StrCat("token ", TokenHash(token), " app read\ncert svc publish\n"));
  ASSERT_TRUE(table.ok()) << table.status();
  const std::string bearer = "Bearer " + token;
  const std::string list = "/t2.v1.Registry/ListExperts", publish = "/t2.v1.Registry/PublishExpert";

  auto caller = Authorize(*table, list, bearer, "");
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->identity, "app");
  EXPECT_EQ(Authorize(*table, list, "", "").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Authorize(*table, list, "Bearer nope", "").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Authorize(*table, list, token, "").status().code(), absl::StatusCode::kUnauthenticated)
      << "the header must say Bearer";
  // A bad token is refused even alongside a good certificate: a presented token is the claim.
  EXPECT_EQ(Authorize(*table, publish, "Bearer nope", "svc").status().code(),
            absl::StatusCode::kUnauthenticated);
  auto denied = Authorize(*table, publish, bearer, "");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status().message(), HasSubstr("'app' lacks the role publish"));
  EXPECT_THAT(denied.status().message(), ::testing::Not(HasSubstr(token)));
  EXPECT_TRUE(Authorize(*table, publish, "", "svc").ok());
  EXPECT_EQ(Authorize(*table, publish, "", "stranger").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Authorize(*table, "/t2.v1.Registry/Nope", bearer, "").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(MethodRolesTest, EveryT2MethodHasARoleAndTheReadmeTableSaysTheSame) {
  std::set<std::string> methods;
  // Through a message of each file, so that the linker keeps every file's descriptor.
  for (const auto* service :
       {t2::v1::AdaptRequest::descriptor()->file()->FindServiceByName("Dispatcher"),
        t2::v1::WatchRequest::descriptor()->file()->FindServiceByName("Registry"),
        t2::v1::ScoreRequest::descriptor()->file()->FindServiceByName("Worker")}) {
    ASSERT_NE(service, nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      methods.insert(absl::StrCat("/", service->full_name(), "/", service->method(i)->name()));
    }
  }
  std::set<std::string> listed;
  for (const auto& [method, roles] : MethodRoles()) {
    listed.insert(method);
    EXPECT_FALSE(roles.empty()) << method;
  }
  EXPECT_EQ(methods, listed) << "a new RPC needs its role in MethodRoles (lib/rpc/src/auth.cc)";

  // README.md's Security table: "| `Service/Method` | role[, role] | ..." rows.
  const char* source = std::getenv("T2_SOURCE_DIR");
  ASSERT_NE(source, nullptr);
  std::ifstream readme(std::filesystem::path(source) / "README.md");
  std::stringstream text;
  text << readme.rdbuf();
  std::map<std::string, std::set<std::string>> documented;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (!absl::ConsumePrefix(&line, "| `t2.v1.")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    std::string method =
        absl::StrCat("/t2.v1.", absl::StripSuffix(absl::StripAsciiWhitespace(cells[0]), "`"));
    std::set<std::string> roles;
    for (absl::string_view role : absl::StrSplit(cells[1], ',', absl::SkipWhitespace())) {
      roles.insert(std::string(absl::StripAsciiWhitespace(
          absl::StripSuffix(absl::StripPrefix(absl::StripAsciiWhitespace(role), "`"), "`"))));
    }
    documented[method] = roles;
  }
  EXPECT_EQ(documented, MethodRoles()) << "README.md's Security table and MethodRoles differ";
}

TEST(SecurityFlagsTest, RefusesAMissingChoiceAndHalfPairsNamingTheFlag) {
  // The flags parsed as a server's (`server`) or a client's, then checked.
  const auto parse = [](std::vector<std::string> args, bool server) {
    CommandLine command_line("security_test", "");
    Security security;
    AddSecurityFlags(command_line, security, server);
    std::optional<int> exit_code = command_line.Parse(args);
    if (exit_code.has_value())
      return absl::InvalidArgumentError(absl::StrCat("usage error ", *exit_code));
    return CheckSecurity(security, server);
  };
  EXPECT_THAT(parse({}, true).message(), HasSubstr("--tls-cert and --tls-key are required"));
  EXPECT_THAT(parse({}, false).message(), HasSubstr("--tls-ca"));
  EXPECT_THAT(parse({"--tls-cert", "/x"}, true).message(), HasSubstr("go together"));
  EXPECT_THAT(parse({"--insecure-loopback", "--tls-ca", "/x"}, true).message(),
              HasSubstr("cannot be combined"));
  EXPECT_THAT(parse({"--tls-cert", "/no/such", "--tls-key", "/no/such"}, true).message(),
              HasSubstr("--tls-cert: cannot read /no/such"));
  EXPECT_TRUE(parse({"--insecure-loopback"}, true).ok());
  EXPECT_EQ(parse({"--insecure-loopback", "--auth-file", "x"}, false).message(), "usage error 2")
      << "a client has no auth file";

  Security loopback{.insecure_loopback = true};
  auto refused = MakeServerCredentials(loopback, "0.0.0.0:50051");
  EXPECT_THAT(refused.status().message(), HasSubstr("would refuse every remote client"));
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:1"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:1"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:1"));
}

// Calls `method` with an empty message through the generic stub and returns the status; the
// auth check happens before the message is read, so its shape does not matter.
grpc::Status CallGeneric(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                         const std::string& token) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  grpc::Slice empty;  // an empty message (a ByteBuffer without slices is not one)
  grpc::ByteBuffer request(&empty, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) { done.set_value(status); });
  return done.get_future().get();
}

// A registry service that answers ListExperts; everything else is the generated UNIMPLEMENTED.
class ListingRegistry final : public t2::v1::Registry::Service {
  grpc::Status ListExperts(grpc::ServerContext* context, const t2::v1::ListExpertsRequest*,
                           t2::v1::ListExpertsResponse*) override {
    // The processor consumed the token: a handler never sees (or logs) it.
    EXPECT_EQ(context->client_metadata().count("authorization"), 0u);
    return grpc::Status::OK;
  }
};

class SecureServerTest : public ::testing::Test {
 protected:
  void StartWith(const Security& security, const std::string& health_address = "") {
    auto credentials = MakeServerCredentials(security, "127.0.0.1:0");
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    auto server = StartServer({.address = "127.0.0.1:0",
                               .health_services = {t2::v1::Registry::service_full_name()},
                               .credentials = *credentials,
                               .health_address = health_address},
                              {&service_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    server_.SetServing(true);
  }
  ~SecureServerTest() override {
    if (server_.server) server_.server->Shutdown(std::chrono::system_clock::now());
  }

  // ListExperts over a fresh channel (no connection state kept between attempts).
  // 127.0.0.1, not localhost: a name would go through c-ares, whose resolver leaks a few bytes
  // per process that LeakSanitizer reports (the certificates name both).
  grpc::Status List(const Security& client, const std::string& host = "127.0.0.1") {
    auto credentials = MakeChannelCredentials(client);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto stub = t2::v1::Registry::NewStub(
        grpc::CreateCustomChannel(absl::StrCat(host, ":", server_.port), *credentials, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    t2::v1::ListExpertsRequest request;
    t2::v1::ListExpertsResponse response;
    return stub->ListExperts(&context, request, &response);
  }

  testing::ScratchDir dir_;
  ListingRegistry service_;
  RunningServer server_;
};

TEST_F(SecureServerTest, TlsServesClientsThatTrustItsCaAndMutualTlsNeedsAClientCertificate) {
  ASSERT_TRUE(WriteThrowawayPki(dir_ / "pki", {.names = {"registry", "client"}}).ok());
  ASSERT_TRUE(WriteThrowawayPki(dir_ / "other", {.names = {"client"}}).ok());
  EXPECT_EQ(std::filesystem::status(dir_ / "pki" / "client.key").permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  const auto pki = dir_ / "pki";
  StartWith({.cert_file = pki / "registry.pem",
             .key_file = pki / "registry.key",
             .ca_file = pki / "ca.pem",
             .require_client_cert = true});
  const Security client{
      .cert_file = pki / "client.pem", .key_file = pki / "client.key", .ca_file = pki / "ca.pem"};
  EXPECT_TRUE(List(client).ok());
  EXPECT_EQ(List({.ca_file = pki / "ca.pem"}).error_code(), grpc::StatusCode::UNAVAILABLE)
      << "no client certificate";
  const auto other = dir_ / "other";
  EXPECT_EQ(List({.cert_file = other / "client.pem",
                  .key_file = other / "client.key",
                  .ca_file = pki / "ca.pem"})
                .error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "a client certificate from another CA";
  EXPECT_EQ(List({.ca_file = other / "ca.pem"}).error_code(), grpc::StatusCode::UNAVAILABLE)
      << "a client that does not trust the server's CA";
  EXPECT_EQ(List({.insecure_loopback = true}).error_code(), grpc::StatusCode::UNAVAILABLE)
      << "plaintext to a TLS server";
}

// Kubernetes' gRPC probes speak plaintext: the health listener answers them, and nothing else.
TEST_F(SecureServerTest, ThePlaintextHealthListenerMirrorsServingAndAnswersNothingElse) {
  ASSERT_TRUE(WriteThrowawayPki(dir_ / "pki", {.names = {"registry"}}).ok());
  StartWith({.cert_file = dir_ / "pki" / "registry.pem", .key_file = dir_ / "pki" / "registry.key"},
            "127.0.0.1:0");
  ASSERT_FALSE(server_.health_address.empty());
  auto channel = grpc::CreateChannel(server_.health_address, grpc::InsecureChannelCredentials());
  const auto check = [&](const std::string& service) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    return status.ok()
               ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
               : absl::StrCat("error ", status.error_code());
  };
  EXPECT_EQ(check(""), "SERVING");
  EXPECT_EQ(check("t2.v1.Registry"), "SERVING");
  EXPECT_EQ(check("t2.v1.Nope"), absl::StrCat("error ", grpc::StatusCode::NOT_FOUND));
  server_.SetServing(false);
  EXPECT_EQ(check(""), "NOT_SERVING");
  EXPECT_EQ(CallGeneric(channel, "/t2.v1.Registry/ListExperts", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SecureServerTest, ReplacedCertificateFilesAreServedWithoutARestart) {
  ASSERT_TRUE(WriteThrowawayPki(dir_ / "old", {.names = {"registry"}}).ok());
  ASSERT_TRUE(WriteThrowawayPki(dir_ / "new", {.names = {"registry"}}).ok());
  const auto served = dir_ / "served";
  std::filesystem::create_directories(served);
  for (const char* file : {"registry.pem", "registry.key"})
    std::filesystem::copy_file(dir_ / "old" / file, served / file);
  StartWith({.cert_file = served / "registry.pem",
             .key_file = served / "registry.key",
             .reload_seconds = 1});
  const Security trusts_old{.ca_file = dir_ / "old" / "ca.pem"},
      trusts_new{.ca_file = dir_ / "new" / "ca.pem"};
  ASSERT_TRUE(List(trusts_old).ok());
  ASSERT_EQ(List(trusts_new).error_code(), grpc::StatusCode::UNAVAILABLE);

  for (const char* file : {"registry.key", "registry.pem"}) {
    std::filesystem::copy_file(dir_ / "new" / file, served / (std::string(file) + ".tmp"));
    std::filesystem::rename(served / (std::string(file) + ".tmp"), served / file);
  }
  bool renewed = false;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       !renewed && std::chrono::steady_clock::now() < until;) {
    renewed = List(trusts_new).ok();
    if (!renewed) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(renewed) << "the new certificate was not served within 30 s";
  EXPECT_EQ(List(trusts_old).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecureServerTest, EveryMethodRefusesUnauthenticatedAndWrongRoleCallersOverTheWire) {
  std::string auth;
  std::map<std::string, std::string> token_of_role;
  for (const char* role : kRoles) {
    token_of_role[role] = NewToken();
    auth += absl::StrCat("token ", TokenHash(token_of_role[role]), " only-", role, " ", role, "\n");
  }
  WriteFile(dir_ / "auth", auth);
  StartWith({.insecure_loopback = true, .auth_file = dir_ / "auth"});
  auto channel = grpc::CreateChannel(server_.address, LoopbackChannelCredentials());
  for (const auto& [method, roles] : MethodRoles()) {
    std::string wrong;
    for (const char* role : kRoles) {
      if (roles.count(role) == 0) wrong = role;
    }
    ASSERT_FALSE(wrong.empty()) << method;
    grpc::Status anonymous = CallGeneric(channel, method, "");
    EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_EQ(CallGeneric(channel, method, "not-a-token").error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << method;
    grpc::Status denied = CallGeneric(channel, method, token_of_role[wrong]);
    EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
    EXPECT_THAT(denied.error_message(), HasSubstr("only-" + wrong)) << method;
    for (const std::string& role : roles) {
      grpc::StatusCode passed = CallGeneric(channel, method, token_of_role[role]).error_code();
      EXPECT_NE(passed, grpc::StatusCode::UNAUTHENTICATED) << method << " as " << role;
      EXPECT_NE(passed, grpc::StatusCode::PERMISSION_DENIED) << method << " as " << role;
    }
  }
  // Health stays open to probes without credentials.
  EXPECT_NE(CallGeneric(channel, "/grpc.health.v1.Health/Check", "").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SecureServerTest, TokensAndCertificateNamesBothCarryRolesAndTheFileIsReReadWhenItChanges) {
  ASSERT_TRUE(
      WriteThrowawayPki(dir_ / "pki", {.names = {"registry", "dispatcher", "stranger"}}).ok());
  const auto pki = dir_ / "pki";
  const std::string token = NewToken();
  WriteFile(dir_ / "token", token + "\n");
  WriteFile(dir_ / "auth", "cert dispatcher read\n");
  StartWith({.cert_file = pki / "registry.pem",
             .key_file = pki / "registry.key",
             .ca_file = pki / "ca.pem",
             .auth_file = dir_ / "auth"});
  const auto as = [&](const std::string& name) {
    return Security{.cert_file = pki / (name + ".pem"),
                    .key_file = pki / (name + ".key"),
                    .ca_file = pki / "ca.pem"};
  };
  EXPECT_TRUE(List(as("dispatcher")).ok());
  grpc::Status stranger = List(as("stranger"));
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(stranger.error_message(), HasSubstr("'stranger' has no roles"));
  Security with_token{.ca_file = pki / "ca.pem", .token_file = dir_ / "token"};
  EXPECT_EQ(List(with_token).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Grant the token; the file's new modification time makes the server re-read it.
  WriteFile(dir_ / "auth",
            absl::StrCat("cert dispatcher read\ntoken ", TokenHash(token), " app read\n"));
  std::filesystem::last_write_time(
      dir_ / "auth", std::filesystem::last_write_time(dir_ / "auth") + std::chrono::seconds(2));
  bool granted = false;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
       !granted && std::chrono::steady_clock::now() < until;) {
    granted = List(with_token).ok();
    if (!granted) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(granted) << "the changed auth file was not picked up within 15 s";
  // A broken edit keeps the last good table.
  WriteFile(dir_ / "auth", "token garbage\n");
  std::filesystem::last_write_time(
      dir_ / "auth", std::filesystem::last_write_time(dir_ / "auth") + std::chrono::seconds(4));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_TRUE(List(with_token).ok());
}

}  // namespace
}  // namespace t2::rpc
