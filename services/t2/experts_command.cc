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
#include "command_errors.h"
#include "commands.h"
#include "stack_client.h"
#include "t2/common/command_line.h"
#include "t2/common/status.h"
#include "t2/names/names.h"
#include "t2/registry_client/registry_client.h"
#include "t2/rpc/security.h"
#include "t2/rpc/status.h"
#include "t2/v1/registry.grpc.pb.h"

namespace t2::cli {
namespace {

// `t2 experts`'s flags and arguments: each command's, and those every command takes.
struct ExpertsFlags {
  std::string registry;
  double timeout = 60;
  rpc::Security security;
  std::string name;           // list, publish
  bool all = false;           // list
  int64_t version = 0;        // publish
  std::string file;           // publish
  std::string expert;         // get, deprecate: NAME[@VERSION]
  std::string out;            // get
  bool remove = false;        // alias, mixtures: --delete
  std::string alias, target;  // alias
  std::string mixture;        // mixtures --delete
  CLI::Option* mixture_arg = nullptr;
};

// What a finished subcommand returns: OK, a usage error (exit 2) or a failed call (exit 1).
struct Outcome {
  absl::Status status;
  bool usage = false;
};

Outcome UsageOutcome(std::string_view message) { return {UsageError(message), true}; }

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

Outcome List(const ExpertsFlags& flags, const Call& call) {
  t2::v1::ListExpertsRequest request;
  request.set_name(flags.name);
  request.set_include_deprecated(flags.all);
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

Outcome Publish(const ExpertsFlags& flags, const Call& call) {
  const std::filesystem::path file = flags.file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    return {absl::NotFoundError(absl::StrCat("cannot read ", file.string()))};
  }
  auto info = call.client.Publish(flags.name, flags.version, file);
  if (!info.ok()) return {info.status()};
  std::cout << "published " << info->name() << "@" << info->version() << " sha256 " << info->sha256() << " ("
            << info->size_bytes() << " bytes, base " << info->base_model() << ")\n";
  return {};
}

// Downloads into `out` through the registry client: `out` is either the whole expert, its
// size and sha256 checked against the registry's header, or untouched.
Outcome Get(const ExpertsFlags& flags, const Call& call) {
  if (flags.out.empty()) return UsageOutcome("experts get: --out is required");
  auto what = names::ParseNameVersion("experts get", flags.expert);
  if (!what.ok()) return {what.status(), true};
  const std::filesystem::path out = flags.out;
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

Outcome Alias(const ExpertsFlags& flags, const Call& call) {
  // Both arguments are optional to CLI11: how many there must be depends on --delete.
  if (flags.remove) {
    if (flags.alias.empty() || !flags.target.empty()) {
      return UsageOutcome("experts alias --delete: expected exactly one ALIAS argument");
    }
    t2::v1::DeleteAliasRequest request;
    request.set_alias(flags.alias);
    t2::v1::DeleteAliasResponse response;
    grpc::ClientContext context;
    call.Prepare(context);
    if (auto s = call.stub->DeleteAlias(&context, request, &response); !s.ok()) return {rpc::FromGrpc(s)};
    std::cout << "deleted alias " << request.alias() << "\n";
    return {};
  }
  if (flags.alias.empty() || flags.target.empty()) {
    return UsageOutcome("experts alias: expected ALIAS NAME[@VERSION] (or --delete ALIAS)");
  }
  auto target = names::ParseNameVersion("experts alias", flags.target);
  if (!target.ok()) return {target.status(), true};
  if (target->version == 0) {
    auto newest = NewestVersion(call, target->name);
    if (!newest.ok()) return {newest.status()};
    target->version = *newest;
  }
  t2::v1::SetAliasRequest request;
  request.set_alias(flags.alias);
  request.set_name(target->name);
  request.set_version(target->version);
  t2::v1::Alias reply;
  grpc::ClientContext context;
  call.Prepare(context);
  if (auto s = call.stub->SetAlias(&context, request, &reply); !s.ok()) return {rpc::FromGrpc(s)};
  std::cout << "alias " << reply.alias() << " -> " << reply.target().name() << "@" << reply.target().version() << "\n";
  return {};
}

Outcome Deprecate(const ExpertsFlags& flags, const Call& call) {
  auto what = names::ParseNameVersion("experts deprecate", flags.expert);
  if (!what.ok()) return {what.status(), true};
  if (what->version == 0)
    return UsageOutcome("experts deprecate: give the version to deprecate as NAME@VERSION");
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

Outcome Mixtures(const ExpertsFlags& flags, const Call& call) {
  // The argument is optional to CLI11: it goes with --delete only.
  if (flags.remove) {
    if (flags.mixture_arg->count() == 0) {
      return UsageOutcome("experts mixtures --delete: expected exactly one NAME argument");
    }
    t2::v1::DeleteMixtureRequest request;
    request.set_name(flags.mixture);
    t2::v1::DeleteMixtureResponse response;
    grpc::ClientContext context;
    call.Prepare(context);
    if (auto s = call.stub->DeleteMixture(&context, request, &response); !s.ok()) return {rpc::FromGrpc(s)};
    std::cout << "deleted mixture " << request.name() << "\n";
    return {};
  }
  if (flags.mixture_arg->count() > 0) {
    return UsageOutcome(
        absl::StrCat("experts mixtures: unexpected argument '", flags.mixture, "'"));
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

using Run = Outcome (*)(const ExpertsFlags&, const Call&);
// Each command and the function that runs it.
using Commands = std::vector<std::pair<CLI::App*, Run>>;

// A command, with the flags every command takes.
CLI::App* AddCommand(CommandLine& command_line, ExpertsFlags& flags, Commands& commands,
                     const char* name, const char* description, Run run) {
  CLI::App* command = command_line.add_subcommand(name, description);
  command->add_option("--registry", flags.registry, "the registry's address")
      ->type_name("HOST:PORT")
      ->required();
  command->add_option("--timeout", flags.timeout, "per call (above 0)")
      ->type_name("SECONDS")
      ->transform(NumberIn(0, 86400));
  rpc::AddSecurityFlags(*command, flags.security, /*server=*/false);
  commands.emplace_back(command, run);
  return command;
}

// Declares the commands, their flags and arguments, bound to `flags`.
Commands AddExpertsCommands(CommandLine& command_line, ExpertsFlags& flags) {
  Commands commands;
  auto add_command = [&](const char* name, const char* description, Run run) {
    return AddCommand(command_line, flags, commands, name, description, run);
  };

  CLI::App* list = add_command("list", "Expert versions and aliases.", List);
  list->add_option("--name", flags.name, "only this expert's")->type_name("NAME");
  list->add_flag("--all", flags.all, "deprecated versions too");

  CLI::App* publish =
      add_command("publish", "Uploads an expert file (checked by the registry).", Publish);
  publish->add_option("--name", flags.name, "the expert's name")->type_name("NAME")->required();
  publish->add_option("--version", flags.version, "its version")
      ->type_name("V")
      ->required()
      ->transform(IntIn(1, std::numeric_limits<int64_t>::max()))
      ->default_str("");
  publish->add_option("file", flags.file, "the expert (.safetensors)")
      ->type_name("FILE")
      ->required();

  CLI::App* get = add_command("get", "Downloads an expert, its size and sha256 checked.", Get);
  get->add_option("expert", flags.expert,
                  "a name or an alias; no version: the alias's target or the newest "
                  "non-deprecated version")
      ->type_name("NAME[@VERSION]")
      ->required();
  get->add_option("--out", flags.out, "the file written")->type_name("FILE")->required();

  CLI::App* alias =
      add_command("alias", "Points ALIAS at a version, or removes it (--delete ALIAS).", Alias);
  alias->add_option("alias", flags.alias, "the alias")->type_name("ALIAS");
  alias->add_option("target", flags.target, "the version it points at (default: the newest)")
      ->type_name("NAME[@VERSION]");
  alias->add_flag("--delete", flags.remove, "remove ALIAS");

  CLI::App* deprecate =
      add_command("deprecate", "Hides a version from name-only lookups and aliases.", Deprecate);
  deprecate->add_option("expert", flags.expert, "the version")
      ->type_name("NAME@VERSION")
      ->required();

  CLI::App* mixtures =
      add_command("mixtures",
                  "The stored mixtures (CEM results) and their weights, or removes one "
                  "(--delete NAME; its expert versions stay).",
                  Mixtures);
  flags.mixture_arg = mixtures->add_option("name", flags.mixture, "the mixture --delete removes")
                          ->type_name("NAME");
  mixtures->add_flag("--delete", flags.remove, "remove the mixture NAME");
  command_line.footer(
      "Each command's flags: t2 experts COMMAND --help. Exit status: 0 done, 1 the registry "
      "refused "
      "or could not be reached, 2 bad usage.");
  return commands;
}

// Runs the command that was parsed against the registry; returns the exit status.
int RunCommand(const ExpertsFlags& flags, const Commands& commands) {
  if (flags.registry.empty()) return ExitWith("experts", "--registry is required", kExitUsage);
  if (flags.timeout == 0)
    return ExitWith("experts", "--timeout must be in (0, 86400] seconds", kExitUsage);

  auto made = rpc::MakeClientChannel(flags.security, flags.registry);
  if (!made.ok()) return ExitWith("experts", made.status().message(), kExitUsage);
  const std::shared_ptr<grpc::Channel>& channel = *made;
  const Call call{
      .channel = channel,
      .stub = t2::v1::Registry::NewStub(channel),
      .timeout_seconds = flags.timeout,
      .client = registry::RegistryClient(channel, {.call_timeout = absl::Seconds(flags.timeout),
                                                   .transfer_timeout = absl::Minutes(5)})};
  const auto command = std::find_if(commands.begin(), commands.end(),
                                    [](const auto& c) { return c.first->parsed(); });
  Outcome outcome = command->second(flags, call);
  if (outcome.usage) return ExitWith("experts", outcome.status.message(), kExitUsage);
  if (!outcome.status.ok()) {
    std::cerr << "t2 experts: " << absl::StatusCodeToString(outcome.status.code()) << ": " << outcome.status.message()
              << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int RunExperts(const std::vector<std::string>& args) {
  CommandLine command_line(
      "t2 experts",
      "The expert registry of a running stack: list, publish, download, alias, "
      "deprecate; list and delete mixtures.");
  command_line.require_subcommand(1);
  ExpertsFlags flags;
  const Commands commands = AddExpertsCommands(command_line, flags);

  // CLI11 alone would answer a misspelt command with "A subcommand is required".
  if (!args.empty() && args[0] == "help") return *command_line.Parse({"--help"});
  if (!args.empty() && !args[0].starts_with("-") &&
      std::none_of(commands.begin(), commands.end(),
                   [&](const auto& c) { return c.first->get_name() == args[0]; })) {
    std::cerr << "t2 experts: unknown command '" << args[0]
              << "'\n(t2 experts --help shows the usage)\n";
    return 2;
  }
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  return RunCommand(flags, commands);
}

}  // namespace t2::cli
