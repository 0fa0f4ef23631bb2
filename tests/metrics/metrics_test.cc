// The /metrics endpoint and the gRPC servers' call metrics, read back the way Prometheus reads
// them: an HTTP GET of the text format, linted by promtool.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "prometheus/counter.h"
#include "t2/metrics/endpoint.h"
#include "t2/metrics/label_cap.h"
#include "t2/metrics/process_collector.h"
#include "t2/metrics/service_metrics.h"
#include "t2/rpc/security.h"
#include "t2/rpc/server.h"
#include "testing/scratch_dir.h"

namespace t2::metrics {
namespace {

using ::testing::HasSubstr;

std::string Scrape(const Endpoint& endpoint) {
  const size_t colon = endpoint.address().rfind(':');
  std::string host = endpoint.address().substr(0, colon);
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  httplib::Client client(host, std::stoi(endpoint.address().substr(colon + 1)));
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  auto response = client.Get("/metrics");
  if (!response || response->status != 200) return "";
  return response->body;
}

// The value of the sample whose name and labels are exactly `series` (as the text format
// writes them, labels sorted); -1 when there is none.
double Sample(const std::string& text, const std::string& series) {
  for (const std::string& line : std::vector<std::string>(absl::StrSplit(text, '\n'))) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      double value = -1;
      return absl::SimpleAtod(line.substr(series.size() + 1), &value) ? value : -1;
    }
  }
  return -1;
}

// promtool's lint of the text: empty when clean, else its complaints.
std::string Promtool(const std::string& text) {
  const char* promtool = std::getenv("T2_PROMTOOL");
  if (promtool == nullptr) return "T2_PROMTOOL is not set";
  t2::testing::ScratchDir dir;
  const auto file = dir.path() / "metrics.txt";
  std::ofstream(file) << text;
  const std::string command = absl::StrCat("timeout 60 ", promtool, " check metrics < ", file.string(), " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "cannot run promtool";
  std::string out;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  const int rc = pclose(pipe);
  return rc == 0 ? "" : absl::StrCat("promtool exit ", rc, ": ", out);
}

TEST(LabelCap, AdmitsTheFirstValuesAndMapsTheRestToOther) {
  LabelCap cap(2);
  EXPECT_EQ(cap.Admit("math"), "math");
  EXPECT_EQ(cap.Admit("code"), "code");
  EXPECT_EQ(cap.Admit("random-1"), "other");
  EXPECT_EQ(cap.Admit("math"), "math");
  EXPECT_EQ(cap.Admit("other"), "other");
}

TEST(Endpoint, ServesTheRegistryOnAPickedPort) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("t2_test_things_total").Help("things").Register(*registry).Add({}).Increment(3);
  auto endpoint = Endpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  EXPECT_THAT((*endpoint)->address(), ::testing::StartsWith("127.0.0.1:"));
  EXPECT_NE((*endpoint)->address(), "127.0.0.1:0");
  const std::string text = Scrape(**endpoint);
  EXPECT_EQ(Sample(text, "t2_test_things_total"), 3) << text;
  EXPECT_EQ(Promtool(text), "");

  auto v6 = Endpoint::Start("[::1]:0", registry);
  if (v6.ok()) {  // where the machine has IPv6 loopback
    EXPECT_THAT((*v6)->address(), ::testing::StartsWith("[::1]:"));
    EXPECT_EQ(Sample(Scrape(**v6), "t2_test_things_total"), 3);
  }

  // The port taken: a clear error, not an exception.
  auto second = Endpoint::Start((*endpoint)->address(), registry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr((*endpoint)->address()));
}

TEST(ProcessCollector, FollowsTheHeapAndTheDescriptorsOfThisProcess) {
  const ProcessMemory before = ReadProcessMemory();
  ASSERT_TRUE(before.resident_bytes.has_value());
  ASSERT_TRUE(before.open_fds.has_value());
  EXPECT_GT(*before.resident_bytes, 0u);

  // 64 MiB touched: malloc hands it out (mmapped, so it is also given back on free).
  constexpr size_t kBytes = 64u << 20;
  char* block = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBytes);
  const int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  const ProcessMemory holding = ReadProcessMemory();
  EXPECT_GE(*holding.resident_bytes, *before.resident_bytes + kBytes / 2);
  EXPECT_EQ(*holding.open_fds, *before.open_fds + 1);

  std::free(block);
  close(fd);
  const ProcessMemory after = ReadProcessMemory();
  EXPECT_EQ(*after.open_fds, *before.open_fds);
  if (!before.heap) GTEST_SKIP() << "no malloc statistics under a sanitizer";
  EXPECT_GE(holding.heap->in_use_bytes, before.heap->in_use_bytes + kBytes);
  EXPECT_LT(after.heap->in_use_bytes, holding.heap->in_use_bytes - kBytes / 2);
}

TEST(ServiceMetrics, EveryServiceServesItsProcessFigures) {
  auto metrics = StartServiceMetrics({.listen = "127.0.0.1:0"});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const std::string text = Scrape(*metrics->endpoint);
  EXPECT_GT(Sample(text, "process_resident_memory_bytes"), 0) << text;
  EXPECT_GT(Sample(text, "process_open_fds"), 2) << text;  // at least stdio and the listener
  EXPECT_EQ(Promtool(text), "");
  if (!ReadHeapUsage()) GTEST_SKIP() << "no malloc statistics under a sanitizer";
  EXPECT_GT(Sample(text, "t2_heap_in_use_bytes"), 0) << text;
  EXPECT_GE(Sample(text, "t2_heap_free_bytes"), 0) << text;
}

TEST(Endpoint, RejectsMalformedAddresses) {
  auto registry = std::make_shared<prometheus::Registry>();
  for (const char* address : {"", "9090", ":9090", "127.0.0.1:http", "127.0.0.1:70000", "127.0.0.1:-1"}) {
    auto endpoint = Endpoint::Start(address, registry);
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
}

TEST(ServerMetrics, CountsAndTimesEveryCallByMethodAndCode) {
  auto registry = std::make_shared<prometheus::Registry>();
  rpc::ServerOptions options;
  options.metrics = registry.get();
  auto server = rpc::StartServer(options, {});
  ASSERT_TRUE(server.ok()) << server.status();
  server->SetServing(true);
  auto channel = grpc::CreateChannel(server->address, t2::rpc::LoopbackChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  for (const char* service : {"", "", "no.such.Service"}) {  // OK, OK, NOT_FOUND
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    (void)health->Check(&context, request, &response);
  }
  {  // A path no service serves: counted, but under "other" (a client picks the path).
    grpc::GenericStub generic(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), response;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&context, "/made.up.Service/Anything", grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) { done.set_value(s); });
    EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  auto endpoint = Endpoint::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const std::string text = Scrape(**endpoint);
  const std::string check = R"(grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary")";
  EXPECT_EQ(Sample(text, absl::StrCat("grpc_server_started_total{", check, "}")), 3) << text;
  EXPECT_EQ(Sample(text, absl::StrCat("grpc_server_handled_total{grpc_code=\"OK\",", check, "}")), 2) << text;
  EXPECT_EQ(Sample(text, absl::StrCat("grpc_server_handled_total{grpc_code=\"NotFound\",", check, "}")), 1) << text;
  // The latency histogram is by code as well: 2 OK calls, 1 NOT_FOUND.
  EXPECT_EQ(Sample(text, absl::StrCat("grpc_server_handling_seconds_count{grpc_code=\"OK\",", check, "}")), 2) << text;
  EXPECT_EQ(Sample(text, absl::StrCat("grpc_server_handling_seconds_bucket{grpc_code=\"NotFound\",", check,
                                      ",le=\"+Inf\"}")),
            1)
      << text;
  EXPECT_EQ(Sample(text, R"(grpc_server_handled_total{grpc_code="Unimplemented",grpc_method="other",)"
                         R"(grpc_service="other",grpc_type="bidi_stream"})"), 1) << text;
  EXPECT_THAT(text, ::testing::Not(HasSubstr("made.up")));
  EXPECT_EQ(Promtool(text), "");
  server->server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace t2::metrics
