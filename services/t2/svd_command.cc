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
#include "commands.h"
#include "t2/common/flags.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/model/llama.h"
#include "t2/svf/decomposition.h"
#include "t2/svf/targets.h"

namespace t2::cli {
namespace {

constexpr const char* kUsage = R"(usage: t2 svd MODEL|default [options]
  Computes the SVD of the model's SVF target matrices and writes the cache that
  t2 generate --expert and the server read (or loads and checks an existing one).
  --targets mlp|attn|all   matrices to decompose (default: mlp)
  --cache-dir DIR          where the cache lives (default: beside the model, as t2 generate)
  --verify                 check that every matrix reconstructs within 1e-5 (relative)
  --device auto|cpu|cuda[:N]  --dtype auto|float32|bfloat16|float16
                           as the server will load the model: the cache is tied to the
                           weights as loaded (default: auto, like t2 generate)
)";

int Fail(const absl::Status& status, int code) {
  std::cerr << "t2 svd: " << status.message() << "\n";
  if (code == 2) std::cerr << kUsage;
  return code;
}

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

}  // namespace

int RunSvd(const std::vector<std::string>& args) {
  auto flags = Flags::Parse(args, {.value_flags = {"targets", "cache-dir", "device", "dtype"},
                                   .bool_flags = {"verify", "help"}});
  if (!flags.ok()) return Fail(flags.status(), 2);
  if (flags->Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (flags->positional().size() != 1) {
    return Fail(
        absl::InvalidArgumentError(
            flags->positional().empty()
                ? "expected a MODEL argument (a .gguf file, an HF checkpoint folder or 'default')"
                : absl::StrCat("unexpected argument '", flags->positional()[1], "'")),
        2);
  }
  auto targets = svf::ParseTargetSet(flags->Get("targets", "mlp"));
  if (!targets.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--targets: '", flags->Get("targets", ""),
                                                        "' is not one of mlp, attn, all")),
                2);
  }
  const model::LoadOptions load{.device = flags->Get("device", "auto"),
                                .dtype = flags->Get("dtype", "auto")};
  // Validate's message starts with the field ("device: ..."), which is the flag's name.
  if (auto s = load.Validate(); !s.ok())
    return Fail(absl::InvalidArgumentError(absl::StrCat("--", s.message())), 2);
  if (flags->Has("cache-dir") && flags->Get("cache-dir", "").empty()) {
    return Fail(absl::InvalidArgumentError("--cache-dir must not be empty"), 2);
  }
  auto model_path = ResolveModelPath(flags->positional()[0]);
  if (!model_path.ok()) return Fail(model_path.status(), 1);

  std::filesystem::path cache_dir = flags->Get("cache-dir", "");
  if (cache_dir.empty()) {
    cache_dir =
        std::filesystem::is_directory(*model_path) ? *model_path : model_path->parent_path();
  }
  std::error_code ec;
  if (std::filesystem::exists(cache_dir, ec) && !std::filesystem::is_directory(cache_dir, ec)) {
    return Fail(absl::InvalidArgumentError(
                    absl::StrCat("--cache-dir: ", cache_dir.string(), " is not a directory")),
                2);
  }

  const auto start = std::chrono::steady_clock::now();
  auto model = model::LlamaModel::Load(*model_path, load);
  if (!model.ok()) return Fail(model.status(), 1);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  ProgressBar bar;
  const auto svd_start = std::chrono::steady_clock::now();
  int64_t cached = 0;
  auto d = svf::Decomposition::Build(**model, {.targets = *targets,
                                               .cache_dir = cache_dir,
                                               .verify = flags->Has("verify"),
                                               .on_progress = [&](const svf::DecomposeProgress& p) {
                                                 cached = p.cached;
                                                 bar.Update(p);
                                               }});
  if (!d.ok()) return Fail(d.status(), 1);
  const double svd_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - svd_start).count();

  int64_t rank = 0;
  for (const auto& name : d->names()) rank += d->Find(name)->rank();
  const auto& m = **model;
  std::cout << absl::StrFormat("model:        %s (%s, %s/%s, loaded in %s)\n", m.config().name,
                               model_path->string(), m.device_name(), m.dtype_name(),
                               Seconds(load_s))
            << absl::StrFormat("fingerprint:  %s\n", d->base_fingerprint())
            << absl::StrFormat("targets:      %s: %d matrices, total rank %d\n",
                               AsAbsl(svf::TargetSetName(*targets)), d->names().size(), rank)
            << absl::StrFormat("factors:      %.1f MiB float32\n", d->bytes() / 1048576.0)
            << absl::StrFormat("time:         %s (%d computed, %d from the cache or staging)\n",
                               Seconds(svd_s), static_cast<int64_t>(d->names().size()) - cached,
                               cached);
  if (flags->Has("verify")) std::cout << "verified:     every matrix within 1e-05 relative error\n";
  if (d->cache_path().empty()) {
    std::cout << "cache:        not written (see the warning above)\n";
    return 1;
  }
  std::cout << absl::StrFormat("cache:        %s (%s)\n", d->cache_path().string(),
                               d->loaded_from_cache() ? "loaded, already up to date" : "written");
  return 0;
}

}  // namespace t2::cli
