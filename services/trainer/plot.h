// The training-curve plot (PNG) of a run's metrics.jsonl, drawn by matplotlib in the
// project's Python environment ($T2_PYTHON, else $T2_HOME/venv/bin/python).
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"

namespace t2::trainer {

// FailedPrecondition when there is no Python environment; Internal (with its output) when
// the script fails. Waits at most two minutes.
absl::Status PlotTraining(const std::filesystem::path& metrics, const std::filesystem::path& png,
                          const std::string& title);

}  // namespace t2::trainer
