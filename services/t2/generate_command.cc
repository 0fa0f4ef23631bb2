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
#include "commands.h"
#include "nlohmann/json.hpp"
#include "stack_client.h"
#include "t2/common/env.h"
#include "t2/common/flags.h"
#include "t2/common/status.h"
#include "t2/engine/generator.h"
#include "t2/rpc/security.h"
#include "t2/tokenizer/chat_template.h"

namespace t2::cli {
namespace {

constexpr const char* kUsage = R"(usage: t2 generate --prompt TEXT [options]
       t2 generate --server HOST:PORT --prompt TEXT [options]
  --model PATH|default   .gguf file, HF checkpoint folder, or the bundled default (default)
  --prompt TEXT          the prompt; "-" reads standard input
  --chat                 format the prompt as a user turn with the model's chat template
  --system TEXT          system message (with --chat)
  --max-new-tokens N     default 256
  --temperature T        0 = greedy (default; so is anything below 1e-4); top-k/top-p apply above
  --top-k K  --top-p P  --seed S
  --stop STR             stop string (repeatable)
  --device auto|cpu|cuda[:N]  --dtype auto|float32|bfloat16|float16  --threads N
SVF experts (Transformer²):
  --expert FILE          generate with this expert (.safetensors, see t2 expert inspect)
  --mixture FILE         generate with a mixture: JSON {"experts": [FILE, ...], "alpha": [a, ...],
                         "per_layer": false}; expert paths are relative to the JSON file
  --allow-base-mismatch  accept experts made for another base model of the same shapes
  --svf-targets mlp|attn|all   matrices the decomposition covers (default: mlp)
  --svf-cache-dir DIR    where the SVD cache lives (default: beside the model)
Through a running stack (no local model; --model, --device, --dtype, --threads and the --svf
flags do not apply):
  --server HOST:PORT     send the request to this dispatcher (Dispatcher.GenerateStream)
  --expert NAME[@V]      a registry expert name or alias (not a file)
  --mixture NAME         a mixture stored in the registry
  --task NAME            the mixture `t2 adapt` made for this few-shot task
  --classify prompt|prompt-generate|cls
                         let a first pass choose the expert: the base model scores the
                         category labels (prompt) or answers the classification prompt
                         (prompt-generate), or the classification expert "cls" scores them
  --timeout SECONDS      default 300
)";

// Flags that only make sense with a local model, and ones that only make sense with --server.
const char* const kLocalOnlyFlags[] = {"model", "device", "dtype", "threads", "svf-targets", "svf-cache-dir",
                                       "allow-base-mismatch"};
const char* const kServerOnlyFlags[] = {"task", "classify", "timeout"};

int Fail(const absl::Status& status, int code) {
  std::cerr << "t2 generate: " << status.message() << "\n";
  if (code == 2) std::cerr << kUsage;
  return code;
}

// The length and sampling flags, checked the same way for a local model and a stack.
struct LengthAndSampling {
  int32_t max_new_tokens = 256;
  engine::SamplingParams sampling;
};

absl::StatusOr<LengthAndSampling> ParseLengthAndSampling(const Flags& flags) {
  LengthAndSampling out;
  auto max_new = flags.GetInt("max-new-tokens", 256);
  if (!max_new.ok()) return max_new.status();
  // Range checks before narrowing to int32: a wrapped value would pass validation silently.
  if (*max_new < 1 || *max_new > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("--max-new-tokens must be at least 1, got ", *max_new));
  }
  out.max_new_tokens = static_cast<int32_t>(*max_new);
  auto temperature = flags.GetDouble("temperature", 0.0);
  auto top_k = flags.GetInt("top-k", 0);
  auto top_p = flags.GetDouble("top-p", 1.0);
  for (const auto* s : {&temperature.status(), &top_k.status(), &top_p.status()}) {
    if (!s->ok()) return *s;
  }
  out.sampling.temperature = static_cast<float>(*temperature);
  if (*top_k < 0 || *top_k > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("--top-k must be 0 (off) or positive, got ", *top_k));
  }
  out.sampling.top_k = static_cast<int32_t>(*top_k);
  out.sampling.top_p = static_cast<float>(*top_p);
  if (flags.Has("seed")) {
    auto seed = flags.GetInt("seed", 0);
    if (!seed.ok()) return seed.status();
    if (*seed < 0) return absl::InvalidArgumentError(absl::StrCat("--seed must not be negative, got ", *seed));
    out.sampling.seed = static_cast<uint64_t>(*seed);
  }
  return out;
}

absl::StatusOr<std::string> ReadPrompt(const Flags& flags) {
  std::string prompt = flags.Get("prompt", "");
  if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), {});
  if (prompt.empty()) return absl::InvalidArgumentError("--prompt is required and must not be empty");
  return prompt;
}

absl::StatusOr<engine::GenerationRequest> BuildRequest(const Flags& flags, const engine::Generator& gen) {
  T2_ASSIGN_OR_RETURN(std::string prompt, ReadPrompt(flags));
  engine::GenerationRequest request;
  if (flags.Has("chat")) {
    std::vector<tokenizer::ChatMessage> messages;
    if (flags.Has("system")) messages.push_back({"system", flags.Get("system", "")});
    messages.push_back({"user", prompt});
    auto ids = tokenizer::EncodeChat(gen.tokenizer(), messages);
    if (!ids.ok()) return Annotate(ids.status(), "--chat");
    request.prompt_ids = *std::move(ids);
  } else {
    request.prompt_ids = gen.tokenizer().Encode(prompt, /*add_special=*/true);
  }
  T2_ASSIGN_OR_RETURN(LengthAndSampling ls, ParseLengthAndSampling(flags));
  request.max_new_tokens = ls.max_new_tokens;
  request.sampling = ls.sampling;
  request.stop_strings = flags.GetAll("stop");
  return request;
}

// Registers the --expert or --mixture with the generator; returns the adapter's name.
absl::StatusOr<std::string> LoadAdapter(const Flags& flags, engine::Generator& gen) {
  const bool allow_mismatch = flags.Has("allow-base-mismatch");
  if (flags.Has("expert")) {
    T2_RETURN_IF_ERROR(gen.AddExpert("expert", flags.Get("expert", ""), allow_mismatch));
    return std::string("expert");
  }
  const std::filesystem::path file = flags.Get("mixture", "");
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
absl::StatusOr<t2::v1::Adaptation> RemoteAdaptation(const Flags& flags) {
  t2::v1::Adaptation a;
  int chosen = 0;
  for (const char* name : {"expert", "mixture", "task", "classify"}) chosen += flags.Has(name) ? 1 : 0;
  if (chosen > 1) return absl::InvalidArgumentError("--expert, --mixture, --task and --classify are exclusive");
  auto value = [&](const char* name) -> absl::StatusOr<std::string> {
    std::string v = flags.Get(name, "");
    if (v.empty()) return absl::InvalidArgumentError(absl::StrCat("--", name, " must not be empty"));
    return v;
  };
  if (flags.Has("expert")) {
    T2_ASSIGN_OR_RETURN(std::string v, value("expert"));
    a.set_expert(v);
  } else if (flags.Has("mixture")) {
    T2_ASSIGN_OR_RETURN(std::string v, value("mixture"));
    a.set_mixture(v);
  } else if (flags.Has("task")) {
    T2_ASSIGN_OR_RETURN(std::string v, value("task"));
    a.set_few_shot_task(v);
  } else if (flags.Has("classify")) {
    const std::string mode = flags.Get("classify", "");
    if (mode == "prompt") {
      a.mutable_prompt()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE);
    } else if (mode == "prompt-generate") {
      a.mutable_prompt()->set_mode(t2::v1::CLASSIFY_MODE_GENERATE);
    } else if (mode == "cls") {
      a.mutable_classifier_expert()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--classify must be prompt, prompt-generate or cls, got '", mode, "'"));
    }
  } else {
    a.mutable_none();
  }
  return a;
}

absl::StatusOr<t2::v1::GenerateRequest> BuildRemoteRequest(const Flags& flags) {
  for (const char* name : kLocalOnlyFlags) {
    if (flags.Has(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " cannot be used with --server (the stack's worker holds the model)"));
    }
  }
  if (flags.Get("server", "").empty()) return absl::InvalidArgumentError("--server must not be empty");
  T2_ASSIGN_OR_RETURN(LengthAndSampling ls, ParseLengthAndSampling(flags));
  T2_RETURN_IF_ERROR(ls.sampling.Validate());
  T2_ASSIGN_OR_RETURN(t2::v1::Adaptation adaptation, RemoteAdaptation(flags));
  T2_ASSIGN_OR_RETURN(std::string prompt, ReadPrompt(flags));

  t2::v1::GenerateRequest request;
  if (flags.Has("chat")) {
    // The worker formats the conversation with its model's chat template.
    if (flags.Has("system")) {
      auto* m = request.mutable_chat()->add_messages();
      m->set_role("system");
      m->set_content(flags.Get("system", ""));
    }
    auto* m = request.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content(prompt);
  } else {
    request.set_prompt(prompt);
  }
  request.set_max_new_tokens(ls.max_new_tokens);
  auto* sampling = request.mutable_sampling();
  sampling->set_temperature(ls.sampling.temperature);
  sampling->set_top_k(ls.sampling.top_k);
  sampling->set_top_p(ls.sampling.top_p);
  if (ls.sampling.seed.has_value()) sampling->set_seed(*ls.sampling.seed);
  for (const auto& stop : flags.GetAll("stop")) request.add_stop(stop);
  *request.mutable_adaptation() = std::move(adaptation);
  return request;
}

// t2 generate --server: the request goes through the dispatcher; the answer streams to stdout,
// the first pass's choice and the finish line to stderr (as the local summary does).
int RunRemote(const Flags& flags) {
  auto request = BuildRemoteRequest(flags);
  if (!request.ok()) return Fail(request.status(), 2);
  auto timeout = flags.GetDouble("timeout", 300);
  if (!timeout.ok()) return Fail(timeout.status(), 2);
  if (!(*timeout > 0 && *timeout <= 86400)) {
    return Fail(absl::InvalidArgumentError("--timeout must be in (0, 86400] seconds"), 2);
  }
  auto channel = rpc::MakeClientChannel(flags, flags.Get("server", ""));
  if (!channel.ok()) return Fail(channel.status(), 2);
  absl::Status status = StreamThroughDispatcher(*channel, *request, std::cout, std::cerr, *timeout);
  std::cout << std::flush;
  if (!status.ok()) {
    std::cerr << "t2 generate: " << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int RunGenerate(const std::vector<std::string>& args) {
  FlagSpec spec{.value_flags = {"model", "prompt", "system", "max-new-tokens", "temperature", "top-k", "top-p",
                                "seed", "stop", "device", "dtype", "threads", "expert", "mixture", "svf-targets",
                                "svf-cache-dir", "server", "task", "classify", "timeout"},
                .bool_flags = {"chat", "help", "allow-base-mismatch"}};
  rpc::AddSecurityFlags(spec);
  auto flags = Flags::Parse(args, spec);
  if (!flags.ok()) return Fail(flags.status(), 2);
  if (flags->Has("help")) {
    std::cout << kUsage << "\nwith --server:" << rpc::kClientSecurityUsage;
    return 0;
  }
  if (!flags->positional().empty()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags->positional()[0], "'")), 2);
  }
  if (!flags->Has("prompt")) return Fail(absl::InvalidArgumentError("--prompt is required"), 2);
  if (flags->Has("server")) return RunRemote(*flags);
  for (const char* name : kServerOnlyFlags) {
    if (flags->Has(name)) return Fail(absl::InvalidArgumentError(absl::StrCat("--", name, " needs --server")), 2);
  }
  auto model_path = ResolveModelPath(flags->Get("model", "default"));
  if (!model_path.ok()) return Fail(model_path.status(), 1);
  auto threads = flags->GetInt("threads", 0);
  if (!threads.ok()) return Fail(threads.status(), 2);
  if (*threads < 0 || *threads > 4096) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--threads must be 0 (one per core) to 4096, got ", *threads)), 2);
  }

  engine::GeneratorOptions options{.model = *model_path,
                                   .device = flags->Get("device", "auto"),
                                   .dtype = flags->Get("dtype", "auto"),
                                   .cpu_threads = static_cast<int32_t>(*threads),
                                   .max_batch_size = 1};
  if (flags->Has("expert") && flags->Has("mixture")) {
    return Fail(absl::InvalidArgumentError("--expert and --mixture are exclusive"), 2);
  }
  if (flags->Has("expert") || flags->Has("mixture")) {
    options.svf = engine::SvfOptions{.targets = flags->Get("svf-targets", "mlp"),
                                     .cache_dir = flags->Get("svf-cache-dir", "")};
  }
  if (auto s = options.Validate(); !s.ok()) return Fail(s, 2);
  auto load_start = std::chrono::steady_clock::now();
  auto generator = engine::Generator::Create(options);
  if (!generator.ok()) return Fail(generator.status(), 1);
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  auto request = BuildRequest(*flags, **generator);
  if (!request.ok()) return Fail(request.status(), 2);
  if (options.svf.has_value()) {
    auto adapter = LoadAdapter(*flags, **generator);
    if (!adapter.ok()) return Fail(adapter.status(), 1);
    request->adapter = *adapter;
  }
  if (auto s = (*generator)->ValidateRequest(*request); !s.ok()) return Fail(s, 2);

  auto start = std::chrono::steady_clock::now();
  auto results = (*generator)->Generate(std::span(&*request, 1), [](size_t, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  if (!results.ok()) return Fail(results.status(), 1);
  double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto& r = results->front();
  std::cout << std::endl;
  std::cerr << absl::StrCat("[t2] ", (*generator)->config().name, " on ", (*generator)->device_name(), "/",
                            (*generator)->dtype_name(), ": loaded in ", static_cast<int>(load_s * 1000),
                            " ms; prompt ", r.prompt_tokens, " tokens, generated ", r.token_ids.size(),
                            " tokens in ", static_cast<int>(gen_s * 1000), " ms (",
                            static_cast<int>(r.token_ids.size() / std::max(gen_s, 1e-9)), " tok/s), finish: ",
                            AsAbsl(engine::FinishReasonName(r.finish_reason)))
            << std::endl;
  return 0;
}

}  // namespace t2::cli
