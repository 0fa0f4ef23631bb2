// The t2 binary as a user runs it: a separate process, its stdout, stderr and exit code.
// Greedy answers are checked against the text transformers generated for the same chat
// prompts (tests/model/make_reference.py), model facts against SmolLM2-135M's published
// config, and every bad flag against exit code 2 with a message naming the flag.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/reference_data.h"
#include "testing/scratch_dir.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct ProcessResult {
  int exit_code = -1;
  std::string out, err;
};

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `t2 ARGS...` with stdin from `input` and returns what it printed and its exit code.
ProcessResult T2(const std::vector<std::string>& args, const std::string& input = "") {
  const char* binary = std::getenv("T2_BINARY");
  EXPECT_NE(binary, nullptr) << "T2_BINARY is not set (ctest sets it)";
  if (binary == nullptr) return {};
  const t2::testing::ScratchDir dir;
  const std::string in = dir / "in", out = dir / "out", err = dir / "err";
  std::ofstream(in, std::ios::binary) << input;
  std::string command = ShellQuote(binary);
  for (const auto& a : args) command += " " + ShellQuote(a);
  command += " < " + ShellQuote(in) + " > " + ShellQuote(out) + " 2> " + ShellQuote(err);
  int status = std::system(command.c_str());
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

std::string DefaultModel() { return t2::testing::DefaultModelPath().string(); }

TEST(CliGenerate, GreedyChatAnswerEqualsTransformers) {
  auto manifest = t2::testing::ReadJson(t2::testing::FixturesDir("model/gguf") / "manifest.json");
  ASSERT_GE(manifest["greedy"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto& c = manifest["greedy"][i];
    // --model default resolves through $T2_HOME like a user's call; the run is greedy.
    ProcessResult r = T2({"generate", "--model", "default", "--device", "cpu", "--chat", "--prompt",
                c["question"].get<std::string>(), "--max-new-tokens", "64"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, c["text_without_special"].get<std::string>() + "\n") << "chat prompt " << i;
    EXPECT_THAT(r.err, HasSubstr("finish: "));
  }
}

TEST(CliGenerate, PromptFromStdinEqualsPromptFlag) {
  std::vector<std::string> common = {"generate", "--model", DefaultModel(), "--device", "cpu",
                                     "--max-new-tokens", "12", "--temperature", "0.8", "--seed", "7"};
  auto with_flag = common;
  with_flag.insert(with_flag.end(), {"--prompt", "Once upon a time"});
  auto with_stdin = common;
  with_stdin.insert(with_stdin.end(), {"--prompt", "-"});
  ProcessResult a = T2(with_flag);
  ProcessResult b = T2(with_stdin, "Once upon a time");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out) << "same seed, same prompt: same sampled text";
  EXPECT_GT(a.out.size(), 1u);
}

TEST(CliGenerate, StopStringEndsTheAnswerBeforeIt) {
  auto manifest = t2::testing::ReadJson(t2::testing::FixturesDir("model/gguf") / "manifest.json");
  const auto& c = manifest["greedy"][0];
  const std::string full = c["text_without_special"].get<std::string>();
  const auto cut = full.find(' ', 4);
  ASSERT_NE(cut, std::string::npos) << full;
  ProcessResult r = T2({"generate", "--model", "default", "--device", "cpu", "--chat", "--prompt",
              c["question"].get<std::string>(), "--max-new-tokens", "64", "--stop", " "});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, full.substr(0, full.find(' ')) + "\n");
  EXPECT_THAT(r.err, HasSubstr("finish: stop"));
}

struct BadCall {
  std::vector<std::string> args;
  std::string message;  // what stderr must say, naming the flag
};

// Each call exits 2 with `message` on stderr and nothing on stdout.
void ExpectUsageErrors(const std::vector<BadCall>& calls) {
  for (const auto& call : calls) {
    ProcessResult r = T2(call.args);
    std::string shown;
    for (const auto& a : call.args) shown += a + " ";
    EXPECT_EQ(r.exit_code, 2) << "t2 " << shown << "\nstderr: " << r.err;
    EXPECT_THAT(r.err, HasSubstr(call.message)) << "t2 " << shown;
    EXPECT_EQ(r.out, "") << "t2 " << shown << ": nothing on stdout for a usage error";
  }
}

TEST(CliGenerate, BadFlagsExitTwoNamingTheFlag) {
  const std::string m = DefaultModel();
  const std::vector<BadCall> calls = {
      {{"generate"}, "--prompt is required"},
      {{"generate", "--model", m, "--prompt", ""}, "--prompt"},
      {{"generate", "--model", m, "--prompt", "hi", "--bogus"},
       "The following argument was not expected: --bogus"},
      {{"generate", "--model", m, "--prompt"}, "--prompt: 1 required TEXT missing"},
      {{"generate", "--model", m, "--prompt", "hi", "--chat=maybe"},
       "--chat"},  // --chat=yes is --chat
      {{"generate", "--model", m, "--prompt", "hi", "extra"},
       "The following argument was not expected: extra"},
      {{"generate", "--model", m, "--prompt", "hi", "--max-new-tokens", "ten"},
       "--max-new-tokens: must be an integer"},
      {{"generate", "--model", m, "--prompt", "hi", "--max-new-tokens", "0"},
       "--max-new-tokens: must be an integer in [1, 2147483647], got '0'"},
      {{"generate", "--model", m, "--prompt", "hi", "--max-new-tokens", "4294967297"},
       "--max-new-tokens"},
      {{"generate", "--model", m, "--prompt", "hi", "--max-new-tokens", "100000"},
       "max_new_tokens"},
      {{"generate", "--model", m, "--prompt", "hi", "--temperature", "-1"}, "temperature"},
      {{"generate", "--model", m, "--prompt", "hi", "--temperature", "warm"},
       "--temperature: must be a number"},
      {{"generate", "--model", m, "--prompt", "hi", "--temperature", "1", "--top-p", "1.5"},
       "top_p"},
      {{"generate", "--model", m, "--prompt", "hi", "--top-k", "-3"}, "--top-k"},
      {{"generate", "--model", m, "--prompt", "hi", "--seed", "-1"},
       "--seed: must be an integer in [0, "},
      {{"generate", "--model", m, "--prompt", "hi", "--threads", "-2"}, "--threads"},
      {{"generate", "--model", m, "--prompt", "hi", "--device", "tpu"}, "tpu"},
      {{"generate", "--model", m, "--prompt", "hi", "--device", "cpu", "--dtype", "bfloat16"},
       "bfloat16"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"info"}, "model is required"},
      {{"info", "a", "b"}, "The following argument was not expected: b"},
  };
  ExpectUsageErrors(calls);
}

// The client subcommands' usage errors are found before any connection: the addresses given
// are closed ports, which a call that got that far would report as UNAVAILABLE (exit 1).
// Every call names a transport (--insecure-loopback), so the error is the one being tested.
TEST(CliClient, BadFlagsExitTwoNamingTheFlag) {
  const std::string reg = "127.0.0.1:1", disp = "127.0.0.1:2";
  const t2::testing::ScratchDir dir;
  const std::string file = dir / "expert.safetensors";
  std::ofstream(file) << "not read: the flags are wrong";
  const std::string good = dir / "good.jsonl", bad = dir / "bad.jsonl";
  std::ofstream(good) << R"({"question": "1+1?", "answer": "2"})"
                      << "\n";
  std::ofstream(bad) << R"({"question": "1+1?", "answer": "2"})"
                     << "\n"
                     << R"({"question": "no answer"})"
                     << "\n";
  std::vector<BadCall> calls = {
      {{"experts"}, "A subcommand is required"},
      {{"experts", "frob", "--registry", reg}, "unknown command 'frob'"},
      {{"experts", "list"}, "--registry is required"},
      {{"experts", "list", "--registry", reg, "--bogus"},
       "The following argument was not expected: --bogus"},
      {{"experts", "publish", "--registry", reg, "--name", "x", file}, "--version is required"},
      {{"experts", "publish", "--registry", reg, "--name", "x", "--version", "0", file},
       "--version: must be an integer in [1, "},
      {{"experts", "publish", "--registry", reg, "--version", "1", file}, "--name is required"},
      {{"experts", "get", "--registry", reg, "x"}, "--out is required"},
      {{"experts", "get", "--registry", reg, "x@abc", "--out", "y"},
       "experts get: 'x@abc': the version after @ must be an integer >= 1"},
      {{"experts", "deprecate", "--registry", reg, "x"}, "NAME@VERSION"},
      {{"experts", "alias", "--registry", reg, "only-one"}, "expected ALIAS NAME[@VERSION]"},
      {{"experts", "mixtures", "--registry", reg, "extra"}, "unexpected argument 'extra'"},
      {{"experts", "mixtures", "--registry", reg, "--delete"}, "expected exactly one NAME"},
      {{"experts", "list", "--registry", reg, "--timeout", "0"}, "--timeout"},
      {{"generate", "--server", disp, "--prompt", "hi", "--model", "default"},
       "--model cannot be used with --server"},
      {{"generate", "--server", disp, "--prompt", "hi", "--device", "cpu"},
       "--device cannot be used with --server"},
      {{"generate", "--server", disp, "--prompt", "hi", "--expert", "a", "--task", "b"},
       "exclusive"},
      {{"generate", "--server", disp, "--prompt", "hi", "--classify", "maybe"},
       "--classify: must be one of prompt|prompt-generate|cls, got 'maybe'"},
      {{"generate", "--server", disp, "--prompt", "hi", "--max-new-tokens", "0"},
       "--max-new-tokens"},
      {{"generate", "--server", disp, "--prompt", "hi", "--temperature", "-1"}, "temperature"},
      {{"generate", "--server", disp}, "--prompt is required"},
      {{"generate", "--prompt", "hi", "--task", "b"}, "--task needs --server"},
      {{"generate", "--prompt", "hi", "--classify", "prompt"}, "--classify needs --server"},
      {{"adapt", "--server", disp, "--task", "t", "--verifier", "numeric"},
       "--examples is required"},
      {{"adapt", "--server", disp, "--task", "t", "--examples", good, "--verifier", "fuzzy"},
       "--verifier: must be one of exact|numeric|choice|regex, got 'fuzzy'"},
      {{"adapt", "--server", disp, "--task", "t", "--examples", bad, "--verifier", "numeric"},
       "line 2: \"answer\" is missing"},
      {{"adapt", "--server", disp, "--task", "t", "--examples", good, "--verifier", "numeric",
        "--population", "0"},
       "--population: must be an integer in [1, 2147483647], got '0'"},
      {{"adapt", "--task", "t", "--examples", good, "--verifier", "numeric"},
       "--server is required"},
      {{"health"}, "--server is required"},
      {{"health", "--server", reg, "--wait-s", "-1"},
       "--wait-s: must be a number in [0, 86400], got '-1'"},
      {{"health", "--server", reg, "extra"}, "The following argument was not expected: extra"},
  };
  for (BadCall& call : calls) call.args.push_back("--insecure-loopback");
  ExpectUsageErrors(calls);
}

TEST(CliGenerate, MissingOrCorruptModelExitsOneNamingThePath) {
  const t2::testing::ScratchDir dir;
  const std::string missing = dir / "no_such_model.gguf";
  ProcessResult r = T2({"generate", "--model", missing, "--prompt", "hi"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no_such_model.gguf"));

  const std::string corrupt = dir / "corrupt.gguf";
  std::ofstream(corrupt, std::ios::binary) << "GGUF\x03\x00\x00\x00 truncated";
  r = T2({"generate", "--model", corrupt, "--prompt", "hi"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("Segmentation")));
  EXPECT_EQ(r.out, "");
}

TEST(CliInfo, DefaultModelMatchesSmolLM2PublishedConfig) {
  // SmolLM2-135M's config.json: 30 layers, hidden 576, intermediate 1536, 9 heads with
  // 3 KV heads (head_dim 64), vocab 49152, 8192 positions, tied embeddings; its GGUF
  // holds 272 tensors (9 per layer + token_embd + output_norm).
  ProcessResult r = T2({"info", "default"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"architecture:  llama", "layers:        30", "hidden:        576",
                           "intermediate:  1536", "heads:         9 (kv 3, head_dim 64)", "vocab:         49152",
                           "context:       8192", "tied head:     yes", "qkv bias:      no", "GGUF v3",
                           "272 tensors", "token_embd.weight", "blk.0.ffn_down.weight",
                           "... 261 more in the other layers"}) {
    EXPECT_THAT(r.out, HasSubstr(line));
  }
  EXPECT_THAT(r.out, Not(HasSubstr("blk.29.")));
  ProcessResult all = T2({"info", "default", "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_THAT(all.out, HasSubstr("blk.29.ffn_down.weight"));
}

TEST(CliInfo, HfCheckpointFolderShowsHfNamesAndBias) {
  // The tiny Qwen2 checkpoint transformers saved (make_reference.py): 3 layers, q/k/v biases.
  ProcessResult r = T2({"info", (t2::testing::FixturesDir("model/tiny") / "qwen2").string(), "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"architecture:  qwen2", "layers:        3", "hidden:        64", "heads:         4 (kv 2, head_dim 16)",
                           "vocab:         320", "qkv bias:      yes", "model.layers.2.self_attn.q_proj.bias", "F32"}) {
    EXPECT_THAT(r.out, HasSubstr(line));
  }
}

namespace svf_cli {

// t2 expert constant → t2 expert inspect → t2 generate --expert / --mixture: a constant
// expert (nuclear normalisation) must answer exactly what transformers' base model does. The
// SVD cache is the default one beside the model, as a user's would be: computing it takes
// half a minute, and the other tests that adapt the default model share it.
TEST(CliSvf, ConstantExpertAndMixtureAnswerLikeTheBaseModel) {
  const t2::testing::ScratchDir scratch;
  const std::string dir = scratch.path();
  const std::string expert = dir + "/half.safetensors";
  ProcessResult r = T2({"expert", "constant", "--model", "default", "--device", "cpu", "--value",
                        "0.5", "--task", "demo", "--out", expert});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = T2({"expert", "inspect", expert});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("demo"));
  EXPECT_THAT(r.out, HasSubstr("mlp"));
  EXPECT_THAT(r.out, HasSubstr("90"));  // vectors: 30 layers × gate, up, down

  std::ofstream(dir + "/mix.json") << R"({"experts": ["half.safetensors", "half.safetensors"], "alpha": [0.3, 0.7]})";
  auto manifest = t2::testing::ReadJson(t2::testing::FixturesDir("model/gguf") / "manifest.json");
  const auto& c = manifest["greedy"][1];
  for (const std::vector<std::string>& adapter : {std::vector<std::string>{"--expert", expert},
                                                  std::vector<std::string>{"--mixture", dir + "/mix.json"}}) {
    std::vector<std::string> args = {"generate",
                                     "--model",
                                     "default",
                                     "--device",
                                     "cpu",
                                     "--chat",
                                     "--prompt",
                                     c["question"].get<std::string>(),
                                     "--max-new-tokens",
                                     "64"};
    args.insert(args.end(), adapter.begin(), adapter.end());
    r = T2(args);
    ASSERT_EQ(r.exit_code, 0) << adapter[0] << ": " << r.err;
    EXPECT_EQ(r.out, c["text_without_special"].get<std::string>() + "\n") << adapter[0];
  }

  // Bad adapter arguments: usage errors exit 2, unusable files exit 1, naming the problem.
  r = T2({"generate", "--model", "default", "--prompt", "hi", "--expert", expert, "--mixture", dir + "/mix.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--expert and --mixture are exclusive"));
  r = T2({"generate", "--model", "default", "--prompt", "hi", "--expert", expert, "--svf-targets", "ffn"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--svf-targets: must be one of mlp|attn|all, got 'ffn'"));
  std::ofstream(dir + "/bad_alpha.json") << R"({"experts": ["half.safetensors"], "alpha": [-1]})";
  r = T2(
      {"generate", "--model", "default", "--prompt", "hi", "--mixture", dir + "/bad_alpha.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("alpha"));
  std::ofstream(dir + "/garbage.safetensors") << "not a safetensors file";
  r = T2({"generate", "--model", "default", "--prompt", "hi", "--expert",
          dir + "/garbage.safetensors"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("garbage.safetensors"));
  std::filesystem::remove_all(dir);
}

}  // namespace svf_cli

}  // namespace

// The one training run on the default model (the other trainer tests use a tiny one): a
// step of the built-in math task end to end, with its plot, the expert copied out and judged.
TEST(CliTrain, OneStepOnTheDefaultModel) {
  const t2::testing::ScratchDir scratch;
  const std::string dir = scratch / "work";  // t2 train creates its work dir
  ProcessResult r = T2({"train", "--model", "default", "--device", "cpu", "--task", "math", "--work-dir", dir,
                        "--steps", "1", "--batch-size", "2", "--micro-batch-size", "1", "--validation-size", "2",
                        "--max-new-tokens", "12", "--kl-coef", "0.1", "--out", dir + "/math.safetensors", "--plot",
                        dir + "/curve.png", "--evaluate", "--test-size", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("[train] step 0/1  validation"));
  EXPECT_THAT(r.err, HasSubstr("[train] step 1/1  reward"));
  EXPECT_THAT(r.out, HasSubstr("best validation accuracy"));
  EXPECT_THAT(r.out, HasSubstr("test (n = 2): base"));
  EXPECT_EQ(Slurp(dir + "/curve.png").substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  ProcessResult inspect = T2({"expert", "inspect", dir + "/math.safetensors"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("math"));
  EXPECT_THAT(inspect.out, HasSubstr("SmolLM2-135M-Instruct"));
}

TEST(CliTrain, BadFlagsExitTwoNamingTheFlag) {
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"train", "--task", "math"}, "--work-dir is required"},
           {{"train", "--task", "poetry", "--work-dir", "/tmp/x"}, "--task"},
           {{"train", "--data", "/nonexistent.jsonl", "--work-dir", "/tmp/x"}, "--verifier is required"},
           {{"train", "--task", "math", "--work-dir", "/tmp/x", "--steps", "0"}, "--steps must be >= 1"},
           {{"train", "--task", "math", "--work-dir", "/tmp/x", "--verifier", "exact"}, "--verifier goes with --data"},
           {{"eval", "--task", "math", "--split", "dev"}, "--split"},
       }) {
    ProcessResult r = T2(args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
  }
}
