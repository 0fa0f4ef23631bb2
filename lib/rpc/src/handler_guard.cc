#include "t2/rpc/handler_guard.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/common/status.h"

namespace t2::rpc {

grpc::Status GuardHandler(std::string_view service, std::string_view method,
                          absl::FunctionRef<grpc::Status()> body) {
  std::string detail;
  try {
    return body();
  } catch (const std::exception& e) {
    detail = e.what();
  } catch (...) {
    detail = "an exception that is not a std::exception";
  }
  LogError(absl::StrCat(AsAbsl(service), " ", AsAbsl(method), ": unexpected exception: ", detail));
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      absl::StrCat(AsAbsl(service), " ", AsAbsl(method), ": internal error"));
}

}  // namespace t2::rpc
