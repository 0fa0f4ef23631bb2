#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "hf_json.h"
#include "t2/common/status.h"

namespace t2::tokenizer::internal {
namespace {

using json = nlohmann::json;

absl::Status Unsupported(std::string_view path, std::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat(AsAbsl(path), ": ", AsAbsl(what), " is not supported"));
}

std::string TypeOf(const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "";
  return j["type"].get<std::string>();
}

// The steps of a component: its own list when it is a Sequence, else itself.
std::vector<json> Steps(const json& component, const char* list_key) {
  if (component.is_null()) return {};
  if (TypeOf(component) == "Sequence" && component.contains(list_key) &&
      component[list_key].is_array()) {
    return component[list_key].get<std::vector<json>>();
  }
  return {component};
}

// HF patterns are {"String": s} or {"Regex": r}; a String becomes an escaped regex when
// `as_regex`.
absl::StatusOr<std::string> Pattern(const json& step, std::string_view path, bool as_regex) {
  if (!step.contains("pattern") || !step["pattern"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(path), ".pattern: missing"));
  }
  const json& p = step["pattern"];
  if (p.contains("String") && p["String"].is_string()) {
    std::string s = p["String"].get<std::string>();
    return as_regex ? Regex::Escape(s) : s;
  }
  if (p.contains("Regex") && p["Regex"].is_string()) {
    if (!as_regex) return Unsupported(path, "a Regex pattern");
    return p["Regex"].get<std::string>();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(AsAbsl(path), ".pattern: neither String nor Regex"));
}

}  // namespace

template <typename T>
absl::StatusOr<T> JsonGet(const json& object, const char* key, T fallback, std::string_view path) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) return fallback;
  if constexpr (std::is_same_v<T, int>) {
    // nlohmann converts a float (1e300) or a too-large integer to int by a cast whose result
    // is undefined: only an integer within int's range is one.
    const json& value = object[key];
    const bool in_range = value.is_number_integer() &&
                          (value.is_number_unsigned() ? value.get<uint64_t>() <= uint64_t{INT_MAX}
                                                      : value.get<int64_t>() >= INT_MIN &&
                                                            value.get<int64_t>() <= INT_MAX);
    if (!in_range) {
      return absl::InvalidArgumentError(absl::StrCat(
          AsAbsl(path), ".", key, ": not an integer within int's range: ", value.dump()));
    }
  }
  try {
    return object[key].get<T>();
  } catch (const json::exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(path), ".", key, ": unexpected type ", object[key].type_name()));
  }
}
template absl::StatusOr<bool> JsonGet(const json&, const char*, bool, std::string_view);
template absl::StatusOr<int> JsonGet(const json&, const char*, int, std::string_view);
template absl::StatusOr<std::string> JsonGet(const json&, const char*, std::string,
                                             std::string_view);

bool IsByteLevelPipeline(const json& tokenizer) {
  for (const json& step : Steps(tokenizer.value("decoder", json()), "decoders")) {
    if (TypeOf(step) == "ByteLevel") return true;
  }
  for (const json& step : Steps(tokenizer.value("pre_tokenizer", json()), "pretokenizers")) {
    if (TypeOf(step) == "ByteLevel") return true;
  }
  return false;
}

absl::StatusOr<UnicodeNormalizer> ByteLevelNormalizerFromJson(const json& tokenizer) {
  std::vector<NormalForm> forms;
  const auto steps = Steps(tokenizer.value("normalizer", json()), "normalizers");
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string type = TypeOf(steps[i]);
    const std::optional<NormalForm> form = NormalFormOf(type);
    if (!form) {
      return Unsupported(absl::StrCat("normalizer[", i, "]"),
                         absl::StrCat("normalizer type \"", type, "\" in a byte-level tokenizer"));
    }
    forms.push_back(*form);
  }
  return UnicodeNormalizer::Create(std::move(forms));
}

absl::StatusOr<PreTokenizer> ByteLevelPreTokenizerFromJson(const json& tokenizer) {
  PreTokenizer pre;
  const auto steps = Steps(tokenizer.value("pre_tokenizer", json()), "pretokenizers");
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& step = steps[i];
    const std::string path = absl::StrCat("pre_tokenizer[", i, "]");
    const std::string type = TypeOf(step);
    if (type == "ByteLevel") {
      T2_ASSIGN_OR_RETURN(bool prefix, JsonGet(step, "add_prefix_space", false, path));
      T2_ASSIGN_OR_RETURN(bool use_regex, JsonGet(step, "use_regex", true, path));
      T2_RETURN_IF_ERROR(pre.AddByteLevel(prefix, use_regex));
    } else if (type == "Split") {
      T2_ASSIGN_OR_RETURN(std::string behavior, JsonGet(step, "behavior", std::string(), path));
      T2_ASSIGN_OR_RETURN(bool invert, JsonGet(step, "invert", false, path));
      if (behavior != "Isolated" || invert) {
        return Unsupported(
            path, absl::StrCat("Split with behavior ", behavior, invert ? " inverted" : ""));
      }
      T2_ASSIGN_OR_RETURN(std::string pattern, Pattern(step, path, /*as_regex=*/true));
      T2_RETURN_IF_ERROR(Annotate(pre.AddSplit(pattern), path));
    } else if (type == "Digits") {
      T2_ASSIGN_OR_RETURN(bool individual, JsonGet(step, "individual_digits", false, path));
      T2_RETURN_IF_ERROR(pre.AddDigits(individual));
    } else {
      return Unsupported(path, absl::StrCat("pre-tokenizer type \"", type, "\""));
    }
  }
  return pre;
}

namespace {

// Metaspace's prepend scheme: `prepend_scheme` when present, else the older
// `add_prefix_space` flag ("never" when false), else "always".
absl::StatusOr<std::string> PrependScheme(const json& step, std::string_view path) {
  std::string scheme = "always";
  if (step.contains("prepend_scheme")) {
    T2_ASSIGN_OR_RETURN(scheme, JsonGet(step, "prepend_scheme", scheme, path));
  } else {
    T2_ASSIGN_OR_RETURN(bool add, JsonGet(step, "add_prefix_space", true, path));
    if (!add) scheme = "never";
  }
  return scheme;
}

absl::StatusOr<SpmConfig::NormalizerStep> SpmNormalizerStep(const json& step,
                                                            const std::string& path) {
  const std::string type = TypeOf(step);
  SpmConfig::NormalizerStep n;
  if (type == "Prepend") {
    n.prepend = true;
    T2_ASSIGN_OR_RETURN(n.content, JsonGet(step, "prepend", std::string(), path));
  } else if (type == "Replace") {
    T2_ASSIGN_OR_RETURN(n.pattern, Pattern(step, path, /*as_regex=*/false));
    T2_ASSIGN_OR_RETURN(n.content, JsonGet(step, "content", std::string(), path));
  } else {
    return Unsupported(path, absl::StrCat("normalizer type \"", type, "\""));
  }
  return n;
}

// At most one pre-tokenizer step, and only a Metaspace: it sets the config's metaspace fields.
absl::Status ReadSpmPreTokenizer(const json& tokenizer, SpmConfig* config) {
  const auto pre = Steps(tokenizer.value("pre_tokenizer", json()), "pretokenizers");
  if (pre.size() > 1) return Unsupported("pre_tokenizer", "more than one step");
  for (const json& step : pre) {
    const std::string type = TypeOf(step);
    if (type != "Metaspace") {
      return Unsupported("pre_tokenizer", absl::StrCat("type \"", type, "\""));
    }
    config->metaspace = true;
    T2_ASSIGN_OR_RETURN(config->replacement,
                        JsonGet(step, "replacement", std::string(kMetaspace), "pre_tokenizer"));
    T2_ASSIGN_OR_RETURN(config->split, JsonGet(step, "split", true, "pre_tokenizer"));
    T2_ASSIGN_OR_RETURN(const std::string scheme, PrependScheme(step, "pre_tokenizer"));
    if (scheme == "always") {
      config->prepend = SpmConfig::Prepend::kAlways;
    } else if (scheme == "first") {
      config->prepend = SpmConfig::Prepend::kFirst;
    } else if (scheme == "never") {
      config->prepend = SpmConfig::Prepend::kNever;
    } else {
      return Unsupported("pre_tokenizer.prepend_scheme", scheme);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SpmConfig::DecoderStep> SpmDecoderStep(const json& step, const std::string& path) {
  using Kind = SpmConfig::DecoderStep::Kind;
  const std::string type = TypeOf(step);
  SpmConfig::DecoderStep d;
  if (type == "Replace") {
    d.kind = Kind::kReplace;
    T2_ASSIGN_OR_RETURN(d.pattern, Pattern(step, path, /*as_regex=*/false));
    T2_ASSIGN_OR_RETURN(d.content, JsonGet(step, "content", std::string(), path));
  } else if (type == "ByteFallback") {
    d.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    d.kind = Kind::kFuse;
  } else if (type == "Strip") {
    d.kind = Kind::kStrip;
    T2_ASSIGN_OR_RETURN(d.pattern, JsonGet(step, "content", std::string(" "), path));
    T2_ASSIGN_OR_RETURN(d.start, JsonGet(step, "start", 0, path));
    T2_ASSIGN_OR_RETURN(d.stop, JsonGet(step, "stop", 0, path));
  } else if (type == "Metaspace") {
    d.kind = Kind::kMetaspace;
    T2_ASSIGN_OR_RETURN(d.pattern, JsonGet(step, "replacement", std::string(kMetaspace), path));
    T2_ASSIGN_OR_RETURN(const std::string scheme, PrependScheme(step, path));
    d.drop_first = scheme != "never";
  } else {
    return Unsupported(path, absl::StrCat("decoder type \"", type, "\""));
  }
  return d;
}

}  // namespace

absl::StatusOr<SpmConfig> SpmConfigFromJson(const json& tokenizer) {
  SpmConfig config;
  const auto normalizers = Steps(tokenizer.value("normalizer", json()), "normalizers");
  for (size_t i = 0; i < normalizers.size(); ++i) {
    T2_ASSIGN_OR_RETURN(SpmConfig::NormalizerStep n,
                        SpmNormalizerStep(normalizers[i], absl::StrCat("normalizer[", i, "]")));
    config.normalizer.push_back(std::move(n));
  }

  T2_RETURN_IF_ERROR(ReadSpmPreTokenizer(tokenizer, &config));

  const auto decoders = Steps(tokenizer.value("decoder", json()), "decoders");
  for (size_t i = 0; i < decoders.size(); ++i) {
    T2_ASSIGN_OR_RETURN(SpmConfig::DecoderStep d,
                        SpmDecoderStep(decoders[i], absl::StrCat("decoder[", i, "]")));
    config.decoder.push_back(std::move(d));
  }
  return config;
}

}  // namespace t2::tokenizer::internal
