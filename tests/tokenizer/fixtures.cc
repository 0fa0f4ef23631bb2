#include "fixtures.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include "t2/formats/gguf.h"

namespace t2::tokenizer::testing {

std::filesystem::path FixturesDir() {
  const char* env = std::getenv("T2_FIXTURES");
  if (env == nullptr) {
    ADD_FAILURE() << "T2_FIXTURES is not set (run through ctest)";
    return "fixtures/tokenizer";
  }
  return std::filesystem::path(env) / "tokenizer";
}

std::filesystem::path DefaultModelPath() {
  const char* home = std::getenv("T2_HOME");
  std::filesystem::path root =
      home != nullptr ? std::filesystem::path(home)
                      : std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : "/") /
                            ".cache/t2serve";
  return root / "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

nlohmann::json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "missing fixture " << path;
    return nlohmann::json();
  }
  return nlohmann::json::parse(in);
}

const std::vector<std::string>& Strings() {
  static const std::vector<std::string> strings = [] {
    nlohmann::json j = ReadJson(FixturesDir() / "strings.json");
    return j.is_array() ? j.get<std::vector<std::string>>() : std::vector<std::string>();
  }();
  return strings;
}

std::vector<std::string> AllTokenizerNames() {
  return {"smollm_gguf",    "bl_gpt2",       "bl_llama3",     "bl_qwen2",   "bl_qwen2_nfc",
          "bl_qwen2_nfd",   "bl_qwen2_nfkc", "bl_qwen2_nfkd", "bl_added",   "bl_gpt2_gguf",
          "bl_llama3_gguf", "bl_qwen2_gguf", "spm_json",      "spm_legacy", "spm_gguf"};
}

bool IsByteLevel(const std::string& name) {
  return name == "smollm_gguf" || name.starts_with("bl_");
}

const Tokenizer* Load(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = absl::NotFoundError("unknown fixture " + name);
  if (name.ends_with("_gguf")) {
    const auto path =
        name == "smollm_gguf" ? DefaultModelPath() : FixturesDir() / name / "model.gguf";
    auto file = formats::GgufFile::Open(path);
    if (!file.ok()) {
      ADD_FAILURE() << path << ": " << file.status();
      return nullptr;
    }
    t = Tokenizer::FromGguf(*file);
  } else {
    t = Tokenizer::FromHfDir(FixturesDir() / name);
  }
  if (!t.ok()) {
    ADD_FAILURE() << name << ": " << t.status();
    return nullptr;
  }
  return (cache[name] = std::move(*t)).get();
}

}  // namespace t2::tokenizer::testing
