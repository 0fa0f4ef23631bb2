// t2 expert: look inside SVF expert files, and make constant ones (a base-model stand-in for
// tests and demos: with the nuclear normalisation, any constant z gives back W).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "command_errors.h"
#include "commands.h"
#include "t2/common/command_line.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/model/device_flags.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/expert.h"
#include "t2/svf/targets.h"

namespace t2::cli {
namespace {

// "model.layers.3.mlp.up_proj.weight" -> "mlp.up_proj".
std::string KindOf(const std::string& name) {
  std::string kind = name;
  if (svf::LayerOf(name).has_value()) {
    const size_t layer_dot = name.find('.', std::string("model.layers.").size());
    kind = name.substr(layer_dot + 1);
  }
  constexpr std::string_view kSuffix = ".weight";
  if (kind.size() > kSuffix.size() && kind.ends_with(kSuffix)) kind.resize(kind.size() - kSuffix.size());
  return kind;
}

struct KindStats {
  int64_t vectors = 0, values = 0;
  double sum = 0;
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
};

int Inspect(const std::filesystem::path& path) {
  auto expert = svf::ReadExpert(path);
  if (!expert.ok()) return ExitWith("expert", expert.status(), kExitFailure);

  // Per kind, in the order kinds first appear in a layer (q, k, v, o, gate, up, down).
  std::map<std::string, KindStats> stats;
  std::vector<std::string> order;
  int64_t parameters = 0;
  for (const auto& [name, z] : expert->z) {
    const std::string kind = KindOf(name);
    if (stats.count(kind) == 0) order.push_back(kind);
    KindStats& s = stats[kind];
    const at::Tensor values = z.contiguous();
    const float* p = values.data_ptr<float>();
    for (int64_t i = 0; i < values.numel(); ++i) {
      s.min = std::min(s.min, p[i]);
      s.max = std::max(s.max, p[i]);
      s.sum += p[i];
    }
    s.vectors += 1;
    s.values += values.numel();
    parameters += values.numel();
  }
  const auto names = svf::TargetMatrixNames(/*num_layers=*/1, expert->metadata.targets);
  auto rank_of = [&](const std::string& kind) {
    for (size_t i = 0; i < names.size(); ++i) {
      if (KindOf(names[i]) == kind) return static_cast<int>(i);
    }
    return static_cast<int>(names.size());
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](const std::string& a, const std::string& b) { return rank_of(a) < rank_of(b); });

  const svf::ExpertMetadata& m = expert->metadata;
  std::cout << absl::StrFormat("file:             %s\n", path.string())
            << absl::StrFormat("format_version:   %d\n", m.format_version)
            << absl::StrFormat("base_model:       %s\n", m.base_model)
            << absl::StrFormat("base_fingerprint: %s\n", m.base_fingerprint)
            << absl::StrFormat("targets:          %s\n", AsAbsl(svf::TargetSetName(m.targets)))
            << absl::StrFormat("normalization:    %s\n", AsAbsl(svf::NormalizationName(m.normalization)))
            << absl::StrFormat("task:             %s\n", m.task)
            << absl::StrFormat("metrics:          %s\n", m.metrics_json)
            << absl::StrFormat("created_at:       %s\n", m.created_at)
            << absl::StrFormat("vectors:          %d\n", expert->z.size())
            << absl::StrFormat("parameters:       %d\n\n", parameters)
            << "| matrix kind | vectors | parameters | z min | z mean | z max |\n"
            << "|---|---:|---:|---:|---:|---:|\n";
  for (const std::string& kind : order) {
    const KindStats& s = stats[kind];
    std::cout << absl::StrFormat("| %s | %d | %d | %.4g | %.4g | %.4g |\n", kind, s.vectors, s.values, s.min,
                                 s.sum / static_cast<double>(s.values), s.max);
  }
  return 0;
}

// `t2 expert constant`'s flags.
struct ConstantFlags {
  double value = 0;
  std::string out;
  std::string model = "default";
  svf::TargetSet targets = svf::TargetSet::kMlp;
  std::string normalization = "nuclear";
  std::string task = "constant";
  std::string cache_dir;
  bool cache_dir_given = false;  // an empty one is refused
  model::DeviceSpec device;
  model::ComputeDType dtype = model::ComputeDType::kAuto;
};

int Constant(const ConstantFlags& flags) {
  if (flags.out.empty())
    return ExitWith("expert", absl::InvalidArgumentError("constant: --out is required"),
                    kExitUsage);
  // The parsers' messages start with the field, which is the flag's name.
  const svf::TargetSet targets = flags.targets;
  auto normalization = svf::ParseNormalization(flags.normalization);
  if (!normalization.ok()) {
    return ExitWith(
        "expert", absl::InvalidArgumentError(absl::StrCat("--", normalization.status().message())),
        kExitUsage);
  }
  // z = 0 under the nuclear normalisation would divide by Σσz = 0.
  const bool nuclear = *normalization == svf::Normalization::kNuclearNorm;
  const double value = flags.value;
  if (!std::isfinite(value) || value > std::numeric_limits<float>::max() ||
      (nuclear ? value <= 0 : value < 0)) {
    return ExitWith(
        "expert",
        absl::InvalidArgumentError(absl::StrCat(
            "--value must be a finite number ", nuclear ? "> 0" : ">= 0", " for normalization ",
            AsAbsl(svf::NormalizationName(*normalization)), ", got ", value)),
        kExitUsage);
  }
  const model::LoadOptions load{.device = flags.device, .dtype = flags.dtype};
  if (auto s = load.Validate(); !s.ok()) {
    return ExitWith("expert", absl::InvalidArgumentError(absl::StrCat("--", s.message())),
                    kExitUsage);
  }
  if (flags.cache_dir_given && flags.cache_dir.empty()) {
    return ExitWith("expert", absl::InvalidArgumentError("--cache-dir must not be empty"),
                    kExitUsage);
  }

  auto model_path = ResolveModelPath(flags.model);
  if (!model_path.ok())
    return ExitWith("expert", Annotate(model_path.status(), "--model"), kExitFailure);
  std::filesystem::path cache_dir = flags.cache_dir;
  if (cache_dir.empty()) {
    cache_dir = std::filesystem::is_directory(*model_path) ? *model_path : model_path->parent_path();
  }
  auto model = model::LlamaModel::Load(*model_path, load);
  if (!model.ok()) return ExitWith("expert", model.status(), kExitFailure);
  auto decomposition =
      svf::Decomposition::Build(**model, {.targets = targets, .cache_dir = cache_dir});
  if (!decomposition.ok()) return ExitWith("expert", decomposition.status(), kExitFailure);

  svf::Expert expert =
      svf::ConstantExpert(*decomposition, static_cast<float>(value), (*model)->config().name);
  expert.metadata.normalization = *normalization;
  expert.metadata.task = flags.task;
  if (auto s = svf::ValidateExpert(expert, *decomposition); !s.ok())
    return ExitWith("expert", s, kExitFailure);
  const std::filesystem::path out = flags.out;
  if (auto s = svf::WriteExpert(expert, out); !s.ok()) return ExitWith("expert", s, kExitFailure);
  int64_t parameters = 0;
  for (const auto& [name, z] : expert.z) parameters += z.numel();
  std::cout << absl::StrFormat("wrote %s: %s, %d vectors, %d parameters, z = %g (%s)\n",
                               out.string(), AsAbsl(svf::TargetSetName(targets)), expert.z.size(),
                               parameters, value, AsAbsl(svf::NormalizationName(*normalization)));
  return 0;
}

}  // namespace

int RunExpert(const std::vector<std::string>& args) {
  // CLI11 alone would answer both with "A subcommand is required".
  if (args.empty())
    return ExitWith("expert",
                    absl::InvalidArgumentError("expected a subcommand: inspect or constant"),
                    kExitUsage);
  if (!args[0].starts_with("-") && args[0] != "inspect" && args[0] != "constant") {
    return ExitWith("expert",
                    absl::InvalidArgumentError(absl::StrCat("unknown subcommand '", args[0], "'")),
                    kExitUsage);
  }
  CommandLine command_line("t2 expert", "Looks inside SVF expert files, and makes constant ones.");
  command_line.footer(
      "A constant expert is a base-model stand-in for tests and demos: with the nuclear "
      "normalization,\n"
      "any constant z gives back the base model's weights.");
  command_line.require_subcommand(1);

  CLI::App* inspect = command_line.add_subcommand(
      "inspect", "metadata, counts and z statistics per matrix kind (needs no model)");
  std::string file;
  inspect->add_option("file", file, "the expert (.safetensors)")->type_name("FILE")->required();

  CLI::App* constant = command_line.add_subcommand(
      "constant", "writes an expert with z = V for every target matrix of the model");
  ConstantFlags flags;
  // Any finite number here: range and sign are checked with --normalization, which decides what
  // fits.
  constant
      ->add_option("--value", flags.value,
                   "z for every singular value (> 0 with the nuclear normalization)")
      ->type_name("V")
      ->required()
      ->transform(NumberIn(-1e300, 1e300).description(""));
  constant->add_option("--out", flags.out, "the expert file written")
      ->type_name("FILE")
      ->required();
  constant
      ->add_option("--model", flags.model,
                   ".gguf file, HF checkpoint folder, or the bundled default")
      ->type_name("PATH|default");
  AddEnumOption(*constant, "--targets", flags.targets, svf::kTargetSets, svf::TargetSetName,
                "matrices the expert adapts");
  constant
      ->add_option("--normalization", flags.normalization,
                   "with nuclear, any V gives back the base model")
      ->type_name("N")
      ->transform(OneOf({"nuclear", "none"}));
  constant->add_option("--task", flags.task, "metadata task")->type_name("NAME");
  CLI::Option* cache_dir = constant
                               ->add_option("--cache-dir", flags.cache_dir,
                                            "where the SVD cache lives (default: beside the model)")
                               ->type_name("DIR");
  // The expert records the fingerprint of the weights as loaded.
  model::AddDeviceFlags(*constant, flags.device, flags.dtype, ", as the server loads the model");

  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  if (inspect->parsed()) return Inspect(file);
  flags.cache_dir_given = cache_dir->count() > 0;
  return Constant(flags);
}

}  // namespace t2::cli
