// t2: the t2serve command-line tool. Thin: parses the subcommand and hands over.
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"

namespace {

constexpr const char* kUsage = R"(usage: t2 <command> [options]

commands:
  generate   generate text from a local model, or through a stack with --server (t2 generate --help)
  info       print a model's architecture and tensors (t2 info MODEL)
  svd        compute or check a model's SVD cache for SVF experts (t2 svd --help)
  expert     inspect an SVF expert file, or write a constant one (t2 expert --help)
  up         run the whole stack (registry, worker, dispatcher) on this machine (t2 up --help)
  experts    list, publish, download, alias and deprecate experts in a registry (t2 experts --help)
  adapt      few-shot adaptation: fit a mixture of experts to solved examples (t2 adapt --help)
  train      train an SVF expert on a task with REINFORCE (t2 train --help)
  eval       accuracy of the base model or an expert on a task (t2 eval --help)
  health     whether a running service is SERVING; can wait for it (t2 health --help)
  token      make a bearer token and the auth-file entry granting it roles (t2 token --help)
  certs      make a throwaway CA and certificates for TLS (t2 certs --help)
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  std::string command = args[0];
  args.erase(args.begin());
  if (command == "generate") return t2::cli::RunGenerate(args);
  if (command == "info") return t2::cli::RunInfo(args);
  if (command == "svd") return t2::cli::RunSvd(args);
  if (command == "expert") return t2::cli::RunExpert(args);
  if (command == "up") return t2::cli::RunUp(args);
  if (command == "experts") return t2::cli::RunExperts(args);
  if (command == "adapt") return t2::cli::RunAdapt(args);
  if (command == "train") return t2::cli::RunTrain(args);
  if (command == "eval") return t2::cli::RunEval(args);
  if (command == "health") return t2::cli::RunHealth(args);
  if (command == "token") return t2::cli::RunToken(args);
  if (command == "certs") return t2::cli::RunCerts(args);
  std::cerr << "t2: unknown command '" << command << "'\n" << kUsage;
  return 2;
}
