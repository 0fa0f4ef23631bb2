// t2 svd: compute (or check) the SVD cache of a model ahead of serving SVF experts, so the
// first request with an expert does not wait for the decomposition.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
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
#include "t2/svf/targets.h"

namespace t2::cli {
namespace {

std::string Seconds(double s) {
  if (s < 60) return absl::StrFormat("%.1f s", s);
  return absl::StrFormat("%d min %02d s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

// A bar redrawn in place on a terminal; elsewhere (logs, pipes) one line per tenth.
class ProgressBar {
 public:
  ProgressBar() : tty_(::isatty(STDERR_FILENO) != 0) {}

  void Update(const svf::DecomposeProgress& p) {
    if (p.total <= 0) return;
    const int tenth = static_cast<int>(10 * p.done / p.total);
    if (!tty_ && tenth == last_tenth_ && p.done != p.total) return;
    last_tenth_ = tenth;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * p.done / p.total);
    std::string line = absl::StrFormat("[%s%s] %d/%d matrices", std::string(filled, '#'),
                                       std::string(kWidth - filled, '.'), p.done, p.total);
    if (p.cached > 0) absl::StrAppend(&line, " (", p.cached, " cached)");
    absl::StrAppend(&line, ", ", Seconds(p.elapsed_s));
    if (p.done < p.total && p.eta_s > 0) absl::StrAppend(&line, ", ETA ", Seconds(p.eta_s));
    if (tty_) {
      // Padding wipes what a longer previous line left behind.
      std::cerr << "\r" << line
                << std::string(std::max<int>(0, width_ - static_cast<int>(line.size())), ' ')
                << std::flush;
      width_ = static_cast<int>(line.size());
      if (p.done == p.total) std::cerr << "\n";
    } else {
      std::cerr << line << "\n";
    }
  }

 private:
  bool tty_;
  int last_tenth_ = -1;
  int width_ = 0;
};

// `t2 svd`'s argument and flags.
struct SvdFlags {
  std::string model_spec;
  svf::TargetSet targets = svf::TargetSet::kMlp;
  std::string cache_dir;
  CLI::Option* cache_dir_flag = nullptr;
  bool verify = false;
  model::DeviceSpec device;
  model::ComputeDType dtype = model::ComputeDType::kAuto;
};

// Declares `t2 svd`'s argument and flags, bound to `flags`.
void AddSvdFlags(CommandLine& command_line, SvdFlags& flags) {
  command_line
      .add_option("model", flags.model_spec, "a .gguf file, an HF checkpoint folder or 'default'")
      ->type_name("MODEL")
      ->required();
  AddEnumOption(command_line, "--targets", flags.targets, svf::kTargetSets, svf::TargetSetName,
                "matrices to decompose");
  flags.cache_dir_flag = command_line
                             .add_option("--cache-dir", flags.cache_dir,
                                         "where the cache lives (default: beside the model)")
                             ->type_name("DIR");
  command_line.add_flag("--verify", flags.verify,
                        "check that every matrix reconstructs within 1e-5 (relative)");
  model::AddDeviceFlags(command_line, flags.device, flags.dtype,
                        ", as the server will load the model");
  command_line.footer(
      "t2 generate --expert and the server read the cache, which is tied to the weights as loaded\n"
      "(--device, --dtype).");
}

// --cache-dir, or else the model's folder; an error is bad usage.
absl::StatusOr<std::filesystem::path> CacheDir(const SvdFlags& flags,
                                               const std::filesystem::path& model_path) {
  std::filesystem::path cache_dir = flags.cache_dir;
  if (cache_dir.empty()) {
    cache_dir = std::filesystem::is_directory(model_path) ? model_path : model_path.parent_path();
  }
  std::error_code ec;
  if (std::filesystem::exists(cache_dir, ec) && !std::filesystem::is_directory(cache_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cache-dir: ", cache_dir.string(), " is not a directory"));
  }
  return cache_dir;
}

// What the summary reports besides the model and the decomposition.
struct SvdStats {
  double load_s = 0, svd_s = 0;
  int64_t cached = 0;  // matrices from the cache or staging, not computed
};

// Prints the summary to stdout; returns the exit status: 1 when the cache could not be written.
int PrintSummary(const model::LlamaModel& m, const std::filesystem::path& model_path,
                 const svf::Decomposition& d, const svf::DecomposeOptions& options,
                 const SvdStats& stats) {
  int64_t rank = 0;
  for (const auto& name : d.names()) rank += d.Find(name)->rank();
  std::cout << absl::StrFormat("model:        %s (%s, %s/%s, loaded in %s)\n", m.config().name,
                               model_path.string(), m.device_name(), m.dtype_name(),
                               Seconds(stats.load_s))
            << absl::StrFormat("fingerprint:  %s\n", d.base_fingerprint())
            << absl::StrFormat("targets:      %s: %d matrices, total rank %d\n",
                               AsAbsl(svf::TargetSetName(options.targets)), d.names().size(), rank)
            << absl::StrFormat("factors:      %.1f MiB float32\n", d.bytes() / 1048576.0)
            << absl::StrFormat("time:         %s (%d computed, %d from the cache or staging)\n",
                               Seconds(stats.svd_s),
                               static_cast<int64_t>(d.names().size()) - stats.cached, stats.cached);
  if (options.verify) std::cout << "verified:     every matrix within 1e-05 relative error\n";
  if (d.cache_path().empty()) {
    std::cout << "cache:        not written (see the warning above)\n";
    return 1;
  }
  std::cout << absl::StrFormat("cache:        %s (%s)\n", d.cache_path().string(),
                               d.loaded_from_cache() ? "loaded, already up to date" : "written");
  return 0;
}

// Loads the model, builds (or loads and checks) its decomposition with a progress bar on stderr,
// and prints the summary; returns the exit status.
int Decompose(const std::filesystem::path& model_path, const model::LoadOptions& load,
              svf::DecomposeOptions options) {
  const auto start = std::chrono::steady_clock::now();
  auto model = model::LlamaModel::Load(model_path, load);
  if (!model.ok()) return ExitWith("svd", model.status(), kExitFailure);
  SvdStats stats;
  stats.load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ProgressBar bar;
  const auto svd_start = std::chrono::steady_clock::now();
  options.on_progress = [&](const svf::DecomposeProgress& p) {
    stats.cached = p.cached;
    bar.Update(p);
  };
  auto d = svf::Decomposition::Build(**model, options);
  if (!d.ok()) return ExitWith("svd", d.status(), kExitFailure);
  stats.svd_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - svd_start).count();
  return PrintSummary(**model, model_path, *d, options, stats);
}

}  // namespace

int RunSvd(const std::vector<std::string>& args) {
  CommandLine command_line(
      "t2 svd", "Computes (or loads and checks) the SVD cache of a model's SVF target matrices.");
  SvdFlags flags;
  AddSvdFlags(command_line, flags);
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  const model::LoadOptions load{.device = flags.device, .dtype = flags.dtype};
  // Validate's message starts with the field ("device: ..."), which is the flag's name.
  if (auto s = load.Validate(); !s.ok())
    return ExitWith("svd", absl::InvalidArgumentError(absl::StrCat("--", s.message())), kExitUsage);
  if (flags.cache_dir_flag->count() > 0 && flags.cache_dir.empty()) {
    return ExitWith("svd", absl::InvalidArgumentError("--cache-dir must not be empty"), kExitUsage);
  }
  auto model_path = ResolveModelPath(flags.model_spec);
  if (!model_path.ok()) return ExitWith("svd", model_path.status(), kExitFailure);
  auto cache_dir = CacheDir(flags, *model_path);
  if (!cache_dir.ok()) return ExitWith("svd", cache_dir.status(), kExitUsage);
  return Decompose(*model_path, load,
                   {.targets = flags.targets, .cache_dir = *cache_dir, .verify = flags.verify});
}

}  // namespace t2::cli
