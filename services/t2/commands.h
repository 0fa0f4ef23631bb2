// The t2 subcommands. Each returns the process exit code: 0 success, 1 failure, 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace t2::cli {

int RunGenerate(const std::vector<std::string>& args);
int RunInfo(const std::vector<std::string>& args);
int RunSvd(const std::vector<std::string>& args);
int RunExpert(const std::vector<std::string>& args);
int RunUp(const std::vector<std::string>& args);
// Clients of a running stack: a failed call exits 1 printing the gRPC code name and message.
int RunExperts(const std::vector<std::string>& args);
int RunAdapt(const std::vector<std::string>& args);
int RunTrain(const std::vector<std::string>& args);
int RunEval(const std::vector<std::string>& args);
// Exit 0 only when the service reports SERVING (optionally waiting for it).
int RunHealth(const std::vector<std::string>& args);
// Credentials for a secured stack: a bearer token and its auth-file entry; throwaway certificates.
int RunToken(const std::vector<std::string>& args);
int RunCerts(const std::vector<std::string>& args);

}  // namespace t2::cli
