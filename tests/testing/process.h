// Running the service binaries as real child processes in integration tests: start one with
// `--listen 127.0.0.1:0 --port-file F`, wait until it has written its bound address, signal
// it, and always reap it (a test that fails half-way never leaves a server behind).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace t2::testing {

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

// A fresh empty directory under the system temp dir, named after the current test.
std::filesystem::path MakeTempDir(const std::string& prefix);

}  // namespace t2::testing
