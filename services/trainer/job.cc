#include "job.h"

#include <fstream>
#include <optional>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "t2/common/atomic_file.h"
#include "t2/common/crash_point.h"
#include "t2/common/sha256.h"
#include "t2/common/status.h"
#include "t2/formats/safetensors.h"
#include "t2/registry_client/registry_client.h"
#include "t2/train/evaluate.h"

namespace t2::trainer {
namespace {

using json = nlohmann::json;

constexpr const char* kCandidateAdapter = "gate:candidate";
constexpr const char* kCurrentAdapter = "gate:current";

absl::StatusOr<std::string> FileSha256(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  Sha256 hash;
  std::string buffer(1 << 20, '\0');
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    hash.Update(std::string_view(buffer.data(), static_cast<size_t>(in.gcount())));
  }
  return hash.HexDigest();
}

absl::StatusOr<json> ReadJsonFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(path.string());
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path.string(), ": not JSON"));
  return j;
}

// What the gate compared, and what it decided, kept in the run's gate.json: a rerun does not
// evaluate again against the same production version, and never judges again once it
// decided to publish (it finishes publishing instead).
struct GateRecord {
  std::string candidate_sha256;
  std::string current;  // "base" or name@version:sha256 of the production version judged against
  std::vector<bool> candidate_correct, current_correct;
  bool publish = false;
};

absl::StatusOr<std::optional<GateRecord>> ReadGateRecord(const std::filesystem::path& file,
                                                         const std::string& candidate_sha256) {
  auto saved = ReadJsonFile(file);
  if (absl::IsNotFound(saved.status())) return std::optional<GateRecord>();
  T2_RETURN_IF_ERROR(saved.status());
  if (saved->value("candidate_sha256", "") != candidate_sha256) return std::optional<GateRecord>();
  try {
    GateRecord r{.candidate_sha256 = candidate_sha256,
                 .current = saved->at("current").get<std::string>(),
                 .candidate_correct = saved->at("candidate_correct").get<std::vector<bool>>(),
                 .current_correct = saved->at("current_correct").get<std::vector<bool>>(),
                 .publish = saved->at("publish").get<bool>()};
    return std::optional<GateRecord>(std::move(r));
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(file.string(), ": ", e.what()));
  }
}

// The version in production now: the alias's target, or the base model when there is none.
struct Production {
  std::optional<t2::v1::ExpertRef> expert;
  std::string Identity() const {
    return expert.has_value() ? absl::StrCat(expert->name(), "@", expert->version(), ":", expert->sha256()) : "base";
  }
  std::string Label() const {
    return expert.has_value() ? absl::StrCat(expert->name(), "@", expert->version()) : "the base model";
  }
};

absl::StatusOr<GateRecord> EvaluateForGate(const TrainSetup& setup, const JobOptions& options,
                                           const registry::RegistryClient& registry, engine::Generator& generator,
                                           const train::TrainResult& trained, const Production& production,
                                           const std::string& candidate_sha256, std::ostream& log) {
  GateRecord record{.candidate_sha256 = candidate_sha256, .current = production.Identity()};
  std::string current_adapter;
  if (production.expert.has_value()) {
    const auto& ref = *production.expert;
    const std::filesystem::path file = trained.run_dir / "current.safetensors";
    T2_RETURN_IF_ERROR(Annotate(registry.Download(ref.name(), ref.version(), file).status(),
                                absl::StrCat("downloading the current version ", production.Label())));
    T2_RETURN_IF_ERROR(Annotate(generator.AddExpert(kCurrentAdapter, file), production.Label()));
    current_adapter = kCurrentAdapter;
  }
  T2_RETURN_IF_ERROR(generator.AddExpert(kCandidateAdapter, trained.expert));
  std::span<const tasks::Example> test(setup.task.test);
  if (options.test_size > 0 && static_cast<size_t>(options.test_size) < test.size()) {
    test = test.first(static_cast<size_t>(options.test_size));
  }
  auto progress = [&log](std::string who) {
    return [&log, who](size_t done, size_t total) {
      if (done == total || done % 100 == 0) log << "[job] evaluating " << who << ": " << done << "/" << total << "\n";
    };
  };
  T2_ASSIGN_OR_RETURN(train::EvalResult candidate,
                      train::Evaluate(generator, setup.task, test, kCandidateAdapter, progress("the candidate")));
  T2_ASSIGN_OR_RETURN(train::EvalResult current,
                      train::Evaluate(generator, setup.task, test, current_adapter, progress(production.Label())));
  record.candidate_correct = candidate.correct;
  record.current_correct = current.correct;
  return record;
}

absl::Status WriteGateRecord(const std::filesystem::path& file, const GateRecord& r) {
  json saved = {{"candidate_sha256", r.candidate_sha256},
                {"current", r.current},
                {"candidate_correct", r.candidate_correct},
                {"current_correct", r.current_correct},
                {"publish", r.publish}};
  return WriteFileAtomically(file, saved.dump());
}

// The expert file that gets published: the trained one with the whole result in its
// metadata's "metrics". Its bytes depend only on the run, so a repeat makes the same file.
absl::Status WritePublishFile(const std::filesystem::path& expert, const json& metrics,
                              const std::filesystem::path& out) {
  T2_ASSIGN_OR_RETURN(formats::SafetensorsFile file, formats::SafetensorsFile::Open(expert));
  std::vector<formats::SafetensorsTensorView> views;
  for (const auto& t : file.tensors()) views.push_back({.name = t.name, .dtype = t.dtype, .shape = t.shape, .data = t.data});
  std::map<std::string, std::string> metadata = file.metadata();
  metadata["metrics"] = metrics.dump();
  return formats::WriteSafetensors(out, views, metadata);
}

// name@version holding exactly `sha256`, publishing it as the next version if there is none.
absl::StatusOr<int64_t> PublishOnce(const registry::RegistryClient& registry, const std::string& name,
                                    const std::filesystem::path& file, const std::string& sha256, std::ostream& log) {
  for (int attempt = 0;; ++attempt) {
    T2_ASSIGN_OR_RETURN(std::vector<t2::v1::ExpertInfo> versions, registry.ListExperts(name, /*include_deprecated=*/true));
    int64_t newest = 0;
    for (const auto& v : versions) {
      if (v.name() != name) continue;
      if (v.sha256() == sha256) {
        log << "[job] " << name << "@" << v.version() << " already holds this expert: nothing to publish\n";
        return v.version();
      }
      newest = std::max(newest, v.version());
    }
    auto published = registry.Publish(name, newest + 1, file);
    if (published.ok()) {
      log << "[job] published " << name << "@" << published->version() << " (sha256 " << sha256.substr(0, 16) << ")\n";
      return published->version();
    }
    // Another publisher took that version number first: look again.
    if (!absl::IsAlreadyExists(published.status()) || attempt == 2) return published.status();
  }
}

// The model, loaded for training and judging, and registered with the registry: it checks
// experts against the base models it knows. A worker registers its own, and so does the
// trainer (the same name, targets and ranks: idempotent).
absl::StatusOr<std::unique_ptr<engine::Generator>> LoadAndRegister(const TrainSetup& setup,
                                                                   const registry::RegistryClient& registry,
                                                                   std::ostream& log) {
  log << "[job] loading " << setup.model_path.string() << "\n";
  T2_ASSIGN_OR_RETURN(std::unique_ptr<engine::Generator> generator, engine::Generator::Create(setup.generator));
  t2::v1::BaseModel base;
  base.set_fingerprint(generator->base_fingerprint());
  base.set_name(setup.model_name);
  base.set_targets(std::string(svf::TargetSetName(setup.generator.svf->targets)));
  for (const auto& [matrix, rank] : generator->target_ranks()) (*base.mutable_target_ranks())[matrix] = rank;
  T2_RETURN_IF_ERROR(Annotate(registry.RegisterBaseModel(base).status(), "registering the base model"));
  return generator;
}

// A finished job is final: its report stands, nothing is published or moved again, unless the
// registry lost the version it published (a registry started afresh): then nullopt, and the
// decision recorded in gate.json is carried out again.
absl::StatusOr<std::optional<JobResult>> FinishedBefore(const registry::RegistryClient& registry,
                                                        const std::string& name, const std::filesystem::path& report,
                                                        const std::string& candidate_sha256, std::ostream& log) {
  auto done = ReadJsonFile(report);
  if (!done.ok() || done->value("candidate_sha256", "") != candidate_sha256) return std::optional<JobResult>();
  const bool published = done->value("outcome", "") == "published";
  bool still_there = !published;
  if (published) {
    T2_ASSIGN_OR_RETURN(std::vector<t2::v1::ExpertInfo> versions, registry.ListExperts(name, true));
    for (const auto& v : versions) still_there = still_there || v.sha256() == done->value("sha256", "");
  }
  if (!still_there) {
    log << "[job] the registry no longer holds " << done->value("expert", "") << ": publishing it again\n";
    return std::optional<JobResult>();
  }
  JobResult result{.outcome = published ? JobOutcome::kPublished : JobOutcome::kKeptCurrent,
                   .expert = done->value("expert", ""),
                   .report = report};
  log << "[job] this run finished before (" << report.string() << "): "
      << (published ? "published " + result.expert : std::string("kept the current version")) << "\n";
  return std::optional<JobResult>(std::move(result));
}

// The gate's evaluations: a decision to publish made before is finished, never judged again;
// evaluations against the same production version are reused; otherwise both are evaluated.
absl::StatusOr<GateRecord> Judge(const TrainSetup& setup, const JobOptions& options,
                                 const registry::RegistryClient& registry, engine::Generator& generator,
                                 const train::TrainResult& trained, const std::string& alias,
                                 const std::string& candidate_sha256, std::ostream& log) {
  const std::filesystem::path gate_file = trained.run_dir / "gate.json";
  T2_ASSIGN_OR_RETURN(std::optional<GateRecord> saved, ReadGateRecord(gate_file, candidate_sha256));
  if (saved.has_value() && saved->publish) {
    log << "[job] gate: an earlier run of this job decided to publish; finishing\n";
    return *std::move(saved);
  }
  Production production;
  T2_ASSIGN_OR_RETURN(std::optional<t2::v1::Alias> alias_target, registry.GetAlias(alias));
  if (alias_target.has_value()) production.expert = alias_target->target();
  if (saved.has_value() && saved->current == production.Identity()) {
    log << "[job] gate: evaluations against " << production.Label() << " reused from " << gate_file.string() << "\n";
    return *std::move(saved);
  }
  return EvaluateForGate(setup, options, registry, generator, trained, production, candidate_sha256, log);
}

// What the published expert's metadata and the report say about the run.
json RunMetrics(const TrainSetup& setup, const JobOptions& options, const train::TrainResult& trained,
                const std::string& base_fingerprint, const GateRecord& record, const train::GateResult& gate) {
  const train::TrainOptions& t = setup.train;
  const bool baseline = t.reward_baseline != train::TrainOptions::RewardBaseline::kNone;
  return {{"task", setup.task.name},
          {"dataset_hash", trained.dataset_hash},
          {"base_model", setup.model_name},
          {"base_fingerprint", base_fingerprint},
          {"targets", std::string(svf::TargetSetName(setup.generator.svf->targets))},
          {"training",
           {{"steps", trained.steps},
            {"best_step", trained.best_step},
            {"best_validation_accuracy", trained.best_validation_accuracy},
            {"batch_size", t.batch_size},
            {"learning_rate", t.learning_rate},
            {"max_grad_norm", t.max_grad_norm},
            {"kl_coef", t.kl_coef},
            {"seed", t.seed},
            {"temperature", t.temperature},
            {"reward_baseline", baseline ? "mean" : "none"},
            {"train_seconds", trained.train_seconds}}},
          {"gate",
           {{"against", record.current},
            {"n", gate.n},
            {"candidate_accuracy", gate.candidate_accuracy},
            {"current_accuracy", gate.current_accuracy},
            {"candidate_only", gate.candidate_only},
            {"current_only", gate.current_only},
            {"p_value", gate.p_value},
            {"test", "exact one-sided McNemar"},
            {"min_gain", options.gate.min_gain},
            {"max_p", options.gate.max_p},
            {"publish", gate.publish}}}};
}

}  // namespace

absl::StatusOr<JobResult> RunJob(const TrainSetup& setup, const JobOptions& options, std::ostream& log) {
  T2_RETURN_IF_ERROR(options.gate.Validate());
  if (options.registry.empty()) return absl::InvalidArgumentError("--registry is required");
  const std::string name = options.expert_name.empty() ? absl::StrCat(setup.task.name, "-svf") : options.expert_name;
  const std::string alias = options.alias.empty() ? setup.task.name : options.alias;
  registry::RegistryClient registry(
      grpc::CreateChannel(options.registry, options.registry_credentials));
  // Reachable before hours of training, not after.
  T2_RETURN_IF_ERROR(Annotate(registry.ListExperts(name, true).status(), absl::StrCat("registry ", options.registry)));
  T2_ASSIGN_OR_RETURN(std::unique_ptr<engine::Generator> generator, LoadAndRegister(setup, registry, log));

  T2_ASSIGN_OR_RETURN(train::TrainResult trained,
                      train::Train(*generator, setup.task, setup.train, [&log](const train::StepReport& r) { PrintStep(r, log); }));
  log << absl::StrFormat("[job] trained: best validation accuracy %.4f at step %d of %d (%s)\n",
                         trained.best_validation_accuracy, trained.best_step, trained.steps, trained.run_dir.string());
  T2_ASSIGN_OR_RETURN(std::string candidate_sha256, FileSha256(trained.expert));
  const std::filesystem::path report_file = trained.run_dir / "report.json";
  T2_ASSIGN_OR_RETURN(std::optional<JobResult> finished,
                      FinishedBefore(registry, name, report_file, candidate_sha256, log));
  if (finished.has_value()) {
    if (!options.report.empty()) {  // a rerun answers --report too: the report as it stands
      T2_ASSIGN_OR_RETURN(json done, ReadJsonFile(report_file));
      T2_RETURN_IF_ERROR(WriteFileAtomically(options.report, done.dump(2) + "\n"));
    }
    return *std::move(finished);
  }

  T2_ASSIGN_OR_RETURN(GateRecord record,
                      Judge(setup, options, registry, *generator, trained, alias, candidate_sha256, log));
  T2_ASSIGN_OR_RETURN(train::GateResult gate, train::Decide(record.candidate_correct, record.current_correct, options.gate));
  log << "[job] gate against " << record.current << ": " << gate.reason << "\n";
  record.publish = gate.publish;
  T2_RETURN_IF_ERROR(WriteGateRecord(trained.run_dir / "gate.json", record));

  const json metrics = RunMetrics(setup, options, trained, generator->base_fingerprint(), record, gate);
  JobResult result{.report = report_file};
  json report = metrics;
  report["candidate_sha256"] = candidate_sha256;
  if (gate.publish) {
    const std::filesystem::path file = trained.run_dir / "publish.safetensors";
    T2_RETURN_IF_ERROR(WritePublishFile(trained.expert, metrics, file));
    T2_ASSIGN_OR_RETURN(std::string sha256, FileSha256(file));
    T2_ASSIGN_OR_RETURN(int64_t version, PublishOnce(registry, name, file, sha256, log));
    CrashPoint("T2_TRAINER_CRASH_AT", "published");
    result.outcome = JobOutcome::kPublished;
    result.expert = absl::StrCat(name, "@", version);
    report["expert"] = result.expert;
    report["sha256"] = sha256;
    if (options.move_alias) {
      T2_RETURN_IF_ERROR(Annotate(registry.SetAlias(alias, name, version).status(), absl::StrCat("alias ", alias)));
      log << "[job] alias " << alias << " -> " << result.expert << "\n";
      report["alias"] = alias;
    }
  }
  report["outcome"] = gate.publish ? "published" : "kept_current";
  T2_RETURN_IF_ERROR(WriteFileAtomically(result.report, report.dump(2) + "\n"));
  if (!options.report.empty()) T2_RETURN_IF_ERROR(WriteFileAtomically(options.report, report.dump(2) + "\n"));
  return result;
}

}  // namespace t2::trainer
