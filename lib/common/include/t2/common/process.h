// Child processes: start a binary with its output in a log file, signal it, wait for it, and
// always reap it (an owner that fails half-way never leaves a process behind). `t2 up` runs
// the services this way, and so do the integration tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace t2 {

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();  // SIGKILL + reap if still running

  // Starts `argv[0]` with the remaining arguments; stdout and stderr go to `log_file`
  // (appended) so a failing test can print them. Returns false if fork/exec failed.
  bool Start(const std::vector<std::string>& argv, const std::filesystem::path& log_file);

  pid_t pid() const { return pid_; }
  bool running();                 // reaps it if it has exited
  void Signal(int signal) const;  // no-op if not running
  // Waits for exit; returns the exit status as from waitpid (-1 on timeout).
  int Wait(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL after `grace`; returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// Waits until `path` exists and is non-empty (written atomically by the service), or the
// child exits, or the timeout passes. Returns its trimmed contents, or "" on failure.
std::string WaitForFile(const std::filesystem::path& path, ChildProcess& child,
                        std::chrono::milliseconds timeout);

// The last `max_bytes` of a file (a child's log), for failure messages.
std::string Tail(const std::filesystem::path& path, size_t max_bytes = 4000);

}  // namespace t2
