#include "stack_client.h"

#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/rpc/status.h"

namespace t2::cli {

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service, double timeout_seconds) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return t2::rpc::FromGrpc(status);
  return response.status();
}

std::string AdaptationName(const t2::v1::Adaptation& a) {
  switch (a.strategy_case()) {
    case t2::v1::Adaptation::kExpert: return "expert " + a.expert();
    case t2::v1::Adaptation::kMixture: return "mixture " + a.mixture();
    case t2::v1::Adaptation::kPrompt: return "prompt classification";
    case t2::v1::Adaptation::kClassifierExpert: return "classification expert";
    case t2::v1::Adaptation::kFewShotTask: return "few-shot task " + a.few_shot_task();
    default: return "base model";
  }
}

absl::Status StreamThroughDispatcher(const std::shared_ptr<grpc::Channel>& channel,
                                     const t2::v1::GenerateRequest& request, std::ostream& out, std::ostream& info,
                                     double timeout_seconds) {
  auto stub = t2::v1::Dispatcher::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  auto reader = stub->GenerateStream(&context, request);
  t2::v1::GenerateStreamResponse message;
  while (reader->Read(&message)) {
    if (message.has_first_pass()) {
      const auto& fp = message.first_pass();
      info << "[t2] first pass: strategy " << fp.strategy();
      if (!fp.category().empty()) info << ", category " << fp.category();
      info << ", adapter " << fp.adapter() << absl::StrFormat(" (%.1f ms)", fp.duration_ms()) << "\n";
    }
    out << message.text() << std::flush;
    if (message.finish_reason() != t2::v1::FINISH_REASON_UNSPECIFIED) {
      out << "\n";
      info << "[t2] finish: " << t2::v1::FinishReason_Name(message.finish_reason()) << ", "
           << message.usage().prompt_tokens() << " prompt + " << message.usage().completion_tokens()
           << " generated tokens\n";
    }
  }
  return rpc::FromGrpc(reader->Finish());
}

}  // namespace t2::cli
