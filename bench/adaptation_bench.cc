// Does Transformer² adapt anything on this model? Against a running stack whose registry
// holds the built-in experts (`t2 up --experts`), through the dispatcher as an application
// calls it:
//   1. The two-pass pipeline on a mixed held-out set (the first N test questions of math,
//      reasoning and code): the base model, always the right expert (the task's alias), the
//      prompt first pass (label scoring) and the classification-expert first pass. Accuracy
//      with 95% intervals, per task and overall, how often each first pass routed a
//      question to its own task, and the paired exact one-sided McNemar p-value of each
//      strategy against the base model on the same questions.
//   2. Few-shot CEM on a task no expert was trained on (counting a letter in a word, answered
//      with a number): Adapt with 3 and with 10 solved examples, then the stored mixture
//      against the base model on that task's test questions.
//
//   build/bench/adaptation_bench DISPATCHER [N per task] [CONCURRENCY] [CEM_TEST_N] [PUBLISHED]
// PUBLISHED: the tasks whose experts the registry holds (comma-separated); "the right expert"
// runs the base model for the others, as the first passes do for a category without alias.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "t2/rpc/security.h"
#include "t2/tasks/builtin.h"
#include "t2/tasks/task.h"
#include "t2/train/gate.h"
#include "t2/v1/dispatcher.grpc.pb.h"

namespace {

using t2::tasks::Example;
using t2::tasks::Task;

struct Item {
  const Task* task;
  const Example* example;
};

struct Outcome {
  bool correct = false;
  std::string category;  // what the first pass chose
  std::string error;
};

// Sends every item with `adaptation`, `concurrency` at a time (the worker batches them).
std::vector<Outcome> RunAll(t2::v1::Dispatcher::Stub& stub, const std::vector<Item>& items,
                            const t2::v1::Adaptation& adaptation, int concurrency) {
  std::vector<Outcome> out(items.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < items.size(); i = next++) {
        t2::v1::GenerateRequest request;
        auto* m = request.mutable_chat()->add_messages();
        m->set_role("user");
        m->set_content(items[i].task->Prompt(*items[i].example));
        request.set_max_new_tokens(items[i].task->max_new_tokens);
        *request.mutable_adaptation() = adaptation;
        t2::v1::GenerateResponse response;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
        grpc::Status s = stub.Generate(&context, request, &response);
        if (!s.ok()) {
          out[i].error = s.error_message();
          continue;
        }
        out[i].correct = items[i].task->IsCorrect(*items[i].example, response.text());
        out[i].category = response.first_pass().category();
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

std::string Cell(int64_t right, int64_t n) {
  const auto ci = t2::train::Wilson95(right, n);
  return absl::StrCat(absl::StrFormat("%.3f [%.3f, %.3f]", static_cast<double>(right) / n, ci.low, ci.high));
}

// Counting a letter in a word: none of the built-in experts was trained on it.
Task LetterTask() {
  static const std::vector<std::string> words = {
      "strawberry", "banana", "committee", "bookkeeper", "mississippi", "assessment", "balloon", "coffee",
      "parallel", "occurrence", "pepper", "address", "tomorrow", "success", "grammar", "raccoon",
      "possession", "necessary", "millennium", "embarrass", "accommodate", "cinnamon", "tattoo", "giraffe"};
  Task task{.name = "letters", .prompt_template = "{question}\nGive the answer as a number.",
            .verifier = t2::adapt::VerifierKind::kNumeric, .max_new_tokens = 48};
  int i = 0;
  for (const std::string& w : words) {
    std::map<char, int> counts;
    for (char c : w) ++counts[c];
    for (const auto& [c, n] : counts) {
      Example e{absl::StrCat("letters-", i++),
                absl::StrCat("How many times does the letter '", std::string(1, c), "' appear in the word \"", w, "\"?"),
                absl::StrCat(n)};
      // Alternating splits keep every word's letters on both sides.
      (i % 4 == 0 ? task.train : task.test).push_back(e);
    }
  }
  task.validation = {task.train.back()};
  return task;
}

void FewShot(t2::v1::Dispatcher::Stub& stub, int concurrency, size_t test_n) {
  Task task = LetterTask();
  std::vector<Item> test;
  for (size_t i = 0; i < task.test.size() && i < test_n; ++i) test.push_back({&task, &task.test[i]});
  t2::v1::Adaptation base;
  base.mutable_none();
  auto base_out = RunAll(stub, test, base, concurrency);
  int64_t base_right = 0;
  for (const auto& o : base_out) base_right += o.correct ? 1 : 0;
  std::printf("\nFew-shot CEM on an unseen task (count a letter in a word; %zu test questions)\n\n", test.size());
  std::printf("| shots | Adapt wall time | CEM best (on the shots) | mixture found | base | mixture | vs base (won-lost, p) |\n"
              "|---|---|---|---|---|---|---|\n");
  for (int shots : {3, 10}) {
    t2::v1::AdaptRequest request;
    request.set_task(absl::StrCat("letters-", shots, "shot"));
    for (int i = 0; i < shots; ++i) {
      auto* e = request.add_examples();
      e->set_question(task.Prompt(task.train[i]));
      e->set_answer(task.train[i].answer);
    }
    request.set_verifier(t2::v1::VERIFIER_KIND_NUMERIC);
    request.set_generations(3);
    request.set_population(8);
    request.set_max_new_tokens(task.max_new_tokens);
    t2::v1::AdaptResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
    grpc::Status s = stub.Adapt(&context, request, &response);
    if (!s.ok()) {
      std::printf("| %d | Adapt failed: %s | | | |\n", shots, s.error_message().c_str());
      continue;
    }
    t2::v1::Adaptation few;
    few.set_few_shot_task(request.task());
    auto out = RunAll(stub, test, few, concurrency);
    int64_t right = 0, won = 0, lost = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      right += out[i].correct ? 1 : 0;
      won += out[i].correct && !base_out[i].correct ? 1 : 0;
      lost += !out[i].correct && base_out[i].correct ? 1 : 0;
    }
    std::string mixture;  // name@version × alpha, so that two runs' mixtures can be compared
    for (int e = 0; e < response.spec().experts_size(); ++e) {
      absl::StrAppendFormat(&mixture, "%s%s@%d %.2f", e > 0 ? ", " : "", response.spec().experts(e).name(),
                            response.spec().experts(e).version(),
                            e < response.spec().alpha_size() ? response.spec().alpha(e) : 0.0);
    }
    std::printf("| %d | %.0f s | %.3f (base %.3f) | %s%s | %s | %s | %d-%d, p = %.3g |\n", shots,
                response.duration_ms() / 1000, response.best_accuracy(), response.base_accuracy(), mixture.c_str(),
                response.spec().per_layer() ? " (per layer)" : "", Cell(base_right, test.size()).c_str(),
                Cell(right, test.size()).c_str(), static_cast<int>(won), static_cast<int>(lost),
                t2::train::McNemarExactP(won, won + lost));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: adaptation_bench DISPATCHER [N per task] [CONCURRENCY] [CEM_TEST_N] [PUBLISHED]\n");
    return 2;
  }
  const size_t per_task = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100;
  const int concurrency = argc > 3 ? std::atoi(argv[3]) : 16;
  const size_t cem_test = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 100;
  const std::string published = argc > 5 ? absl::StrCat(",", argv[5], ",") : ",math,reasoning,code,";
  auto channel = grpc::CreateChannel(argv[1], t2::rpc::LoopbackChannelCredentials());
  auto stub = t2::v1::Dispatcher::NewStub(channel);

  std::vector<Task> tasks;
  for (const char* name : {"math", "reasoning", "code"}) tasks.push_back(*t2::tasks::BuiltinTask(name));
  std::vector<Item> items;
  for (const Task& t : tasks) {
    for (size_t i = 0; i < per_task && i < t.test.size(); ++i) items.push_back({&t, &t.test[i]});
  }
  struct Strategy {
    const char* label;
    std::function<t2::v1::Adaptation(const Task&)> make;
    bool routes;
  };
  const std::vector<Strategy> strategies = {
      {"base model", [](const Task&) { t2::v1::Adaptation a; a.mutable_none(); return a; }, false},
      {"the right expert", [&published](const Task& t) {
         t2::v1::Adaptation a;
         if (published.find(absl::StrCat(",", t.name, ",")) != std::string::npos) {
           a.set_expert(t.name);
         } else {
           a.mutable_none();  // no expert passed the gate: the base model, as the first passes do
         }
         return a;
       }, false},
      {"prompt first pass", [](const Task&) {
         t2::v1::Adaptation a; a.mutable_prompt()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE); return a; }, true},
      {"cls-expert first pass", [](const Task&) {
         t2::v1::Adaptation a; a.mutable_classifier_expert()->set_mode(t2::v1::CLASSIFY_MODE_LABEL_SCORE); return a; },
       true},
  };
  std::printf("Two-pass pipeline through the dispatcher: %zu questions (%zu each of math, reasoning, code)\n\n",
              items.size(), per_task);
  std::printf("| strategy | math | reasoning | code | all | vs base (won-lost, p) | routed to its task |\n"
              "|---|---|---|---|---|---|---|\n");
  std::vector<bool> base_right;  // the first strategy's outcomes, for the paired test
  for (const Strategy& s : strategies) {
    // One adaptation per task (the right expert differs); items are grouped by task.
    std::vector<Outcome> out;
    for (const Task& t : tasks) {
      std::vector<Item> mine;
      for (const Item& i : items) if (i.task == &t) mine.push_back(i);
      auto part = RunAll(*stub, mine, s.make(t), concurrency);
      out.insert(out.end(), part.begin(), part.end());
    }
    std::map<std::string, std::pair<int64_t, int64_t>> per;  // task -> right, n
    int64_t right = 0, routed = 0, errors = 0;
    std::string first_error;
    for (size_t i = 0; i < items.size(); ++i) {
      auto& [r, n] = per[items[i].task->name];
      ++n;
      r += out[i].correct ? 1 : 0;
      right += out[i].correct ? 1 : 0;
      routed += out[i].category == items[i].task->name ? 1 : 0;
      if (!out[i].error.empty() && errors++ == 0) first_error = out[i].error;
    }
    // Questions only this strategy or only the base model answered right carry the evidence.
    std::string paired = "-";
    if (base_right.empty()) {
      for (const Outcome& o : out) base_right.push_back(o.correct);
    } else {
      int64_t won = 0, lost = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        won += out[i].correct && !base_right[i] ? 1 : 0;
        lost += !out[i].correct && base_right[i] ? 1 : 0;
      }
      paired = absl::StrFormat("%d-%d, p = %.3g", won, lost, t2::train::McNemarExactP(won, won + lost));
    }
    std::printf("| %s | %s | %s | %s | %s | %s | %s |\n", s.label, Cell(per["math"].first, per["math"].second).c_str(),
                Cell(per["reasoning"].first, per["reasoning"].second).c_str(),
                Cell(per["code"].first, per["code"].second).c_str(), Cell(right, items.size()).c_str(),
                paired.c_str(), s.routes ? Cell(routed, items.size()).c_str() : "-");
    if (errors > 0) std::printf("  (%ld requests failed, e.g.: %s)\n", static_cast<long>(errors), first_error.c_str());
  }
  FewShot(*stub, concurrency, cem_test);
  return 0;
}
