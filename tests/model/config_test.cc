#include "t2/model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "t2/model/device.h"
#include "t2/model/device_flags.h"

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

TEST(DeviceTest, ParsesWhatTheFlagsAccept) {
  EXPECT_EQ(DeviceSpec::Parse("auto").value(), DeviceSpec::Auto());
  EXPECT_EQ(DeviceSpec::Parse("cpu").value(), DeviceSpec::Cpu());
  EXPECT_EQ(DeviceSpec::Parse("cuda").value(), DeviceSpec::Cuda(0));
  EXPECT_EQ(DeviceSpec::Parse("cuda:3").value(), DeviceSpec::Cuda(3));
  for (const char* bad : {"tpu", "CPU", "cuda:", "cuda:-1", "cuda:+1", "cuda: 1", "cuda:1x",
                          "cuda:0x1", "cuda:99999999999", ""}) {
    auto parsed = DeviceSpec::Parse(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr(absl::StrCat("one of auto, cpu, cuda, cuda:N, got '", bad, "'")));
  }
  for (DeviceSpec d :
       {DeviceSpec::Auto(), DeviceSpec::Cpu(), DeviceSpec::Cuda(0), DeviceSpec::Cuda(7)}) {
    EXPECT_EQ(DeviceSpec::Parse(d.ToString()).value(), d) << d.ToString();
  }
  for (ComputeDType t : kComputeDTypes) {
    EXPECT_EQ(ParseComputeDType(ComputeDTypeName(t)).value(), t);
  }
  EXPECT_THAT(ParseComputeDType("int4").status().message(), HasSubstr("got 'int4'"));
}

TEST(DeviceTest, FlagsSetTheValuesAndNameTheFlagInErrors) {
  DeviceSpec device = DeviceSpec::Cpu();
  ComputeDType dtype = ComputeDType::kAuto;
  CommandLine command_line("example", "An example.");
  AddDeviceFlags(command_line, device, dtype);
  EXPECT_EQ(command_line.Parse({"--device", "cuda:2", "--dtype", "float16"}), std::nullopt);
  EXPECT_EQ(device, DeviceSpec::Cuda(2));
  EXPECT_EQ(dtype, ComputeDType::kFloat16);
  EXPECT_THAT(command_line.help(), HasSubstr("DEVICE=cpu"))
      << "the bound value is the default shown";

  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--device", "tpu"}, "--device: must be one of auto, cpu, cuda, cuda:N, got 'tpu'"},
           {{"--dtype", "int4"},
            "--dtype: must be one of auto|float32|bfloat16|float16, got 'int4'"}}) {
    DeviceSpec d;
    ComputeDType t = ComputeDType::kAuto;
    CommandLine fresh("example", "An example.");
    AddDeviceFlags(fresh, d, t);
    ::testing::internal::CaptureStderr();
    EXPECT_EQ(fresh.Parse(args), std::optional<int>(2)) << args[0];
    EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr(message));
    EXPECT_EQ(d, DeviceSpec::Auto()) << "a refused value leaves the default";
  }
}

TEST(DeviceTest, ResolvesAndRejects) {
  auto cpu = ResolveDevice(DeviceSpec::Cpu(), ComputeDType::kAuto);
  ASSERT_TRUE(cpu.ok());
  EXPECT_TRUE(cpu->device.is_cpu());
  EXPECT_EQ(cpu->dtype, c10::kFloat);
  EXPECT_THAT(ResolveDevice(DeviceSpec::Cpu(), ComputeDType::kBFloat16).status().message(),
              HasSubstr("only supported on CUDA"));
  EXPECT_THAT(ResolveDevice(DeviceSpec::Cpu(), ComputeDType::kFloat16).status().message(),
              HasSubstr("float16"));
  if (!CudaAvailable()) {
    EXPECT_EQ(ResolveDevice(DeviceSpec::Cuda(), ComputeDType::kAuto).status().code(),
              absl::StatusCode::kFailedPrecondition);
    auto fallback = ResolveDevice(DeviceSpec::Auto(), ComputeDType::kAuto);
    ASSERT_TRUE(fallback.ok());
    EXPECT_TRUE(fallback->device.is_cpu());
  } else {
    EXPECT_EQ(ResolveDevice(DeviceSpec::Cuda(4096), ComputeDType::kAuto).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ResolveDevice(DeviceSpec::Cuda(), ComputeDType::kAuto)->dtype, c10::kBFloat16);
  }
}

}  // namespace
}  // namespace t2::model
