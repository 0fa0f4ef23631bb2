#include "t2/model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "t2/model/device.h"

namespace t2::model {
namespace {

using ::testing::HasSubstr;

class HfConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("t2_config_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& json) { std::ofstream(dir_ / "config.json") << json; }
  std::filesystem::path dir_;
};

constexpr const char* kLlama = R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})";

TEST_F(HfConfigTest, ReadsLlamaFields) {
  Write(kLlama);
  auto c = ConfigFromHfDir(dir_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_TRUE(c->rope_scaling.enabled);
  EXPECT_FALSE(c->attention_bias);
}

TEST_F(HfConfigTest, RejectsBadInputNamingTheField) {
  Write("{not json");
  EXPECT_THAT(ConfigFromHfDir(dir_).status().message(), HasSubstr("not a JSON object"));
  Write(R"({"model_type": "gpt2"})");
  EXPECT_EQ(ConfigFromHfDir(dir_).status().code(), absl::StatusCode::kUnimplemented);
  Write(R"({"model_type": "llama", "vocab_size": 100})");
  EXPECT_THAT(ConfigFromHfDir(dir_).status().message(), HasSubstr("hidden_size"));
  Write(R"({"model_type": "llama", "vocab_size": "100"})");
  EXPECT_THAT(ConfigFromHfDir(dir_).status().message(), HasSubstr("vocab_size must be an integer"));
  std::string odd = kLlama;
  odd.replace(odd.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
  Write(odd);
  EXPECT_THAT(ConfigFromHfDir(dir_).status().message(), HasSubstr("num_key_value_heads"));
  EXPECT_EQ(ConfigFromHfDir(dir_ / "missing").status().code(), absl::StatusCode::kNotFound);
}

TEST(DeviceTest, ResolvesAndRejects) {
  auto cpu = ResolveDevice("cpu", "auto");
  ASSERT_TRUE(cpu.ok());
  EXPECT_TRUE(cpu->device.is_cpu());
  EXPECT_EQ(cpu->dtype, c10::kFloat);
  EXPECT_THAT(ResolveDevice("tpu", "auto").status().message(), HasSubstr("tpu"));
  EXPECT_THAT(ResolveDevice("cpu", "bfloat16").status().message(), HasSubstr("only supported on CUDA"));
  EXPECT_THAT(ResolveDevice("cpu", "int4").status().message(), HasSubstr("int4"));
  if (!CudaAvailable()) {
    EXPECT_EQ(ResolveDevice("cuda", "auto").status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

}  // namespace
}  // namespace t2::model
