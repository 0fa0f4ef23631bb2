// t2 experts: the expert registry of a running stack — list, publish, download, alias,
// deprecate, list and delete mixtures. Exit codes: 0 done, 1 the registry refused or could not be reached (the gRPC
// code name and message are printed), 2 bad usage.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "commands.h"
#include "stack_client.h"
#include "t2/common/flags.h"
#include "t2/common/status.h"
#include "t2/names/names.h"
#include "t2/registry_client/registry_client.h"
#include "t2/rpc/security.h"
#include "t2/rpc/status.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::cli {
namespace {

constexpr const char* kUsage = R"(usage: t2 experts <command> --registry HOST:PORT [options]
  list [--name NAME] [--all]        expert versions (--all: deprecated ones too) and aliases
  publish --name NAME --version V FILE
                                    upload an expert file (checked by the registry)
  get NAME[@VERSION] --out FILE     download an expert (NAME may be an alias; no version:
                                    the alias's target or the newest non-deprecated version)
  alias ALIAS NAME[@VERSION]        point ALIAS at a version (default: the newest)
  alias --delete ALIAS              remove ALIAS
  deprecate NAME@VERSION            hide a version from name-only lookups and aliases
  mixtures                          the stored mixtures (CEM results) and their weights
  mixtures --delete NAME            remove a mixture (its expert versions stay)
common options:
  --registry HOST:PORT              the registry's address (required)
  --timeout SECONDS                 per call (default 60)
)";

absl::Status Usage(std::string_view message) { return absl::InvalidArgumentError(AsAbsl(message)); }

// What a finished subcommand returns: OK, a usage error (exit 2) or a failed call (exit 1).
struct Outcome {
  absl::Status status;
  bool usage = false;
};

Outcome UsageError(std::string_view message) { return {Usage(message), true}; }

struct Call {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<t2::v1::Registry::Stub> stub;
  double timeout_seconds = 60;
  registry::RegistryClient client;  // publish and download (size and sha256 checked)

  void Prepare(grpc::ClientContext& context) const {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  }
};

std::string Yes(bool b) { return b ? "yes" : "no"; }

// Left-aligned columns two spaces apart; the first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += c + 1 == row.size() ? row[c] : absl::StrFormat("%-*s  ", static_cast<int>(width[c]), row[c]);
    }
    std::cout << line << "\n";
  }
}

Outcome List(const Flags& flags, const Call& call) {
  if (!flags.positional().empty()) {
    return UsageError(absl::StrCat("experts list: unexpected argument '", flags.positional()[0], "'"));
  }
  t2::v1::ListExpertsRequest request;
  request.set_name(flags.Get("name", ""));
  request.set_include_deprecated(flags.Has("all"));
  t2::v1::ListExpertsResponse experts;
  {
    grpc::ClientContext context;
    call.Prepare(context);
    if (auto s = call.stub->ListExperts(&context, request, &experts); !s.ok()) return {rpc::FromGrpc(s)};
  }
  t2::v1::ListAliasesResponse aliases;
  {
    grpc::ClientContext context;
    call.Prepare(context);
    if (auto s = call.stub->ListAliases(&context, {}, &aliases); !s.ok()) return {rpc::FromGrpc(s)};
  }

  std::vector<std::vector<std::string>> rows = {
      {"NAME", "VERSION", "SHA256", "SIZE", "TASK", "BASE MODEL", "DEPRECATED", "PUBLISHED BY"}};
  for (const auto& e : experts.experts()) {
    rows.push_back({e.name(), absl::StrCat(e.version()), e.sha256().substr(0, 12),
                    absl::StrCat(e.size_bytes()), e.task(), e.base_model(), Yes(e.deprecated()),
                    e.published_by().empty() ? "-" : e.published_by()});
  }
  if (rows.size() == 1) {
    std::cout << (request.name().empty() ? "no experts\n" : absl::StrCat("no expert named ", request.name(), "\n"));
  } else {
    PrintTable(rows);
  }
  std::vector<std::string> alias_lines;
  for (const auto& a : aliases.aliases()) {
    if (!request.name().empty() && a.target().name() != request.name()) continue;
    alias_lines.push_back(absl::StrCat("  ", a.alias(), " -> ", a.target().name(), "@", a.target().version()));
  }
  std::cout << (alias_lines.empty() ? "aliases: none\n" : "aliases:\n");
  for (const auto& line : alias_lines) std::cout << line << "\n";
  return {};
}

Outcome Publish(const Flags& flags, const Call& call) {
  if (!flags.Has("name")) return UsageError("experts publish: --name is required");
  if (!flags.Has("version")) return UsageError("experts publish: --version is required");
  auto version = flags.GetInt("version", 0);
  if (!version.ok()) return {version.status(), true};
  if (*version < 1) return UsageError(absl::StrCat("experts publish: --version must be >= 1, got ", *version));
  if (flags.positional().size() != 1) return UsageError("experts publish: expected exactly one FILE argument");
  const std::filesystem::path file = flags.positional()[0];
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return {absl::NotFoundError(absl::StrCat("cannot read ", file.string()))};
  }
  auto info = call.client.Publish(flags.Get("name", ""), *version, file);
  if (!info.ok()) return {info.status()};
  std::cout << "published " << info->name() << "@" << info->version() << " sha256 " << info->sha256() << " ("
            << info->size_bytes() << " bytes, base " << info->base_model() << ")\n";
  return {};
}

// Downloads into `out` through the registry client: `out` is either the whole expert, its
// size and sha256 checked against the registry's header, or untouched.
Outcome Get(const Flags& flags, const Call& call) {
  if (flags.positional().size() != 1) return UsageError("experts get: expected exactly one NAME[@VERSION] argument");
  if (!flags.Has("out") || flags.Get("out", "").empty()) return UsageError("experts get: --out is required");
  auto what = names::ParseNameVersion("experts get", flags.positional()[0]);
  if (!what.ok()) return {what.status(), true};
  const std::filesystem::path out = flags.Get("out", "");
  auto info = call.client.Download(what->name, what->version, out);
  if (!info.ok()) {
    if (absl::IsPermissionDenied(info.status())) return {Annotate(info.status(), "--out")};
    return {info.status()};
  }
  std::cout << "wrote " << out.string() << ": " << info->name() << "@" << info->version() << ", "
            << info->size_bytes() << " bytes, sha256 " << info->sha256() << " (verified)\n";
  return {};
}

// The newest non-deprecated version of `name`, for `alias ALIAS NAME` without a version.
absl::StatusOr<int64_t> NewestVersion(const Call& call, const std::string& name) {
  t2::v1::ListExpertsRequest request;
  request.set_name(name);
  t2::v1::ListExpertsResponse response;
  grpc::ClientContext context;
  call.Prepare(context);
  T2_RETURN_IF_ERROR(rpc::FromGrpc(call.stub->ListExperts(&context, request, &response)));
  int64_t newest = 0;
  for (const auto& e : response.experts()) {
    if (e.name() == name && !e.deprecated()) newest = std::max(newest, e.version());
  }
  if (newest == 0) return absl::NotFoundError(absl::StrCat("no non-deprecated version of expert '", name, "'"));
  return newest;
}

Outcome Alias(const Flags& flags, const Call& call) {
  if (flags.Has("delete")) {
    if (flags.positional().size() != 1) return UsageError("experts alias --delete: expected exactly one ALIAS argument");
    t2::v1::DeleteAliasRequest request;
    request.set_alias(flags.positional()[0]);
    t2::v1::DeleteAliasResponse response;
    grpc::ClientContext context;
    call.Prepare(context);
    if (auto s = call.stub->DeleteAlias(&context, request, &response); !s.ok()) return {rpc::FromGrpc(s)};
    std::cout << "deleted alias " << request.alias() << "\n";
    return {};
  }
  if (flags.positional().size() != 2) return UsageError("experts alias: expected ALIAS NAME[@VERSION] (or --delete ALIAS)");
  auto target = names::ParseNameVersion("experts alias", flags.positional()[1]);
  if (!target.ok()) return {target.status(), true};
  if (target->version == 0) {
    auto newest = NewestVersion(call, target->name);
    if (!newest.ok()) return {newest.status()};
    target->version = *newest;
  }
  t2::v1::SetAliasRequest request;
  request.set_alias(flags.positional()[0]);
  request.set_name(target->name);
  request.set_version(target->version);
  t2::v1::Alias reply;
  grpc::ClientContext context;
  call.Prepare(context);
  if (auto s = call.stub->SetAlias(&context, request, &reply); !s.ok()) return {rpc::FromGrpc(s)};
  std::cout << "alias " << reply.alias() << " -> " << reply.target().name() << "@" << reply.target().version() << "\n";
  return {};
}

Outcome Deprecate(const Flags& flags, const Call& call) {
  if (flags.positional().size() != 1) return UsageError("experts deprecate: expected exactly one NAME@VERSION argument");
  auto what = names::ParseNameVersion("experts deprecate", flags.positional()[0]);
  if (!what.ok()) return {what.status(), true};
  if (what->version == 0) return UsageError("experts deprecate: give the version to deprecate as NAME@VERSION");
  t2::v1::DeprecateExpertRequest request;
  request.set_name(what->name);
  request.set_version(what->version);
  t2::v1::ExpertInfo info;
  grpc::ClientContext context;
  call.Prepare(context);
  if (auto s = call.stub->DeprecateExpert(&context, request, &info); !s.ok()) return {rpc::FromGrpc(s)};
  std::cout << "deprecated " << info.name() << "@" << info.version() << "\n";
  return {};
}

Outcome Mixtures(const Flags& flags, const Call& call) {
  if (flags.Has("delete")) {
    if (flags.positional().size() != 1) return UsageError("experts mixtures --delete: expected exactly one NAME argument");
    t2::v1::DeleteMixtureRequest request;
    request.set_name(flags.positional()[0]);
    t2::v1::DeleteMixtureResponse response;
    grpc::ClientContext context;
    call.Prepare(context);
    if (auto s = call.stub->DeleteMixture(&context, request, &response); !s.ok()) return {rpc::FromGrpc(s)};
    std::cout << "deleted mixture " << request.name() << "\n";
    return {};
  }
  if (!flags.positional().empty()) {
    return UsageError(absl::StrCat("experts mixtures: unexpected argument '", flags.positional()[0], "'"));
  }
  t2::v1::ListMixturesResponse response;
  grpc::ClientContext context;
  call.Prepare(context);
  if (auto s = call.stub->ListMixtures(&context, {}, &response); !s.ok()) return {rpc::FromGrpc(s)};
  if (response.mixtures().empty()) {
    std::cout << "no mixtures\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "EXPERTS", "ALPHA", "SOURCE"}};
  for (const auto& m : response.mixtures()) {
    std::vector<std::string> experts, alpha;
    for (const auto& e : m.spec().experts()) experts.push_back(absl::StrCat(e.name(), "@", e.version()));
    for (double a : m.spec().alpha()) alpha.push_back(absl::StrFormat("%.3g", a));
    const std::string weights = m.spec().per_layer()
                                    ? absl::StrCat("per layer (", m.spec().alpha_size(), " values)")
                                    : absl::StrJoin(alpha, ",");
    rows.push_back({m.name(), absl::StrJoin(experts, ","), weights.empty() ? "-" : weights, m.source()});
  }
  PrintTable(rows);
  return {};
}

// Flags each subcommand takes besides --registry, --timeout and --help.
struct Command {
  const char* name;
  FlagSpec spec;
  Outcome (*run)(const Flags&, const Call&);
};

}  // namespace

int RunExperts(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    (args.empty() ? std::cerr : std::cout) << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<Command> commands = {
      {"list", {.value_flags = {"name"}, .bool_flags = {"all"}}, List},
      {"publish", {.value_flags = {"name", "version"}, .bool_flags = {}}, Publish},
      {"get", {.value_flags = {"out"}, .bool_flags = {}}, Get},
      {"alias", {.value_flags = {}, .bool_flags = {"delete"}}, Alias},
      {"deprecate", {.value_flags = {}, .bool_flags = {}}, Deprecate},
      {"mixtures", {.value_flags = {}, .bool_flags = {"delete"}}, Mixtures},
  };
  auto command = std::find_if(commands.begin(), commands.end(), [&](const Command& c) { return args[0] == c.name; });
  if (command == commands.end()) {
    std::cerr << "t2 experts: unknown command '" << args[0] << "'\n" << kUsage;
    return 2;
  }
  FlagSpec spec = command->spec;
  spec.value_flags.insert({"registry", "timeout"});
  spec.bool_flags.insert("help");
  rpc::AddSecurityFlags(spec);
  auto flags = Flags::Parse(std::vector<std::string>(args.begin() + 1, args.end()), spec);
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 experts: " << message << "\n" << kUsage;
    return 2;
  };
  if (!flags.ok()) return usage_error(flags.status().message());
  if (flags->Has("help")) {
    std::cout << kUsage << rpc::kClientSecurityUsage;
    return 0;
  }
  if (flags->Get("registry", "").empty()) return usage_error("--registry is required");
  auto timeout = flags->GetDouble("timeout", 60);
  if (!timeout.ok()) return usage_error(timeout.status().message());
  if (!(*timeout > 0 && *timeout <= 86400)) return usage_error("--timeout must be in (0, 86400] seconds");

  auto made = rpc::MakeClientChannel(*flags, flags->Get("registry", ""));
  if (!made.ok()) return usage_error(made.status().message());
  const std::shared_ptr<grpc::Channel>& channel = *made;
  const Call call{.channel = channel,
                  .stub = t2::v1::Registry::NewStub(channel),
                  .timeout_seconds = *timeout,
                  .client = registry::RegistryClient(channel, {.call_timeout = absl::Seconds(*timeout),
                                                               .transfer_timeout = absl::Minutes(5)})};
  Outcome outcome = command->run(*flags, call);
  if (outcome.usage) return usage_error(outcome.status.message());
  if (!outcome.status.ok()) {
    std::cerr << "t2 experts: " << absl::StatusCodeToString(outcome.status.code()) << ": " << outcome.status.message()
              << "\n";
    return 1;
  }
  return 0;
}

}  // namespace t2::cli
