#include "t2/common/log.h"

#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace t2 {
namespace {

// Diagnostics go to stderr: stdout belongs to the tools' output (t2 generate's answer).
spdlog::logger& Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::get("t2");
    return l != nullptr ? l : spdlog::stderr_color_mt("t2");
  }();
  return *logger;
}

}  // namespace

void LogInfo(std::string_view message) { Logger().info("{}", message); }
void LogWarning(std::string_view message) { Logger().warn("{}", message); }
void LogError(std::string_view message) { Logger().error("{}", message); }

}  // namespace t2
