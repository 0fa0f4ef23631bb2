#include "t2/common/status.h"

#include <gtest/gtest.h>

#include "t2/common/env.h"

namespace t2 {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  T2_ASSIGN_OR_RETURN(int half, Half(x));
  T2_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int x) {
  T2_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacros, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).message(), "odd");
}

TEST(StatusMacros, AnnotateKeepsCode) {
  auto s = Annotate(absl::NotFoundError("x"), "loading y");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "loading y: x");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "ctx").ok());
}

TEST(Env, ResolveModelPathRejectsMissing) {
  EXPECT_EQ(ResolveModelPath("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveModelPath("/nonexistent/model.gguf").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace t2
