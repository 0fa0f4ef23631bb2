// Expert files: a write/read round trip keeps every value and metadata key, and each way a
// file can be wrong (truncated, wrong dtype or rank, bad values, missing or extra matrices,
// unknown version, missing metadata, another base model, targets the decomposition lacks)
// is rejected with a message that names the tensor or key.
#include "t2/svf/expert.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "t2/formats/safetensors.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "testing/reference_data.h"

namespace t2::svf {
namespace {

namespace fs = std::filesystem;
using t2::testing::FixturesDir;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A tensor as raw bytes, so that tests can write what WriteExpert never would.
struct RawTensor {
  std::string name;
  formats::SafetensorsDType dtype = formats::SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
struct RawFile {
  std::vector<RawTensor> tensors;
  std::map<std::string, std::string> metadata;
  RawTensor* Find(const std::string& name) {
    for (RawTensor& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
};

RawFile ReadRaw(const fs::path& path) {
  RawFile raw;
  auto file = formats::SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return raw;
  raw.metadata = file->metadata();
  for (const auto& t : file->tensors()) {
    raw.tensors.push_back({t.name, t.dtype, t.shape, {t.data.begin(), t.data.end()}});
  }
  return raw;
}

void WriteRaw(const fs::path& path, const RawFile& raw) {
  std::vector<formats::SafetensorsTensorView> views;
  for (const RawTensor& t : raw.tensors) views.push_back({t.name, t.dtype, t.shape, t.bytes});
  ASSERT_TRUE(formats::WriteSafetensors(path, views, raw.metadata).ok());
}

void SetFloat(RawTensor& t, size_t index, float value) {
  std::memcpy(t.bytes.data() + index * sizeof(float), &value, sizeof(float));
}

class ExpertFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = model::LlamaModel::Load(FixturesDir("model/tiny") / "llama",
                                         {.device = t2::model::DeviceSpec::Cpu()});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto mlp = Decomposition::Build(*model_, {.targets = TargetSet::kMlp});
    ASSERT_TRUE(mlp.ok()) << mlp.status();
    mlp_ = std::make_unique<Decomposition>(std::move(*mlp));
    dir_ = fs::temp_directory_path() /
           ("t2_expert_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A valid expert with distinct values in every vector.
  Expert Sample() const {
    Expert expert = ConstantExpert(*mlp_, 1.0f, "tiny-llama");
    expert.metadata.task = "math";
    expert.metadata.metrics_json = R"({"accuracy":0.75,"steps":12})";
    at::manual_seed(11);
    for (auto& [name, z] : expert.z) z = at::rand(z.sizes()) + 0.01;
    return expert;
  }

  // Writes Sample(), lets `edit` corrupt the raw file, writes it back, and loads it.
  absl::StatusOr<Expert> LoadEdited(const std::function<void(RawFile&)>& edit,
                                    const ExpertLoadOptions& options = {}) {
    const fs::path path = dir_ / "edited.safetensors";
    EXPECT_TRUE(WriteExpert(Sample(), path).ok());
    RawFile raw = ReadRaw(path);
    edit(raw);
    WriteRaw(path, raw);
    return LoadExpert(path, *mlp_, options);
  }

  std::string FirstName() const { return mlp_->names().front(); }
  std::string LastName() const { return mlp_->names().back(); }

  std::unique_ptr<model::LlamaModel> model_;
  std::unique_ptr<Decomposition> mlp_;
  fs::path dir_;
};

TEST(Normalization, NamesRoundTripAndUnknownNamesAreRejected) {
  for (Normalization n : {Normalization::kNuclearNorm, Normalization::kNone}) {
    auto parsed = ParseNormalization(NormalizationName(n));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, n);
  }
  EXPECT_EQ(NormalizationName(Normalization::kNuclearNorm), "nuclear");
  auto bad = ParseNormalization("frobenius");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("'frobenius'"));
}

TEST_F(ExpertFileTest, WriteThenReadKeepsValuesAndMetadata) {
  const Expert expert = Sample();
  const fs::path path = dir_ / "expert.safetensors";
  ASSERT_TRUE(WriteExpert(expert, path).ok());
  auto read = ReadExpert(path);
  ASSERT_TRUE(read.ok()) << read.status();
  const ExpertMetadata& m = read->metadata;
  EXPECT_EQ(m.format_version, kExpertFormatVersion);
  EXPECT_EQ(m.base_model, "tiny-llama");
  EXPECT_EQ(m.base_fingerprint, mlp_->base_fingerprint());
  EXPECT_EQ(m.targets, TargetSet::kMlp);
  EXPECT_EQ(m.normalization, Normalization::kNuclearNorm);
  EXPECT_EQ(m.task, "math");
  EXPECT_EQ(m.metrics_json, expert.metadata.metrics_json);
  EXPECT_THAT(m.created_at, MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"));
  ASSERT_EQ(read->z.size(), expert.z.size());
  for (const auto& [name, z] : expert.z) {
    ASSERT_EQ(read->z.count(name), 1u) << name;
    EXPECT_TRUE(at::equal(read->z.at(name), z)) << name;
  }
  EXPECT_TRUE(ValidateExpert(*read, *mlp_).ok());

  // A created_at that is already set is kept; the other normalisation round-trips too.
  Expert again = expert;
  again.metadata.created_at = "2025-01-14T09:30:00Z";
  again.metadata.normalization = Normalization::kNone;
  ASSERT_TRUE(WriteExpert(again, path).ok());
  auto reread = LoadExpert(path, *mlp_);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->metadata.created_at, "2025-01-14T09:30:00Z");
  EXPECT_EQ(reread->metadata.normalization, Normalization::kNone);
}

TEST_F(ExpertFileTest, ConstantExpertCoversEveryMatrixWithItsRank) {
  const Expert expert = ConstantExpert(*mlp_, 0.25f, "tiny-llama");
  EXPECT_EQ(expert.z.size(), mlp_->names().size());
  for (const std::string& name : mlp_->names()) {
    ASSERT_EQ(expert.z.count(name), 1u) << name;
    EXPECT_EQ(expert.z.at(name).size(0), mlp_->Find(name)->rank());
    EXPECT_TRUE(at::equal(expert.z.at(name), at::full({mlp_->Find(name)->rank()}, 0.25f)));
  }
  EXPECT_TRUE(ValidateExpert(expert, *mlp_).ok());
}

TEST_F(ExpertFileTest, TruncatedFileIsRejected) {
  const fs::path path = dir_ / "truncated.safetensors";
  ASSERT_TRUE(WriteExpert(Sample(), path).ok());
  fs::resize_file(path, fs::file_size(path) - 100);
  auto read = ReadExpert(path);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("truncated"));
  EXPECT_THAT(read.status().message(), HasSubstr("truncated.safetensors"));
  fs::resize_file(path, 5);
  EXPECT_THAT(ReadExpert(path).status().message(), HasSubstr("too short"));
  EXPECT_EQ(ReadExpert(dir_ / "absent.safetensors").status().ok(), false);
}

TEST_F(ExpertFileTest, F16TensorIsRejected) {
  const std::string name = FirstName();
  auto loaded = LoadEdited([&](RawFile& raw) {
    RawTensor* t = raw.Find(name);
    t->dtype = formats::SafetensorsDType::kF16;
    t->bytes.resize(t->bytes.size() / 2);
  });
  EXPECT_THAT(loaded.status().message(), HasSubstr("expert tensor '" + name + "': dtype F16, expected F32"));
}

TEST_F(ExpertFileTest, TwoDimensionalTensorIsRejected) {
  const std::string name = LastName();
  auto loaded = LoadEdited([&](RawFile& raw) {
    RawTensor* t = raw.Find(name);
    t->shape = {1, t->shape[0]};
  });
  EXPECT_THAT(loaded.status().message(), HasSubstr("expert tensor '" + name + "': 2-D"));
}

TEST_F(ExpertFileTest, LengthMismatchIsRejected) {
  const std::string name = LastName();
  const int64_t r = mlp_->Find(name)->rank();
  auto loaded = LoadEdited([&](RawFile& raw) {
    RawTensor* t = raw.Find(name);
    t->shape = {r - 1};
    t->bytes.resize(t->bytes.size() - sizeof(float));
  });
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("expert tensor '" + name + "': length " + std::to_string(r - 1) + ", expected " +
                        std::to_string(r)));
}

TEST_F(ExpertFileTest, NegativeNanAndInfValuesAreRejected) {
  const std::string name = FirstName();
  const struct {
    float value;
    const char* message;
  } cases[] = {{-0.5f, "negative value -0.5 at index 7"},
               {std::numeric_limits<float>::quiet_NaN(), "value NaN at index 7"},
               {std::numeric_limits<float>::infinity(), "value Inf at index 7"},
               {-std::numeric_limits<float>::infinity(), "value Inf at index 7"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message);
    auto loaded = LoadEdited([&](RawFile& raw) { SetFloat(*raw.Find(name), 7, c.value); });
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(loaded.status().message(), HasSubstr("expert tensor '" + name + "': " + c.message));
  }
}

TEST_F(ExpertFileTest, MissingMatrixIsRejected) {
  const std::string name = mlp_->names()[4];
  auto loaded = LoadEdited([&](RawFile& raw) {
    std::erase_if(raw.tensors, [&](const RawTensor& t) { return t.name == name; });
  });
  EXPECT_THAT(loaded.status().message(), HasSubstr("expert tensor '" + name + "': missing"));
}

TEST_F(ExpertFileTest, ExtraMatricesAreRejected) {
  // A target name beyond the model's layers: only the decomposition can tell.
  const std::string beyond = "model.layers.7.mlp.up_proj.weight";
  auto loaded = LoadEdited([&](RawFile& raw) {
    RawTensor extra = *raw.Find(FirstName());
    extra.name = beyond;
    raw.tensors.push_back(extra);
  });
  EXPECT_THAT(loaded.status().message(), HasSubstr("expert tensor '" + beyond + "': not a target matrix"));
  // Names outside the expert's target set are rejected by the reader alone.
  for (const std::string name : {"model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"}) {
    auto read = LoadEdited([&](RawFile& raw) {
      RawTensor extra = *raw.Find(FirstName());
      extra.name = name;
      raw.tensors.push_back(extra);
    });
    EXPECT_THAT(read.status().message(), HasSubstr("expert tensor '" + name + "': not a matrix of target set 'mlp'"));
  }
}

TEST_F(ExpertFileTest, UnknownFormatVersionIsRejected) {
  auto loaded = LoadEdited([](RawFile& raw) { raw.metadata["format_version"] = "2"; });
  EXPECT_THAT(loaded.status().message(), HasSubstr("'format_version': '2' is not supported"));
}

TEST_F(ExpertFileTest, EachMissingMetadataKeyIsNamed) {
  for (const std::string key : {"format_version", "base_model", "base_fingerprint", "targets", "normalization",
                                "task", "metrics", "created_at"}) {
    auto loaded = LoadEdited([&](RawFile& raw) { raw.metadata.erase(key); });
    EXPECT_THAT(loaded.status().message(), HasSubstr("missing key '" + key + "'"));
  }
}

TEST_F(ExpertFileTest, BadMetadataValuesAreNamed) {
  EXPECT_THAT(LoadEdited([](RawFile& raw) { raw.metadata["targets"] = "lm_head"; }).status().message(),
              HasSubstr("'lm_head'"));
  EXPECT_THAT(LoadEdited([](RawFile& raw) { raw.metadata["normalization"] = "l2"; }).status().message(),
              HasSubstr("normalization: 'l2'"));
  EXPECT_THAT(LoadEdited([](RawFile& raw) { raw.metadata["metrics"] = "[1, 2"; }).status().message(),
              HasSubstr("'metrics': not a JSON object"));
}

TEST_F(ExpertFileTest, OtherBaseModelIsRejectedUnlessAllowed) {
  auto edit = [](RawFile& raw) {
    raw.metadata["base_fingerprint"] = std::string(64, 'a');
    raw.metadata["base_model"] = "Mistral-7B";
  };
  auto strict = LoadEdited(edit);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(strict.status().message(), HasSubstr("'Mistral-7B'"));
  EXPECT_THAT(strict.status().message(), HasSubstr("fingerprint aaaaaaaaaaaaaaaa"));
  auto allowed = LoadEdited(edit, {.allow_base_mismatch = true});
  EXPECT_TRUE(allowed.ok()) << allowed.status();
  // Shapes are still checked when the base may differ.
  const std::string name = FirstName();
  auto shapes = LoadEdited(
      [&](RawFile& raw) {
        edit(raw);
        raw.Find(name)->shape = {1};
        raw.Find(name)->bytes.resize(sizeof(float));
      },
      {.allow_base_mismatch = true});
  EXPECT_THAT(shapes.status().message(), HasSubstr("expert tensor '" + name + "': length 1"));
}

TEST_F(ExpertFileTest, TargetsTheDecompositionLacksAreRejected) {
  auto all = Decomposition::Build(*model_, {.targets = TargetSet::kAll});
  ASSERT_TRUE(all.ok()) << all.status();
  const fs::path path = dir_ / "all.safetensors";
  ASSERT_TRUE(WriteExpert(ConstantExpert(*all, 0.5f, "tiny-llama"), path).ok());
  auto loaded = LoadExpert(path, *mlp_);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(loaded.status().message(), HasSubstr("targets 'all' are not covered by the decomposition"));
  // The other way round is fine: an MLP expert on an attention+MLP decomposition.
  EXPECT_TRUE(ValidateExpert(Sample(), *all).ok());
}

TEST_F(ExpertFileTest, InMemoryExpertsAreCheckedToo) {
  Expert zeros = ConstantExpert(*mlp_, 0.0f, "tiny-llama");
  EXPECT_THAT(ValidateExpert(zeros, *mlp_).message(), HasSubstr("nuclear normalisation is undefined"));
  zeros.metadata.normalization = Normalization::kNone;
  EXPECT_TRUE(ValidateExpert(zeros, *mlp_).ok());  // W' = 0 is odd but well defined

  Expert doubles = Sample();
  doubles.z[FirstName()] = doubles.z[FirstName()].to(at::kDouble);
  EXPECT_THAT(ValidateExpert(doubles, *mlp_).message(), HasSubstr("not float32"));

  Expert bad_metrics = Sample();
  bad_metrics.metadata.metrics_json = "not json";
  EXPECT_THAT(WriteExpert(bad_metrics, dir_ / "x.safetensors").message(), HasSubstr("'metrics'"));
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

}  // namespace
}  // namespace t2::svf
