// t2 info: a model's architecture and a summary of its tensors, without loading the weights.
#include <cstdio>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "commands.h"
#include "t2/common/command_line.h"
#include "t2/common/env.h"
#include "t2/formats/gguf.h"
#include "t2/formats/safetensors.h"
#include "t2/model/config.h"

namespace t2::cli {
namespace {

struct TensorRow {
  std::string name, type;
  std::vector<int64_t> shape;
  uint64_t bytes = 0;
};

void PrintConfig(const model::ModelConfig& c) {
  std::cout << absl::StrFormat(
      "name:          %s\narchitecture:  %s\nlayers:        %d\nhidden:        %d\nintermediate:  %d\n"
      "heads:         %d (kv %d, head_dim %d)\nvocab:         %d\ncontext:       %d\n"
      "rope_theta:    %g%s\nrms_norm_eps:  %g\ntied head:     %s\nqkv bias:      %s\n",
      c.name, c.architecture, c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
      c.num_key_value_heads, c.head_dim, c.vocab_size, c.max_position_embeddings, c.rope_theta,
      c.rope_scaling.enabled ? " (llama3 scaling)" : "", c.rms_norm_eps, c.tie_word_embeddings ? "yes" : "no",
      c.attention_bias ? "yes" : "no");
}

// Prints every tensor when `all`, else those outside layers plus layer 0's, and totals.
void PrintTensors(const std::vector<TensorRow>& rows, bool all) {
  std::map<std::string, std::pair<int, uint64_t>> by_type;
  uint64_t params = 0, bytes = 0;
  int hidden = 0;
  std::cout << "\ntensors:\n";
  for (const auto& t : rows) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= static_cast<uint64_t>(d);
    params += n;
    bytes += t.bytes;
    by_type[t.type].first++;
    by_type[t.type].second += t.bytes;
    bool in_later_layer = (t.name.rfind("blk.", 0) == 0 && t.name.rfind("blk.0.", 0) != 0) ||
                          (t.name.rfind("model.layers.", 0) == 0 && t.name.rfind("model.layers.0.", 0) != 0);
    if (!all && in_later_layer) {
      ++hidden;
      continue;
    }
    std::cout << absl::StrFormat("  %-48s %-6s [%s]\n", t.name, t.type, absl::StrJoin(t.shape, ", "));
  }
  if (hidden > 0) std::cout << absl::StrFormat("  ... %d more in the other layers (--all lists them)\n", hidden);
  std::cout << absl::StrFormat("\n%d tensors, %.1f M parameters, %.1f MiB\n", rows.size(), params / 1e6,
                               bytes / 1048576.0);
  for (const auto& [type, v] : by_type) {
    std::cout << absl::StrFormat("  %-6s %4d tensors %9.1f MiB\n", type, v.first, v.second / 1048576.0);
  }
}

}  // namespace

int RunInfo(const std::vector<std::string>& args) {
  CommandLine command_line(
      "t2 info",
      "Prints a model's architecture and a summary of its tensors, without loading the weights.");
  std::string model;
  bool all = false;
  command_line.add_option("model", model, "a .gguf file, an HF checkpoint folder or 'default'")
      ->type_name("MODEL")
      ->required();
  command_line.add_flag("--all", all, "list the tensors of every layer, not only the first's");
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  auto path = ResolveModelPath(model);
  if (!path.ok()) {
    std::cerr << "t2 info: " << path.status().message() << "\n";
    return 1;
  }
  std::vector<TensorRow> rows;
  absl::StatusOr<model::ModelConfig> config;
  if (std::filesystem::is_directory(*path)) {
    config = model::ConfigFromHfDir(*path);
    auto checkpoint = formats::SafetensorsCheckpoint::Open(*path);
    if (!checkpoint.ok()) {
      std::cerr << "t2 info: " << checkpoint.status().message() << "\n";
      return 1;
    }
    for (const auto& name : checkpoint->TensorNames()) {
      const auto* t = checkpoint->Find(name);
      rows.push_back({name, std::string(formats::DTypeName(t->dtype)), t->shape, t->data.size()});
    }
  } else {
    auto file = formats::GgufFile::Open(*path);
    if (!file.ok()) {
      std::cerr << "t2 info: " << file.status().message() << "\n";
      return 1;
    }
    config = model::ConfigFromGguf(*file);
    std::cout << "file:          " << path->string() << " (GGUF v" << file->version() << ")\n";
    for (const auto& t : file->tensors()) {
      auto traits = formats::GetGgmlTypeTraits(static_cast<uint32_t>(t.type));
      rows.push_back({t.name, traits ? std::string(traits->name) : "?", t.RowMajorShape(), t.n_bytes});
    }
  }
  if (!config.ok()) {
    std::cerr << "t2 info: " << config.status().message() << "\n";
    return 1;
  }
  PrintConfig(*config);
  PrintTensors(rows, all);
  return 0;
}

}  // namespace t2::cli
