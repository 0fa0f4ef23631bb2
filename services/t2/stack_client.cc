#include "stack_client.h"

#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/common/sha256.h"
#include "t2/rpc/status.h"
#include "t2/v1/registry.grpc.pb.h"

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

absl::Status PublishExpertFile(const std::shared_ptr<grpc::Channel>& channel, const std::string& name,
                               int64_t version, const std::filesystem::path& file, std::ostream& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", file.string()));
  std::string blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto stub = t2::v1::Registry::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  t2::v1::ExpertInfo info;
  auto writer = stub->PublishExpert(&context, &info);
  t2::v1::PublishExpertRequest header;
  header.mutable_header()->set_name(name);
  header.mutable_header()->set_version(version);
  header.mutable_header()->set_size_bytes(static_cast<int64_t>(blob.size()));
  header.mutable_header()->set_sha256(Sha256Hex(blob));
  bool ok = writer->Write(header);
  constexpr size_t kChunk = 1 << 20;
  for (size_t offset = 0; ok && offset < blob.size(); offset += kChunk) {
    t2::v1::PublishExpertRequest chunk;
    chunk.set_chunk(blob.substr(offset, kChunk));
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return rpc::FromGrpc(status);
  out << "published " << info.name() << "@" << info.version() << " sha256 " << info.sha256() << " (" << info.size_bytes()
      << " bytes, base " << info.base_model() << ")\n";
  return absl::OkStatus();
}

}  // namespace t2::cli
