#include "plot.h"

#include <sys/wait.h>

#include <chrono>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "plot_script.h"
#include "t2/common/env.h"
#include "t2/common/process.h"

namespace t2::trainer {

absl::Status PlotTraining(const std::filesystem::path& metrics, const std::filesystem::path& png,
                          const std::string& title) {
  const char* env = std::getenv("T2_PYTHON");
  const std::filesystem::path python = env != nullptr && *env != '\0' ? env : T2Home() / "venv" / "bin" / "python";
  std::error_code ec;
  if (!std::filesystem::exists(python, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("plot: no Python at ", python.string(), " (run scripts/setup.sh)"));
  }
  const std::filesystem::path log = png.string() + ".log";
  std::filesystem::remove(log, ec);
  ChildProcess child;
  if (!child.Start({python.string(), "-c", kPlotScript, metrics.string(), png.string(), title}, log)) {
    return absl::InternalError(absl::StrCat("plot: cannot start ", python.string()));
  }
  const int status = child.Wait(std::chrono::minutes(2));
  if (status == -1) child.Stop(std::chrono::seconds(1));
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("plot: the script failed: ", Tail(log, 2000)));
  }
  std::filesystem::remove(log, ec);
  return absl::OkStatus();
}

}  // namespace t2::trainer
