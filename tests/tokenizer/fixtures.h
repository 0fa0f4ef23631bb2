// Access to the reference data make_fixtures.py writes ($T2_FIXTURES/tokenizer).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "t2/tokenizer/tokenizer.h"

namespace t2::tokenizer::testing {

std::filesystem::path FixturesDir();
// $T2_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf (T2_HOME defaults to ~/.cache/t2serve).
std::filesystem::path DefaultModelPath();
nlohmann::json ReadJson(const std::filesystem::path& path);
const std::vector<std::string>& Strings();

// The tokenizers under test, by fixture name: GGUF files ("smollm_gguf", the default model;
// "bl_gpt2_gguf", "bl_llama3_gguf", "bl_qwen2_gguf", "spm_gguf") and tokenizer.json folders
// ("bl_gpt2", "bl_llama3", "bl_qwen2", "bl_added", "spm_json", "spm_legacy", and "bl_qwen2_nfc",
// "bl_qwen2_nfd", "bl_qwen2_nfkc", "bl_qwen2_nfkd" with a Unicode normalizer). Loaded once;
// fails the test (ADD_FAILURE) and returns null if loading fails.
const Tokenizer* Load(const std::string& name);
std::vector<std::string> AllTokenizerNames();
bool IsByteLevel(const std::string& name);

}  // namespace t2::tokenizer::testing
