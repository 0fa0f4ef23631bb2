// t2 generate: stream an answer to stdout, from a local model or through a running stack
// (--server: the dispatcher).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>

#include "absl/strings/str_cat.h"
#include "command_errors.h"
#include "commands.h"
#include "nlohmann/json.hpp"
#include "stack_client.h"
#include "t2/common/command_line.h"
#include "t2/common/env.h"
#include "t2/common/status.h"
#include "t2/engine/generator.h"
#include "t2/model/device_flags.h"
#include "t2/rpc/security.h"
#include "t2/tokenizer/chat_template.h"

namespace t2::cli {
namespace {

// `t2 generate`'s flags. The options say whether a flag was given at all, where that matters.
struct GenerateFlags {
  std::string model = "default";
  std::string prompt;
  bool chat = false;
  std::string system;
  int32_t max_new_tokens = 256;
  double temperature = 0;
  int32_t top_k = 0;
  double top_p = 1;
  int64_t seed = 0;
  std::vector<std::string> stop;
  model::DeviceSpec device;
  model::ComputeDType dtype = model::ComputeDType::kAuto;
  int32_t threads = 0;
  std::string expert, mixture;
  bool allow_base_mismatch = false;
  svf::TargetSet svf_targets = svf::TargetSet::kMlp;
  std::string svf_cache_dir;
  std::string server, task, classify;
  double timeout = 300;
  rpc::Security security;
  CLI::Option *system_flag = nullptr, *seed_flag = nullptr, *expert_flag = nullptr,
              *mixture_flag = nullptr, *server_flag = nullptr, *task_flag = nullptr,
              *classify_flag = nullptr;
  // Flags that only make sense with a local model, and ones that only make sense with --server.
  std::vector<CLI::Option*> local_only, server_only;
};

// Any finite number: a flag whose range is checked later, with the rest of the request (so --help
// shows none).
CLI::Validator AnyNumber() {
  return NumberIn(std::numeric_limits<double>::lowest(), std::numeric_limits<double>::max())
      .description("");
}

// The sampling flags, the same for a local model and a stack (the ranges were checked when
// parsing).
engine::SamplingParams Sampling(const GenerateFlags& flags) {
  engine::SamplingParams sampling;
  sampling.temperature = static_cast<float>(flags.temperature);
  sampling.top_k = flags.top_k;
  sampling.top_p = static_cast<float>(flags.top_p);
  if (flags.seed_flag->count() > 0) sampling.seed = static_cast<uint64_t>(flags.seed);
  return sampling;
}

absl::StatusOr<std::string> ReadPrompt(const GenerateFlags& flags) {
  std::string prompt = flags.prompt;
  if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), {});
  if (prompt.empty()) return absl::InvalidArgumentError("--prompt is required and must not be empty");
  return prompt;
}

absl::StatusOr<engine::GenerationRequest> BuildRequest(const GenerateFlags& flags,
                                                       const engine::Generator& gen) {
  T2_ASSIGN_OR_RETURN(std::string prompt, ReadPrompt(flags));
  engine::GenerationRequest request;
  if (flags.chat) {
    std::vector<tokenizer::ChatMessage> messages;
    if (flags.system_flag->count() > 0) messages.push_back({"system", flags.system});
    messages.push_back({"user", prompt});
    auto ids = tokenizer::EncodeChat(gen.tokenizer(), messages);
    if (!ids.ok()) return Annotate(ids.status(), "--chat");
    request.prompt_ids = *std::move(ids);
  } else {
    request.prompt_ids = gen.tokenizer().Encode(prompt, /*add_special=*/true);
  }
  request.max_new_tokens = flags.max_new_tokens;
  request.sampling = Sampling(flags);
  request.stop_strings = flags.stop;
  return request;
}

// Registers the --expert or --mixture with the generator; returns the adapter's name.
absl::StatusOr<std::string> LoadAdapter(const GenerateFlags& flags, engine::Generator& gen) {
  const bool allow_mismatch = flags.allow_base_mismatch;
  if (flags.expert_flag->count() > 0) {
    T2_RETURN_IF_ERROR(gen.AddExpert("expert", flags.expert, allow_mismatch));
    return std::string("expert");
  }
  const std::filesystem::path file = flags.mixture;
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat("--mixture: cannot read ", file.string()));
  nlohmann::json spec = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !spec.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("--mixture ", file.string(), ": not a JSON object"));
  }
  if (!spec.contains("experts") || !spec["experts"].is_array() || spec["experts"].empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--mixture ", file.string(), ": \"experts\" must be a non-empty array of files"));
  }
  if (!spec.contains("alpha") || !spec["alpha"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("--mixture ", file.string(), ": \"alpha\" must be an array of numbers"));
  }
  std::vector<std::string> names;
  for (size_t k = 0; k < spec["experts"].size(); ++k) {
    const auto& e = spec["experts"][k];
    if (!e.is_string()) return absl::InvalidArgumentError(absl::StrCat("--mixture: experts[", k, "] is not a string"));
    std::filesystem::path path = e.get<std::string>();
    if (path.is_relative()) path = file.parent_path() / path;
    names.push_back(absl::StrCat("mixture.", k));
    T2_RETURN_IF_ERROR(Annotate(gen.AddExpert(names.back(), path, allow_mismatch), absl::StrCat("--mixture experts[", k, "]")));
  }
  std::vector<double> alpha;
  for (size_t k = 0; k < spec["alpha"].size(); ++k) {
    if (!spec["alpha"][k].is_number()) return absl::InvalidArgumentError(absl::StrCat("--mixture: alpha[", k, "] is not a number"));
    alpha.push_back(spec["alpha"][k].get<double>());
  }
  if (spec.contains("per_layer") && !spec["per_layer"].is_boolean()) {
    return absl::InvalidArgumentError("--mixture: \"per_layer\" must be true or false");
  }
  const bool per_layer = spec.contains("per_layer") && spec["per_layer"].get<bool>();
  T2_RETURN_IF_ERROR(Annotate(gen.AddMixture("mixture", names, alpha, per_layer), "--mixture"));
  return std::string("mixture");
}

// Which adaptation the dispatcher applies: at most one of --expert, --mixture, --task, --classify.
absl::StatusOr<t2::v1::Adaptation> RemoteAdaptation(const GenerateFlags& flags) {
  t2::v1::Adaptation a;
  int chosen = 0;
  for (const CLI::Option* flag :
       {flags.expert_flag, flags.mixture_flag, flags.task_flag, flags.classify_flag}) {
    chosen += flag->count() > 0 ? 1 : 0;
  }
  if (chosen > 1) return absl::InvalidArgumentError("--expert, --mixture, --task and --classify are exclusive");
  auto value = [](const CLI::Option* flag, const std::string& v) -> absl::StatusOr<std::string> {
    if (v.empty())
      return absl::InvalidArgumentError(absl::StrCat(flag->get_name(), " must not be empty"));
    return v;
  };
  if (flags.expert_flag->count() > 0) {
    T2_ASSIGN_OR_RETURN(std::string v, value(flags.expert_flag, flags.expert));
    a.set_expert(v);
  } else if (flags.mixture_flag->count() > 0) {
    T2_ASSIGN_OR_RETURN(std::string v, value(flags.mixture_flag, flags.mixture));
    a.set_mixture(v);
  } else if (flags.task_flag->count() > 0) {
    T2_ASSIGN_OR_RETURN(std::string v, value(flags.task_flag, flags.task));
    a.set_few_shot_task(v);
  } else if (flags.classify_flag->count() > 0) {
    if (flags.classify == "prompt") {
      a.mutable_prompt()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE);
    } else if (flags.classify == "prompt-generate") {
      a.mutable_prompt()->set_mode(t2::v1::CLASSIFY_MODE_GENERATE);
    } else {  // "cls": OneOf refused anything else
      a.mutable_classifier_expert()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE);
    }
  } else {
    a.mutable_none();
  }
  return a;
}

absl::StatusOr<t2::v1::GenerateRequest> BuildRemoteRequest(const GenerateFlags& flags) {
  for (const CLI::Option* flag : flags.local_only) {
    if (flag->count() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag->get_name(), " cannot be used with --server (the stack's worker holds the model)"));
    }
  }
  if (flags.server.empty()) return absl::InvalidArgumentError("--server must not be empty");
  const engine::SamplingParams sampling = Sampling(flags);
  T2_RETURN_IF_ERROR(sampling.Validate());
  T2_ASSIGN_OR_RETURN(t2::v1::Adaptation adaptation, RemoteAdaptation(flags));
  T2_ASSIGN_OR_RETURN(std::string prompt, ReadPrompt(flags));

  t2::v1::GenerateRequest request;
  if (flags.chat) {
    // The worker formats the conversation with its model's chat template.
    if (flags.system_flag->count() > 0) {
      auto* m = request.mutable_chat()->add_messages();
      m->set_role("system");
      m->set_content(flags.system);
    }
    auto* m = request.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content(prompt);
  } else {
    request.set_prompt(prompt);
  }
  request.set_max_new_tokens(flags.max_new_tokens);
  auto* remote_sampling = request.mutable_sampling();
  remote_sampling->set_temperature(sampling.temperature);
  remote_sampling->set_top_k(sampling.top_k);
  remote_sampling->set_top_p(sampling.top_p);
  if (sampling.seed.has_value()) remote_sampling->set_seed(*sampling.seed);
  for (const auto& stop : flags.stop) request.add_stop(stop);
  *request.mutable_adaptation() = std::move(adaptation);
  return request;
}

// t2 generate --server: the request goes through the dispatcher; the answer streams to stdout,
// the first pass's choice and the finish line to stderr (as the local summary does).
int RunRemote(const GenerateFlags& flags) {
  auto request = BuildRemoteRequest(flags);
  if (!request.ok()) return ExitWith("generate", request.status(), kExitUsage);
  if (flags.timeout == 0)
    return ExitWith("generate",
                    absl::InvalidArgumentError("--timeout must be in (0, 86400] seconds"),
                    kExitUsage);
  auto channel = rpc::MakeClientChannel(flags.security, flags.server);
  if (!channel.ok()) return ExitWith("generate", channel.status(), kExitUsage);
  absl::Status status =
      StreamThroughDispatcher(*channel, *request, std::cout, std::cerr, flags.timeout);
  std::cout << std::flush;
  if (!status.ok()) {
    std::cerr << "t2 generate: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    return 1;
  }
  return 0;
}

// The flags of the request itself, the same for a local model and a stack.
void AddRequestFlags(CommandLine& command_line, GenerateFlags& flags) {
  command_line.add_option("--prompt", flags.prompt, "the prompt; \"-\" reads standard input")
      ->type_name("TEXT")
      ->required();
  command_line.add_flag("--chat", flags.chat,
                        "format the prompt as a user turn with the model's chat template");
  flags.system_flag =
      command_line.add_option("--system", flags.system, "system message (with --chat)")
          ->type_name("TEXT");
  command_line.add_option("--max-new-tokens", flags.max_new_tokens, "the answer's length limit")
      ->type_name("N")
      ->transform(IntIn(1, std::numeric_limits<int32_t>::max()));
  // Temperature and top-p are checked with the request (SamplingParams::Validate), as a server
  // would.
  command_line
      .add_option("--temperature", flags.temperature,
                  "0 = greedy (so is anything below 1e-4); top-k and top-p apply above")
      ->type_name("T")
      ->transform(AnyNumber());
  command_line.add_option("--top-k", flags.top_k, "keep the K most likely tokens (0: off)")
      ->type_name("K")
      ->transform(IntIn(0, std::numeric_limits<int32_t>::max()));
  command_line
      .add_option("--top-p", flags.top_p, "keep the most likely tokens up to this mass, in (0, 1]")
      ->type_name("P")
      ->transform(AnyNumber());
  flags.seed_flag =
      command_line.add_option("--seed", flags.seed, "sampling seed (default: a random one)")
          ->type_name("S")
          ->transform(IntIn(0, std::numeric_limits<int64_t>::max()))
          ->default_str("");
  command_line.add_option("--stop", flags.stop, "stop string; repeatable")->type_name("STR");
}

// The model's own flags: they start flags.local_only, which --server refuses.
void AddLocalFlags(CommandLine& command_line, GenerateFlags& flags) {
  CLI::App* local = command_line.add_option_group("Local model", "(not with --server)");
  const model::DeviceFlags device = model::AddDeviceFlags(*local, flags.device, flags.dtype);
  flags.local_only = {
      local
          ->add_option("--model", flags.model,
                       ".gguf file, HF checkpoint folder, or the bundled default")
          ->type_name("PATH|default"),
      device.device,
      device.dtype,
      local->add_option("--threads", flags.threads, "CPU threads (0: one per core)")
          ->type_name("N")
          ->transform(IntIn(0, 4096)),
  };
}

// --expert and --mixture work both ways (a file here, a registry name with --server); the flags
// that say how the decomposition is made join flags.local_only.
void AddSvfFlags(CommandLine& command_line, GenerateFlags& flags) {
  CLI::App* svf =
      command_line.add_option_group("SVF experts (Transformer²)", "--expert or --mixture");
  flags.expert_flag =
      svf->add_option("--expert", flags.expert,
                      "generate with this expert file (.safetensors, see t2 expert inspect); with "
                      "--server, a registry expert name or alias")
          ->type_name("FILE|NAME[@V]");
  flags.mixture_flag =
      svf->add_option("--mixture", flags.mixture,
                      "generate with a mixture: JSON {\"experts\": [FILE, ...], \"alpha\": [a, "
                      "...], \"per_layer\": false}, expert paths relative to the JSON file; with "
                      "--server, a mixture stored in the registry")
          ->type_name("FILE|NAME");
  flags.local_only.push_back(
      svf->add_flag("--allow-base-mismatch", flags.allow_base_mismatch,
                    "accept experts made for another base model of the same shapes"));
  flags.local_only.push_back(AddEnumOption(*svf, "--svf-targets", flags.svf_targets,
                                           svf::kTargetSets, svf::TargetSetName,
                                           "matrices the decomposition covers"));
  flags.local_only.push_back(
      svf->add_option("--svf-cache-dir", flags.svf_cache_dir,
                      "where the SVD cache lives (default: beside the model)")
          ->type_name("DIR"));
}

// --server and the flags only a stack understands (flags.server_only, refused without --server).
void AddRemoteFlags(CommandLine& command_line, GenerateFlags& flags) {
  CLI::App* remote = command_line.add_option_group("Through a running stack", "(no local model)");
  flags.server_flag =
      remote
          ->add_option("--server", flags.server,
                       "send the request to this dispatcher (Dispatcher.GenerateStream)")
          ->type_name("HOST:PORT");
  flags.task_flag =
      remote->add_option("--task", flags.task, "the mixture `t2 adapt` made for this few-shot task")
          ->type_name("NAME");
  flags.classify_flag = remote
                            ->add_option("--classify", flags.classify,
                                         "let a first pass choose the expert: the base model "
                                         "scores the category labels (prompt) or "
                                         "answers the classification prompt (prompt-generate), or "
                                         "the classification expert \"cls\" "
                                         "scores them")
                            ->transform(OneOf({"prompt", "prompt-generate", "cls"}));
  flags.server_only = {
      flags.task_flag, flags.classify_flag,
      remote->add_option("--timeout", flags.timeout, "for the whole answer (above 0)")
          ->type_name("SECONDS")
          ->transform(NumberIn(0, 86400))};
}

// Declares every flag of `t2 generate`, bound to `flags`; the order is --help's.
void AddGenerateFlags(CommandLine& command_line, GenerateFlags& flags) {
  AddRequestFlags(command_line, flags);
  AddLocalFlags(command_line, flags);
  AddSvfFlags(command_line, flags);
  AddRemoteFlags(command_line, flags);
  rpc::AddSecurityFlags(command_line, flags.security, /*server=*/false);
  command_line.footer(
      "With --server, --model, --device, --dtype, --threads, --allow-base-mismatch and the --svf "
      "flags do not apply: the stack's worker holds the model.");
}

// The local engine's options; an error is bad usage.
absl::StatusOr<engine::GeneratorOptions> LocalOptions(const GenerateFlags& flags,
                                                      const std::filesystem::path& model_path) {
  engine::GeneratorOptions options{.model = model_path,
                                   .device = flags.device,
                                   .dtype = flags.dtype,
                                   .cpu_threads = flags.threads,
                                   .max_batch_size = 1};
  if (flags.expert_flag->count() > 0 && flags.mixture_flag->count() > 0) {
    return absl::InvalidArgumentError("--expert and --mixture are exclusive");
  }
  if (flags.expert_flag->count() > 0 || flags.mixture_flag->count() > 0) {
    options.svf =
        engine::SvfOptions{.targets = flags.svf_targets, .cache_dir = flags.svf_cache_dir};
  }
  T2_RETURN_IF_ERROR(options.Validate());
  return options;
}

// Streams the answer to stdout, then the summary line (load and generation times) to stderr.
int StreamAnswer(engine::Generator& generator, const engine::GenerationRequest& request,
                 double load_s) {
  auto start = std::chrono::steady_clock::now();
  auto results = generator.Generate(std::span(&request, 1), [](size_t, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  if (!results.ok()) return ExitWith("generate", results.status(), kExitFailure);
  double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto& r = results->front();
  std::cout << std::endl;
  std::cerr << absl::StrCat("[t2] ", generator.config().name, " on ", generator.device_name(), "/",
                            generator.dtype_name(), ": loaded in ", static_cast<int>(load_s * 1000),
                            " ms; prompt ", r.prompt_tokens, " tokens, generated ",
                            r.token_ids.size(), " tokens in ", static_cast<int>(gen_s * 1000),
                            " ms (", static_cast<int>(r.token_ids.size() / std::max(gen_s, 1e-9)),
                            " tok/s), finish: ", AsAbsl(engine::FinishReasonName(r.finish_reason)))
            << std::endl;
  return 0;
}

// t2 generate without --server: the model (and the --expert or --mixture) is loaded here.
int RunLocal(const GenerateFlags& flags) {
  for (const CLI::Option* flag : flags.server_only) {
    if (flag->count() > 0) {
      return ExitWith("generate",
                      absl::InvalidArgumentError(absl::StrCat(flag->get_name(), " needs --server")),
                      kExitUsage);
    }
  }
  auto model_path = ResolveModelPath(flags.model);
  if (!model_path.ok()) return ExitWith("generate", model_path.status(), kExitFailure);
  auto options = LocalOptions(flags, *model_path);
  if (!options.ok()) return ExitWith("generate", options.status(), kExitUsage);
  auto load_start = std::chrono::steady_clock::now();
  auto generator = engine::Generator::Create(*options);
  if (!generator.ok()) return ExitWith("generate", generator.status(), kExitFailure);
  double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  auto request = BuildRequest(flags, **generator);
  if (!request.ok()) return ExitWith("generate", request.status(), kExitUsage);
  if (options->svf.has_value()) {
    auto adapter = LoadAdapter(flags, **generator);
    if (!adapter.ok()) return ExitWith("generate", adapter.status(), kExitFailure);
    request->adapter = *adapter;
  }
  if (auto s = (*generator)->ValidateRequest(*request); !s.ok())
    return ExitWith("generate", s, kExitUsage);
  return StreamAnswer(**generator, *request, load_s);
}

}  // namespace

int RunGenerate(const std::vector<std::string>& args) {
  CommandLine command_line("t2 generate",
                           "Streams an answer to stdout, from a local model or through a running "
                           "stack (--server: the dispatcher).");
  GenerateFlags flags;
  AddGenerateFlags(command_line, flags);
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  return flags.server_flag->count() > 0 ? RunRemote(flags) : RunLocal(flags);
}

}  // namespace t2::cli
