// Tokenizer::FromHfDir / FromHfJson: HF tokenizer.json (+ tokenizer_config.json).
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "byte_level_tokenizer.h"
#include "hf_json.h"
#include "spm_tokenizer.h"
#include "t2/common/status.h"
#include "t2/tokenizer/tokenizer.h"

namespace t2::tokenizer {
namespace {

using json = nlohmann::json;
using internal::AddedToken;
using internal::BpeTokenizerParts;
using internal::JsonGet;

absl::StatusOr<json> Parse(std::string_view text, std::string_view name) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(name), ": ", e.what()));
  }
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Merges(const json& model) {
  std::vector<std::pair<std::string, std::string>> merges;
  if (!model.contains("merges")) return merges;
  if (!model["merges"].is_array()) return absl::InvalidArgumentError("model.merges: not an array");
  for (size_t i = 0; i < model["merges"].size(); ++i) {
    const json& m = model["merges"][i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space != std::string::npos) {
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
        continue;
      }
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat("model.merges[", i, "]: not a pair of tokens"));
  }
  return merges;
}

absl::StatusOr<internal::BpeModel> ModelFromJson(const json& tokenizer) {
  if (!tokenizer.contains("model") || !tokenizer["model"].is_object()) {
    return absl::InvalidArgumentError("model: missing");
  }
  const json& model = tokenizer["model"];
  T2_ASSIGN_OR_RETURN(std::string type, JsonGet(model, "type", std::string("BPE"), "model"));
  if (type != "BPE") {
    return absl::UnimplementedError(absl::StrCat("model.type \"", type, "\" is not supported"));
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("model.vocab: missing or not an object");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    T2_ASSIGN_OR_RETURN(std::string v, JsonGet(model, key, std::string(), "model"));
    if (!v.empty())
      return absl::UnimplementedError(absl::StrCat("model.", key, " is not supported"));
  }
  if (model.contains("dropout") && model["dropout"].is_number() &&
      model["dropout"].get<double>() != 0.0) {
    return absl::UnimplementedError("model.dropout is not supported");
  }
  std::vector<std::string> vocab(model["vocab"].size());
  std::vector<bool> seen(vocab.size());
  for (const auto& [piece, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= static_cast<int64_t>(vocab.size()) || seen[id.get<int64_t>()]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.vocab[\"", piece, "\"]: id is not one of 0..", vocab.size() - 1, " used once"));
    }
    vocab[id.get<int64_t>()] = piece;
    seen[id.get<int64_t>()] = true;
  }
  T2_ASSIGN_OR_RETURN(auto merges, Merges(model));
  internal::BpeOptions options;
  T2_ASSIGN_OR_RETURN(options.byte_fallback, JsonGet(model, "byte_fallback", false, "model"));
  T2_ASSIGN_OR_RETURN(options.fuse_unk, JsonGet(model, "fuse_unk", false, "model"));
  T2_ASSIGN_OR_RETURN(options.ignore_merges, JsonGet(model, "ignore_merges", false, "model"));
  T2_ASSIGN_OR_RETURN(std::string unk, JsonGet(model, "unk_token", std::string(), "model"));
  if (!unk.empty()) {
    auto it = model["vocab"].find(unk);
    if (it == model["vocab"].end()) {
      return absl::InvalidArgumentError(absl::StrCat("model.unk_token \"", unk, "\" not in vocab"));
    }
    options.unk_id = it->get<int32_t>();
  }
  return internal::BpeModel::Create(std::move(vocab), merges, options);
}

absl::StatusOr<std::vector<AddedToken>> AddedTokens(const json& tokenizer) {
  std::vector<AddedToken> added;
  if (!tokenizer.contains("added_tokens") || tokenizer["added_tokens"].is_null()) return added;
  if (!tokenizer["added_tokens"].is_array()) {
    return absl::InvalidArgumentError("added_tokens: not an array");
  }
  for (size_t i = 0; i < tokenizer["added_tokens"].size(); ++i) {
    const json& j = tokenizer["added_tokens"][i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    AddedToken t;
    T2_ASSIGN_OR_RETURN(int id, JsonGet(j, "id", -1, path));
    T2_ASSIGN_OR_RETURN(t.content, JsonGet(j, "content", std::string(), path));
    if (id < 0 || t.content.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": needs an id and a content"));
    }
    t.id = id;
    T2_ASSIGN_OR_RETURN(t.special, JsonGet(j, "special", false, path));
    T2_ASSIGN_OR_RETURN(t.normalized, JsonGet(j, "normalized", !t.special, path));
    T2_ASSIGN_OR_RETURN(t.single_word, JsonGet(j, "single_word", false, path));
    T2_ASSIGN_OR_RETURN(t.lstrip, JsonGet(j, "lstrip", false, path));
    T2_ASSIGN_OR_RETURN(t.rstrip, JsonGet(j, "rstrip", false, path));
    added.push_back(std::move(t));
  }
  return added;
}

// A token named in tokenizer_config.json: a string or {"content": ...}.
std::string TokenName(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

// Whether the post-processor's single-sequence template puts a special token before
// (bos) or after (eos) the text.
void TemplateSpecials(const json& tokenizer, std::string* bos, std::string* eos) {
  const json post = tokenizer.value("post_processor", json());
  std::vector<json> processors;
  if (post.is_object() && post.value("type", "") == "Sequence" && post.contains("processors")) {
    processors = post["processors"].get<std::vector<json>>();
  } else {
    processors.push_back(post);
  }
  for (const json& p : processors) {
    if (!p.is_object() || p.value("type", "") != "TemplateProcessing" || !p.contains("single")) {
      continue;
    }
    bool seen_text = false;
    for (const json& item : p["single"]) {
      if (item.contains("Sequence")) {
        seen_text = true;
      } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id")) {
        (seen_text ? *eos : *bos) = item["SpecialToken"]["id"].get<std::string>();
      }
    }
  }
}

absl::Status ReadSpecial(const json& tokenizer, const json& config, BpeTokenizerParts* parts) {
  SpecialTokens& s = parts->special;
  auto lookup = [&](const std::string& name) -> int32_t {
    if (name.empty()) return -1;
    for (const AddedToken& t : parts->added) {
      if (t.content == name) return t.id;
    }
    return parts->model.Find(name).value_or(-1);
  };
  auto id_of = [&](const char* key) { return lookup(TokenName(config, key)); };
  s.bos = id_of("bos_token");
  s.eos = id_of("eos_token");
  s.unk = id_of("unk_token");
  s.pad = id_of("pad_token");
  std::string template_bos, template_eos;
  TemplateSpecials(tokenizer, &template_bos, &template_eos);
  T2_ASSIGN_OR_RETURN(s.add_bos,
                      JsonGet(config, "add_bos_token", !template_bos.empty(), "tokenizer_config"));
  T2_ASSIGN_OR_RETURN(s.add_eos,
                      JsonGet(config, "add_eos_token", !template_eos.empty(), "tokenizer_config"));
  if (s.bos < 0) s.bos = lookup(template_bos);
  if (s.eos < 0) s.eos = lookup(template_eos);
  if (s.unk < 0 && parts->model.options().unk_id >= 0) s.unk = parts->model.options().unk_id;
  if (config.is_object() && config.contains("chat_template")) {
    const json& ct = config["chat_template"];
    if (ct.is_string()) {
      parts->chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const json& named : ct) {
        if (named.value("name", "") == "default" && named.contains("template")) {
          parts->chat_template = named["template"].get<std::string>();
        }
      }
    }
  }
  return absl::OkStatus();
}

// The tokenizer from parsed tokenizer.json and tokenizer_config.json. May throw json::exception
// (FromHfJson turns it into an error).
absl::StatusOr<std::unique_ptr<Tokenizer>> BuildTokenizer(const json& tokenizer,
                                                          const json& config) {
  BpeTokenizerParts parts;
  T2_ASSIGN_OR_RETURN(parts.model, ModelFromJson(tokenizer));
  T2_ASSIGN_OR_RETURN(parts.added, AddedTokens(tokenizer));
  T2_RETURN_IF_ERROR(ReadSpecial(tokenizer, config, &parts));
  if (internal::IsByteLevelPipeline(tokenizer)) {
    T2_ASSIGN_OR_RETURN(auto normalizer, internal::ByteLevelNormalizerFromJson(tokenizer));
    T2_ASSIGN_OR_RETURN(auto pre, internal::ByteLevelPreTokenizerFromJson(tokenizer));
    return internal::ByteLevelTokenizer::Create(std::move(parts), std::move(pre),
                                                std::move(normalizer));
  }
  T2_ASSIGN_OR_RETURN(auto spm, internal::SpmConfigFromJson(tokenizer));
  return internal::SpmTokenizer::Create(std::move(parts), std::move(spm));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfJson(std::string_view tokenizer_json,
                                                                 std::string_view config_json) {
  T2_ASSIGN_OR_RETURN(json tokenizer, Parse(tokenizer_json, "tokenizer.json"));
  json config = json::object();
  if (!config_json.empty()) {
    T2_ASSIGN_OR_RETURN(config, Parse(config_json, "tokenizer_config.json"));
  }
  if (!tokenizer.is_object()) return absl::InvalidArgumentError("tokenizer.json: not an object");
  // The readers check the types they rely on; a value of a type nobody checked (an array
  // where a string belongs) makes nlohmann throw, which must be an error, not a crash.
  try {
    return BuildTokenizer(tokenizer, config);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json / tokenizer_config.json: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::filesystem::path& dir) {
  T2_ASSIGN_OR_RETURN(std::string tokenizer, ReadFile(dir / "tokenizer.json"));
  std::string config;
  if (std::filesystem::exists(dir / "tokenizer_config.json")) {
    T2_ASSIGN_OR_RETURN(config, ReadFile(dir / "tokenizer_config.json"));
  }
  T2_ASSIGN_OR_RETURN(auto t, FromHfJson(tokenizer, config));
  // Recent transformers save the chat template beside the config.
  if (t->chat_template_.empty() && std::filesystem::exists(dir / "chat_template.jinja")) {
    T2_ASSIGN_OR_RETURN(t->chat_template_, ReadFile(dir / "chat_template.jinja"));
  }
  return t;
}

}  // namespace t2::tokenizer
