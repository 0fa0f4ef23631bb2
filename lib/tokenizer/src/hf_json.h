// Reading HF tokenizer.json pipelines (normalizer, pre-tokenizer, decoder) into t2's
// byte-level and SentencePiece configurations. Errors name the JSON path at fault.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "pre_tokenizer.h"
#include "spm_tokenizer.h"
#include "unicode_normalizer.h"

namespace t2::tokenizer::internal {

// Whether the pipeline is byte-level: a ByteLevel decoder or pre-tokenizer step.
bool IsByteLevelPipeline(const nlohmann::json& tokenizer);

// The normalizer of a byte-level pipeline: none, or NFC / NFD / NFKC / NFKD steps, alone or in
// a Sequence. UnimplementedError naming the first step of another type.
absl::StatusOr<UnicodeNormalizer> ByteLevelNormalizerFromJson(const nlohmann::json& tokenizer);

// The pre-tokenizer of a byte-level pipeline.
absl::StatusOr<PreTokenizer> ByteLevelPreTokenizerFromJson(const nlohmann::json& tokenizer);

// The normalizer, Metaspace pre-tokenizer and decoder of a SentencePiece pipeline.
absl::StatusOr<SpmConfig> SpmConfigFromJson(const nlohmann::json& tokenizer);

// A JSON member that may be absent or null: `fallback` then; an error naming `path` when it
// has another type.
template <typename T>
absl::StatusOr<T> JsonGet(const nlohmann::json& object, const char* key, T fallback,
                          std::string_view path);

}  // namespace t2::tokenizer::internal
