// t2 adapt: few-shot adaptation through a running dispatcher (Dispatcher.Adapt). The
// dispatcher searches mixture weights over the experts with CEM, scoring each candidate on
// the solved examples, and stores the best mixture in the registry under the task's name;
// `t2 generate --server ADDR --task NAME` then uses it.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "command_errors.h"
#include "commands.h"
#include "nlohmann/json.hpp"
#include "t2/common/command_line.h"
#include "t2/common/status.h"
#include "t2/rpc/security.h"
#include "t2/rpc/status.h"
#include "t2/v1/dispatcher.grpc.pb.h"

namespace t2::cli {
namespace {

// `t2 adapt`'s flags.
struct AdaptFlags {
  std::string server, task, examples, verifier;
  std::string experts;
  CLI::Option* experts_flag = nullptr;
  int32_t generations = 0, population = 0, max_new_tokens = 0;  // 0: the dispatcher's default
  bool per_layer = false;
  double timeout = 3600;
  rpc::Security security;
};

// Reads the examples file; any problem is a usage error naming --examples and the line.
absl::StatusOr<std::vector<t2::v1::SolvedExample>> ReadExamples(const std::string& path) {
  std::ifstream in(path);
  if (!in) return UsageError(absl::StrCat("--examples: cannot read ", path));
  std::vector<t2::v1::SolvedExample> examples;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat("--examples ", path, " line ", number, ": ");
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return UsageError(absl::StrCat(where, "not a JSON object"));
    t2::v1::SolvedExample example;
    for (const char* key : {"question", "answer"}) {
      if (!j.contains(key)) return UsageError(absl::StrCat(where, "\"", key, "\" is missing"));
      const auto& v = j[key];
      // A numeric answer may be written as a JSON number.
      std::string text;
      if (v.is_string()) {
        text = v.get<std::string>();
      } else if (v.is_number() && std::string(key) == "answer") {
        text = v.dump();
      } else {
        return UsageError(absl::StrCat(where, "\"", key, "\" must be a string"));
      }
      if (std::string(key) == "question") example.set_question(text);
      else example.set_answer(text);
    }
    examples.push_back(std::move(example));
  }
  if (examples.empty()) return UsageError(absl::StrCat("--examples ", path, ": no examples"));
  return examples;
}

// `name` is one of the --verifier choices (OneOf checked it).
t2::v1::VerifierKind Verifier(const std::string& name) {
  static const std::map<std::string, t2::v1::VerifierKind> kinds = {{"exact", t2::v1::VERIFIER_KIND_EXACT},
                                                                    {"numeric", t2::v1::VERIFIER_KIND_NUMERIC},
                                                                    {"choice", t2::v1::VERIFIER_KIND_CHOICE_LETTER},
                                                                    {"regex", t2::v1::VERIFIER_KIND_REGEX}};
  return kinds.at(name);
}

absl::StatusOr<t2::v1::AdaptRequest> BuildRequest(const AdaptFlags& flags) {
  // Given, but empty.
  const std::pair<const char*, const std::string*> required[] = {
      {"server", &flags.server}, {"task", &flags.task}, {"examples", &flags.examples}};
  for (const auto& [name, value] : required) {
    if (value->empty()) return UsageError(absl::StrCat("--", name, " is required"));
  }
  t2::v1::AdaptRequest request;
  request.set_task(flags.task);
  T2_ASSIGN_OR_RETURN(auto examples, ReadExamples(flags.examples));
  for (auto& e : examples) *request.add_examples() = std::move(e);
  request.set_verifier(Verifier(flags.verifier));
  if (flags.experts_flag->count() > 0) {
    for (absl::string_view name : absl::StrSplit(flags.experts, ',', absl::SkipWhitespace())) {
      request.add_experts(std::string(name));
    }
    if (request.experts().empty()) return UsageError("--experts needs at least one name");
  }
  request.set_generations(flags.generations);
  request.set_population(flags.population);
  request.set_max_new_tokens(flags.max_new_tokens);
  request.set_per_layer(flags.per_layer);
  return request;
}

void PrintResult(const t2::v1::AdaptResponse& r) {
  const auto& spec = r.spec();
  const int k = spec.experts_size();
  std::cout << "task " << r.task() << ": mixture of " << k << (k == 1 ? " expert" : " experts")
            << (spec.per_layer() ? " (per layer)" : "") << "\n";
  const int layers = k == 0 ? 0 : spec.alpha_size() / k;
  for (int e = 0; e < k; ++e) {
    const std::string name = absl::StrCat(spec.experts(e).name(), "@", spec.experts(e).version());
    if (spec.alpha_size() == 0) {
      std::cout << absl::StrFormat("  %-24s alpha 1\n", name);
    } else if (!spec.per_layer() || layers <= 1) {
      std::cout << absl::StrFormat("  %-24s alpha %.4f\n", name, spec.alpha(e < spec.alpha_size() ? e : 0));
    } else {
      // Row-major by layer: alpha[layer * k + e].
      double sum = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (int l = 0; l < layers; ++l) {
        const double a = spec.alpha(l * k + e);
        sum += a;
        lo = std::min(lo, a);
        hi = std::max(hi, a);
      }
      std::cout << absl::StrFormat("  %-24s alpha mean %.4f over %d layers (min %.4f, max %.4f)\n", name,
                                   sum / layers, layers, lo, hi);
    }
  }
  std::cout << absl::StrFormat("best accuracy %.3f (base model %.3f), %d evaluations in %.1f s\n", r.best_accuracy(),
                               r.base_accuracy(), r.evaluations(), r.duration_ms() / 1000.0);
  std::cout << "stored in the registry as mixture '" << r.task() << "' (t2 generate --server ADDR --task "
            << r.task() << ")\n";
}

// Declares `t2 adapt`'s flags, bound to `flags`.
void AddAdaptFlags(CommandLine& command_line, AdaptFlags& flags) {
  command_line.add_option("--server", flags.server, "the dispatcher's address")
      ->type_name("HOST:PORT")
      ->required();
  command_line
      .add_option("--task", flags.task,
                  "the mixture name the result is stored under in the registry")
      ->type_name("NAME")
      ->required();
  command_line
      .add_option("--examples", flags.examples,
                  "JSON lines {\"question\": \"...\", \"answer\": \"...\"} "
                  "(1..64 lines)")
      ->type_name("FILE")
      ->required();
  command_line
      .add_option("--verifier", flags.verifier,
                  "exact: trimmed text equal; numeric: last number equals the answer; choice: "
                  "first standalone A-J "
                  "letter; regex: the answer is a pattern")
      ->required()
      ->transform(OneOf({"exact", "numeric", "choice", "regex"}));
  flags.experts_flag =
      command_line
          .add_option("--experts", flags.experts,
                      "expert names or aliases to mix (default: every alias except \"cls\")")
          ->type_name("A,B,...");
  // Unset, they stay 0 in the request: the dispatcher's defaults apply.
  command_line
      .add_option("--generations", flags.generations,
                  "CEM iterations (default: the dispatcher's, 10)")
      ->type_name("G")
      ->transform(IntIn(1, std::numeric_limits<int32_t>::max()))
      ->default_str("");
  command_line
      .add_option("--population", flags.population,
                  "candidates per generation (default: the dispatcher's, 32)")
      ->type_name("P")
      ->transform(IntIn(1, std::numeric_limits<int32_t>::max()))
      ->default_str("");
  command_line
      .add_option("--max-new-tokens", flags.max_new_tokens,
                  "per generated answer (default: the dispatcher's, 64)")
      ->type_name("N")
      ->transform(IntIn(1, std::numeric_limits<int32_t>::max()))
      ->default_str("");
  command_line.add_flag("--per-layer", flags.per_layer,
                        "one weight per layer and expert instead of one per expert");
  command_line.add_option("--timeout", flags.timeout, "for the whole search (above 0)")
      ->type_name("SECONDS")
      ->transform(NumberIn(0, 86400));
  rpc::AddSecurityFlags(command_line, flags.security, /*server=*/false);
  command_line.footer("Then: t2 generate --server ADDR --task NAME.");
}

// Sends the request to the dispatcher and prints the mixture it stored; returns the exit status.
int Adapt(const AdaptFlags& flags, const t2::v1::AdaptRequest& request) {
  auto channel = rpc::MakeClientChannel(flags.security, flags.server);
  if (!channel.ok()) return ExitWith("adapt", channel.status().message(), kExitUsage);
  auto stub = t2::v1::Dispatcher::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(flags.timeout * 1000)));
  std::cerr << "[t2] adapting '" << request.task() << "' on " << request.examples_size()
            << " examples...\n";
  t2::v1::AdaptResponse response;
  absl::Status status = rpc::FromGrpc(stub->Adapt(&context, request, &response));
  if (!status.ok()) {
    std::cerr << "t2 adapt: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    return 1;
  }
  PrintResult(response);
  return 0;
}

}  // namespace

int RunAdapt(const std::vector<std::string>& args) {
  CommandLine command_line("t2 adapt",
                           "Few-shot adaptation through a running dispatcher: CEM searches mixture "
                           "weights over the experts, scored on the solved examples, and the best "
                           "mixture is stored in the registry under the task's name.");
  AdaptFlags flags;
  AddAdaptFlags(command_line, flags);
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  auto request = BuildRequest(flags);
  if (!request.ok()) return ExitWith("adapt", request.status().message(), kExitUsage);
  if (flags.timeout == 0)
    return ExitWith("adapt", "--timeout must be in (0, 86400] seconds", kExitUsage);
  return Adapt(flags, *request);
}

}  // namespace t2::cli
