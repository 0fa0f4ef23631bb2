// rpc::GuardHandler: an exception from a handler costs only its call, and its text (which may
// name server files) reaches the log, never the client.
#include "t2/rpc/handler_guard.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>

namespace t2::rpc {
namespace {

TEST(HandlerGuardTest, PassesTheBodysStatusThrough) {
  const grpc::Status ok = GuardHandler("svc", "Ok", [] { return grpc::Status::OK; });
  EXPECT_TRUE(ok.ok());
  const grpc::Status bad = GuardHandler("svc", "Bad", [] {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "prompt: empty");
  });
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad.error_message(), "prompt: empty");
}

TEST(HandlerGuardTest, AnExceptionBecomesAGenericInternalErrorAndIsLogged) {
  testing::internal::CaptureStderr();
  const grpc::Status status = GuardHandler("registry", "PublishExpert", []() -> grpc::Status {
    throw std::runtime_error("/var/lib/t2/registry/tmp/upload-1234: header length exceeds");
  });
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(status.error_message(), "registry PublishExpert: internal error");
  EXPECT_NE(log.find("registry PublishExpert"), std::string::npos) << log;
  EXPECT_NE(log.find("/var/lib/t2/registry/tmp/upload-1234"), std::string::npos) << log;
}

TEST(HandlerGuardTest, CatchesBadAllocAndNonStandardExceptions) {
  const grpc::Status oom =
      GuardHandler("worker", "Score", []() -> grpc::Status { throw std::bad_alloc(); });
  EXPECT_EQ(oom.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(oom.error_message(), "worker Score: internal error");
  const grpc::Status odd = GuardHandler("worker", "Info", []() -> grpc::Status { throw 42; });
  EXPECT_EQ(odd.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(odd.error_message(), "worker Info: internal error");
}

}  // namespace
}  // namespace t2::rpc
