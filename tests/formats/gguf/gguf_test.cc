// GgufFile on real files: one written by the Python gguf package's GGUFWriter (every metadata
// type, every supported tensor type) and the default SmolLM2 model.
#include "t2/formats/gguf.h"

#include <cmath>
#include <string>
#include <vector>

#include "gguf_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "t2/formats/dequantize.h"

namespace t2::formats {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing_util::BitEqual;
using testing_util::FixturesDir;

std::vector<float> DequantizeTensor(const GgufTensorInfo& t) {
  std::vector<float> out(t.n_elements);
  const absl::Status s = Dequantize(t.type, t.data, out);
  EXPECT_TRUE(s.ok()) << t.name << ": " << s;
  return out;
}

class WriterFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto file = GgufFile::Open(FixturesDir() / "writer.gguf");
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::make_unique<GgufFile>(*std::move(file));
  }
  std::unique_ptr<GgufFile> file_;
};

TEST_F(WriterFileTest, Header) {
  EXPECT_EQ(file_->version(), 3u);
  EXPECT_EQ(file_->alignment(), 64u);
  EXPECT_EQ(*file_->GetUint("general.alignment"), 64u);
  EXPECT_EQ(*file_->GetString("general.architecture"), "t2test");
}

TEST_F(WriterFileTest, ScalarMetadataOfEveryType) {
  const GgufFile& f = *file_;
  EXPECT_EQ(f.metadata().at("t.u8").type, GgufValueType::kUint8);
  EXPECT_EQ(*f.GetUint("t.u8"), 200u);
  EXPECT_EQ(f.metadata().at("t.i8").type, GgufValueType::kInt8);
  EXPECT_EQ(*f.GetInt("t.i8"), -100);
  EXPECT_EQ(f.metadata().at("t.u16").type, GgufValueType::kUint16);
  EXPECT_EQ(*f.GetUint("t.u16"), 60000u);
  EXPECT_EQ(f.metadata().at("t.i16").type, GgufValueType::kInt16);
  EXPECT_EQ(*f.GetInt("t.i16"), -30000);
  EXPECT_EQ(f.metadata().at("t.u32").type, GgufValueType::kUint32);
  EXPECT_EQ(*f.GetUint("t.u32"), 4000000000u);
  EXPECT_EQ(*f.GetInt("t.u32"), 4000000000);  // any integer type whose value fits
  EXPECT_EQ(f.metadata().at("t.i32").type, GgufValueType::kInt32);
  EXPECT_EQ(*f.GetInt("t.i32"), -2000000000);
  EXPECT_EQ(f.metadata().at("t.u64").type, GgufValueType::kUint64);
  EXPECT_EQ(*f.GetUint("t.u64"), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(f.metadata().at("t.i64").type, GgufValueType::kInt64);
  EXPECT_EQ(*f.GetInt("t.i64"), -(int64_t{1} << 62) - 7);
  EXPECT_EQ(f.metadata().at("t.f32").type, GgufValueType::kFloat32);
  EXPECT_EQ(*f.GetFloat("t.f32"), static_cast<double>(0.1f));
  EXPECT_EQ(f.metadata().at("t.f64").type, GgufValueType::kFloat64);
  EXPECT_EQ(*f.GetFloat("t.f64"), 0.1);
  EXPECT_EQ(*f.GetFloat("t.i16"), -30000.0);  // integers widen to double
  EXPECT_EQ(f.metadata().at("t.true").type, GgufValueType::kBool);
  EXPECT_TRUE(*f.GetBool("t.true"));
  EXPECT_FALSE(*f.GetBool("t.false"));
  EXPECT_EQ(*f.GetString("t.str"), "h\xc3\xa9llo \xe2\x9c\x93");
  EXPECT_EQ(*f.GetString("t.empty"), "");
}

TEST_F(WriterFileTest, ArrayMetadata) {
  const GgufFile& f = *file_;
  EXPECT_THAT(*f.GetStringArray("t.arr_str"), ElementsAre("alpha", "", "\xce\xb3"));
  EXPECT_THAT(*f.GetIntArray("t.arr_u8"), ElementsAre(0, 255, 7));
  EXPECT_THAT(*f.GetIntArray("t.arr_i16"), ElementsAre(-1, 2, -32768));
  EXPECT_THAT(*f.GetIntArray("t.arr_i32"), ElementsAre(1, -2, 3));
  EXPECT_THAT(*f.GetFloatArray("t.arr_f32"), ElementsAre(0.5, -1.25, 3.0));
  EXPECT_THAT(*f.GetFloatArray("t.arr_f64"), ElementsAre(0.1, -2.5));
  EXPECT_THAT(*f.GetFloatArray("t.arr_i32"), ElementsAre(1.0, -2.0, 3.0));

  const auto& u8 = std::get<GgufArray>(f.metadata().at("t.arr_u8").value);
  EXPECT_EQ(u8.element_type, GgufValueType::kUint8);
  EXPECT_EQ(u8.values[1].type, GgufValueType::kUint8);
  const auto& u64 = std::get<GgufArray>(f.metadata().at("t.arr_u64").value);
  EXPECT_EQ(u64.element_type, GgufValueType::kUint64);
  ASSERT_EQ(u64.values.size(), 2u);
  EXPECT_EQ(std::get<uint64_t>(u64.values[0].value), ~uint64_t{0});
  // 2^64-1 does not fit int64.
  const auto too_big = f.GetIntArray("t.arr_u64");
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_big.status().message()), HasSubstr("t.arr_u64"));

  const auto& bools = std::get<GgufArray>(f.metadata().at("t.arr_bool").value);
  EXPECT_EQ(bools.element_type, GgufValueType::kBool);
  ASSERT_EQ(bools.values.size(), 3u);
  EXPECT_TRUE(std::get<bool>(bools.values[0].value));
  EXPECT_FALSE(std::get<bool>(bools.values[1].value));

  const auto& nested = std::get<GgufArray>(f.metadata().at("t.nested").value);
  EXPECT_EQ(nested.element_type, GgufValueType::kArray);
  ASSERT_EQ(nested.values.size(), 3u);
  const auto& third = std::get<GgufArray>(nested.values[2].value);
  EXPECT_EQ(third.element_type, GgufValueType::kInt32);
  ASSERT_EQ(third.values.size(), 3u);
  EXPECT_EQ(std::get<int64_t>(third.values[2].value), 6);

  const auto& nested_str = std::get<GgufArray>(f.metadata().at("t.nested_str").value);
  ASSERT_EQ(nested_str.values.size(), 2u);
  const auto& yz = std::get<GgufArray>(nested_str.values[1].value);
  EXPECT_EQ(yz.element_type, GgufValueType::kString);
  EXPECT_EQ(std::get<std::string>(yz.values[1].value), "z");
}

TEST_F(WriterFileTest, GetterErrors) {
  const GgufFile& f = *file_;
  EXPECT_FALSE(f.Has("nope"));
  EXPECT_TRUE(f.Has("t.u8"));
  auto missing = f.GetString("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("'nope'"));

  auto wrong = f.GetUint("t.str");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("'t.str'"));
  EXPECT_EQ(f.GetString("t.u8").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetBool("t.u8").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetFloat("t.str").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetInt("t.true").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetInt("t.f32").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetUint("t.i8").status().code(), absl::StatusCode::kInvalidArgument);  // negative
  EXPECT_EQ(f.GetInt("t.u64").status().code(), absl::StatusCode::kInvalidArgument);  // > int64
  EXPECT_EQ(f.GetStringArray("t.arr_i32").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetIntArray("t.arr_str").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetIntArray("t.arr_f32").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetFloatArray("t.nested").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.GetStringArray("t.str").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WriterFileTest, TensorsOfEveryTypeMatchTheWriter) {
  const GgufFile& f = *file_;
  const char* names[] = {"F32",  "F16",  "BF16", "Q8_0", "Q4_0", "Q4_1",
                         "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
  ASSERT_EQ(f.tensors().size(), std::size(names) + 3);
  for (const char* type_name : names) {
    const std::string name = std::string("w.") + type_name;
    SCOPED_TRACE(name);
    const GgufTensorInfo* t = f.FindTensor(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(GetGgmlTypeTraits(static_cast<uint32_t>(t->type))->name, type_name);
    EXPECT_THAT(t->ne, ElementsAre(512, 3));
    EXPECT_THAT(t->RowMajorShape(), ElementsAre(3, 512));
    EXPECT_EQ(t->n_elements, 3u * 512u);
    EXPECT_EQ(t->offset % 64, 0u);
    EXPECT_EQ(t->data.size(), t->n_bytes);
    EXPECT_TRUE(BitEqual(DequantizeTensor(*t),
                         testing_util::ReadFloats(FixturesDir() / "writer" / (name + ".ref"))));
  }
  const GgufTensorInfo* v1 = f.FindTensor("v.1d");
  ASSERT_NE(v1, nullptr);
  EXPECT_THAT(v1->RowMajorShape(), ElementsAre(7));
  const GgufTensorInfo* v3 = f.FindTensor("v.3d");
  ASSERT_NE(v3, nullptr);
  EXPECT_THAT(v3->ne, ElementsAre(5, 3, 2));
  EXPECT_THAT(v3->RowMajorShape(), ElementsAre(2, 3, 5));
  const GgufTensorInfo* v4 = f.FindTensor("v.4d");
  ASSERT_NE(v4, nullptr);
  EXPECT_THAT(v4->RowMajorShape(), ElementsAre(2, 1, 3, 4));
  for (const char* name : {"v.1d", "v.3d", "v.4d"}) {
    const GgufTensorInfo* t = f.FindTensor(name);
    EXPECT_TRUE(
        BitEqual(DequantizeTensor(*t),
                 testing_util::ReadFloats(FixturesDir() / "writer" / (std::string(name) + ".ref"))))
        << name;
  }
  EXPECT_EQ(f.FindTensor("w.Q4_2"), nullptr);
}

TEST_F(WriterFileTest, SurvivesMove) {
  const uint8_t* data = file_->FindTensor("w.Q4_K")->data.data();
  GgufFile moved = std::move(*file_);
  EXPECT_EQ(moved.FindTensor("w.Q4_K")->data.data(), data);
  EXPECT_EQ(*moved.GetUint("t.u8"), 200u);
}

TEST(DefaultModelTest, OpensAndDecodes) {
  const auto path = testing_util::DefaultModelPath();
  ASSERT_TRUE(std::filesystem::exists(path))
      << path << " is missing: run scripts/setup.sh (or set T2_HOME)";
  auto opened = GgufFile::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const GgufFile& f = *opened;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(f.metadata().size(), 33u);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetUint("llama.block_count"), 30u);
  EXPECT_EQ(*f.GetUint("llama.embedding_length"), 576u);
  EXPECT_EQ(*f.GetUint("llama.attention.head_count"), 9u);
  EXPECT_EQ(*f.GetUint("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(*f.GetFloat("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(*f.GetFloat("llama.attention.layer_norm_rms_epsilon"), static_cast<double>(1e-5f));
  EXPECT_FALSE(*f.GetBool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(*f.GetString("tokenizer.ggml.model"), "gpt2");
  const auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 49152u);
  EXPECT_EQ((*tokens)[0], "<|endoftext|>");
  EXPECT_EQ((*tokens)[1], "<|im_start|>");
  EXPECT_EQ(tokens->back(), "ectable");
  EXPECT_EQ(f.GetStringArray("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ(f.GetIntArray("tokenizer.ggml.token_type")->size(), 49152u);

  const GgufTensorInfo* embd = f.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, GgmlType::kQ8_0);
  EXPECT_THAT(embd->RowMajorShape(), ElementsAre(49152, 576));
  const GgufTensorInfo* down = f.FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->type, GgmlType::kQ4_1);
  EXPECT_THAT(down->RowMajorShape(), ElementsAre(576, 1536));
  const GgufTensorInfo* norm = f.FindTensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, GgmlType::kF32);
  EXPECT_THAT(norm->RowMajorShape(), ElementsAre(576));

  // Every tensor decodes, to finite values.
  for (const GgufTensorInfo& t : f.tensors()) {
    if (&t == embd) continue;  // 28M elements: checked by rows below
    const std::vector<float> values = DequantizeTensor(t);
    for (float v : values) ASSERT_TRUE(std::isfinite(v)) << t.name;
  }

  // Against the gguf package (fixtures from the same file), when make_fixtures saw the model.
  const auto model_refs = FixturesDir() / "model";
  ASSERT_TRUE(std::filesystem::exists(model_refs / "token_embd.weight.ref"))
      << "make_fixtures.py did not write model references";
  const size_t row_bytes = embd->n_bytes / 49152;
  std::vector<float> rows(4 * 576);
  ASSERT_TRUE(Dequantize(embd->type, embd->data.subspan(0, 4 * row_bytes), rows).ok());
  EXPECT_TRUE(BitEqual(rows, testing_util::ReadFloats(model_refs / "token_embd.weight.ref")));
  for (const char* name :
       {"blk.0.ffn_down.weight", "blk.0.attn_norm.weight", "output_norm.weight"}) {
    EXPECT_TRUE(BitEqual(DequantizeTensor(*f.FindTensor(name)),
                         testing_util::ReadFloats(model_refs / (std::string(name) + ".ref"))))
        << name;
  }
}

}  // namespace
}  // namespace t2::formats
