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
#include "commands.h"
#include "nlohmann/json.hpp"
#include "t2/common/flags.h"
#include "t2/common/status.h"
#include "t2/rpc/security.h"
#include "t2/rpc/status.h"
#include "t2/v1/dispatcher.grpc.pb.h"

namespace t2::cli {
namespace {

constexpr const char* kUsage = R"(usage: t2 adapt --server HOST:PORT --task NAME --examples FILE.jsonl --verifier KIND [options]
  --server HOST:PORT     the dispatcher's address
  --task NAME            the mixture name the result is stored under in the registry
  --examples FILE        JSON lines {"question": "...", "answer": "..."} (1..64 lines)
  --verifier exact|numeric|choice|regex
                         exact: trimmed text equal; numeric: last number equals the answer;
                         choice: first standalone A-J letter; regex: answer is a pattern
  --experts a,b          expert names or aliases to mix (default: every alias except "cls")
  --generations G        CEM iterations (default: the dispatcher's, 10)
  --population P         candidates per generation (default: the dispatcher's, 32)
  --max-new-tokens N     per generated answer (default: the dispatcher's, 64)
  --per-layer            one weight per layer and expert instead of one per expert
  --timeout SECONDS      default 3600
)";

absl::Status Usage(std::string_view message) { return absl::InvalidArgumentError(AsAbsl(message)); }

// Reads the examples file; any problem is a usage error naming --examples and the line.
absl::StatusOr<std::vector<t2::v1::SolvedExample>> ReadExamples(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Usage(absl::StrCat("--examples: cannot read ", path));
  std::vector<t2::v1::SolvedExample> examples;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = absl::StrCat("--examples ", path, " line ", number, ": ");
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return Usage(absl::StrCat(where, "not a JSON object"));
    t2::v1::SolvedExample example;
    for (const char* key : {"question", "answer"}) {
      if (!j.contains(key)) return Usage(absl::StrCat(where, "\"", key, "\" is missing"));
      const auto& v = j[key];
      // A numeric answer may be written as a JSON number.
      std::string text;
      if (v.is_string()) {
        text = v.get<std::string>();
      } else if (v.is_number() && std::string(key) == "answer") {
        text = v.dump();
      } else {
        return Usage(absl::StrCat(where, "\"", key, "\" must be a string"));
      }
      if (std::string(key) == "question") example.set_question(text);
      else example.set_answer(text);
    }
    examples.push_back(std::move(example));
  }
  if (examples.empty()) return Usage(absl::StrCat("--examples ", path, ": no examples"));
  return examples;
}

absl::StatusOr<t2::v1::VerifierKind> ParseVerifier(const std::string& name) {
  static const std::map<std::string, t2::v1::VerifierKind> kinds = {{"exact", t2::v1::VERIFIER_KIND_EXACT},
                                                                    {"numeric", t2::v1::VERIFIER_KIND_NUMERIC},
                                                                    {"choice", t2::v1::VERIFIER_KIND_CHOICE_LETTER},
                                                                    {"regex", t2::v1::VERIFIER_KIND_REGEX}};
  auto it = kinds.find(name);
  if (it == kinds.end()) return Usage(absl::StrCat("--verifier must be exact, numeric, choice or regex, got '", name, "'"));
  return it->second;
}

// An optional positive integer flag that fits the proto's int32 (0 = the dispatcher's default).
absl::StatusOr<int32_t> PositiveInt(const Flags& flags, const std::string& name) {
  auto value = flags.GetInt(name, 0);
  if (!value.ok()) return value.status();
  if (flags.Has(name) && (*value < 1 || *value > std::numeric_limits<int32_t>::max())) {
    return Usage(absl::StrCat("--", name, " must be a positive integer, got ", *value));
  }
  return static_cast<int32_t>(*value);
}

absl::StatusOr<t2::v1::AdaptRequest> BuildRequest(const Flags& flags) {
  if (!flags.positional().empty()) return Usage(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  for (const char* required : {"server", "task", "examples", "verifier"}) {
    if (flags.Get(required, "").empty()) return Usage(absl::StrCat("--", required, " is required"));
  }
  t2::v1::AdaptRequest request;
  request.set_task(flags.Get("task", ""));
  T2_ASSIGN_OR_RETURN(auto examples, ReadExamples(flags.Get("examples", "")));
  for (auto& e : examples) *request.add_examples() = std::move(e);
  T2_ASSIGN_OR_RETURN(auto verifier, ParseVerifier(flags.Get("verifier", "")));
  request.set_verifier(verifier);
  if (flags.Has("experts")) {
    for (absl::string_view name : absl::StrSplit(flags.Get("experts", ""), ',', absl::SkipWhitespace())) {
      request.add_experts(std::string(name));
    }
    if (request.experts().empty()) return Usage("--experts needs at least one name");
  }
  T2_ASSIGN_OR_RETURN(int32_t generations, PositiveInt(flags, "generations"));
  T2_ASSIGN_OR_RETURN(int32_t population, PositiveInt(flags, "population"));
  T2_ASSIGN_OR_RETURN(int32_t max_new, PositiveInt(flags, "max-new-tokens"));
  request.set_generations(generations);
  request.set_population(population);
  request.set_max_new_tokens(max_new);
  request.set_per_layer(flags.Has("per-layer"));
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

}  // namespace

int RunAdapt(const std::vector<std::string>& args) {
  FlagSpec spec{.value_flags = {"server", "task", "examples", "verifier", "experts", "generations", "population",
                                "max-new-tokens", "timeout"},
                .bool_flags = {"per-layer", "help"}};
  rpc::AddSecurityFlags(spec);
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 adapt: " << message << "\n" << kUsage;
    return 2;
  };
  auto flags = Flags::Parse(args, spec);
  if (!flags.ok()) return usage_error(flags.status().message());
  if (flags->Has("help")) {
    std::cout << kUsage << rpc::kClientSecurityUsage;
    return 0;
  }
  auto request = BuildRequest(*flags);
  if (!request.ok()) return usage_error(request.status().message());
  auto timeout = flags->GetDouble("timeout", 3600);
  if (!timeout.ok()) return usage_error(timeout.status().message());
  if (!(*timeout > 0 && *timeout <= 86400)) return usage_error("--timeout must be in (0, 86400] seconds");

  auto channel = rpc::MakeClientChannel(*flags, flags->Get("server", ""));
  if (!channel.ok()) return usage_error(channel.status().message());
  auto stub = t2::v1::Dispatcher::NewStub(*channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(*timeout * 1000)));
  std::cerr << "[t2] adapting '" << request->task() << "' on " << request->examples_size() << " examples...\n";
  t2::v1::AdaptResponse response;
  absl::Status status = rpc::FromGrpc(stub->Adapt(&context, *request, &response));
  if (!status.ok()) {
    std::cerr << "t2 adapt: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    return 1;
  }
  PrintResult(response);
  return 0;
}

}  // namespace t2::cli
