// Tasks for the trainer: the built-in generators (sizes, determinism, no question shared
// between splits, every answer checkable, every code answer equal to what CPython prints),
// how answers are read, splits, and the JSONL readers on hand-made files of every shape and
// of every kind of malformed line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "t2/adapt/classify.h"
#include "t2/common/process.h"
#include "t2/tasks/builtin.h"
#include "t2/tasks/jsonl.h"
#include "t2/tasks/task.h"
#include "testing/scratch_dir.h"

namespace t2::tasks {
namespace {

using ::testing::HasSubstr;

TEST(BuiltinTasks, SizesSplitsAndCheckableAnswers) {
  for (std::string_view name : BuiltinTaskNames()) {
    SCOPED_TRACE(std::string(name));
    auto task = BuiltinTask(name);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(task->name, name);
    ASSERT_TRUE(task->Validate().ok()) << task->Validate();  // unique ids, answers checkable
    EXPECT_EQ(task->test.size(), kBuiltinTestSize);
    EXPECT_EQ(task->validation.size(), kBuiltinValidationSize);
    EXPECT_EQ(task->train.size(), name == "cls" ? kClsTrainSize : kBuiltinTrainSize);
    std::set<std::string> seen;
    for (const auto* split : {&task->train, &task->validation, &task->test}) {
      for (const Example& e : *split) EXPECT_TRUE(seen.insert(e.question).second) << "repeated: " << e.question;
    }
    // Each example's own answer is accepted, the way a model would have to write it.
    const Example& e = task->test.front();
    const std::string answer = task->choices.empty() ? e.answer : absl::StrCat("\\boxed{", e.answer, "}");
    EXPECT_TRUE(task->IsCorrect(e, answer)) << e.answer;
  }
  EXPECT_FALSE(BuiltinTask("poetry").ok());
}

TEST(BuiltinTasks, SameExamplesEveryTimeAndAStableHash) {
  auto a = BuiltinTask("math"), b = BuiltinTask("math");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(DatasetHash(*a), DatasetHash(*b));
  EXPECT_EQ(a->test[17].question, b->test[17].question);
  b->test[17].answer = "0";
  EXPECT_NE(DatasetHash(*a), DatasetHash(*b));
  auto reasoning = BuiltinTask("reasoning");
  ASSERT_TRUE(reasoning.ok());
  EXPECT_NE(DatasetHash(*a), DatasetHash(*reasoning));
}

// The built-in datasets are pinned: the experts were trained, and every figure in the READMEs
// measured, on exactly these examples. A generator, Rng or toolchain change that alters one
// example must fail here rather than quietly move the numbers. (Clang once made different chat
// requests than GCC: a template drew two words as two arguments of one call, whose order of
// evaluation C++ leaves to the compiler.)
TEST(BuiltinTasks, DatasetsArePinned) {
  const std::pair<std::string_view, std::string_view> pinned[] = {
      {"math", "908b3031e606b3dc1ae3328d18b0e4bac53bc01c397235ca1b04a77737218eec"},
      {"reasoning", "f7d9e92b44a5a8816d03e0553127f8a77513d8acddf4a566cd5f18873a6179c4"},
      {"code", "3b09233d8296b64133f39d2f4db32633802f96e273d6c891e533d384c797a8dd"},
      {"cls", "794fe53c3eb6237d6b5e365649b8af6fc2505d1a4ed5e7126330f68c7d318d9f"}};
  for (const auto& [name, hash] : pinned) {
    auto task = BuiltinTask(name);
    ASSERT_TRUE(task.ok()) << task.status();
    EXPECT_EQ(DatasetHash(*task), hash) << name;
  }
}

TEST(BuiltinTasks, ClassificationUsesTheDispatchersPromptAndEveryCategory) {
  auto cls = BuiltinTask("cls");
  ASSERT_TRUE(cls.ok());
  EXPECT_EQ(cls->choices, adapt::LabelCompletions());
  std::map<std::string, int> per_label;
  for (const Example& e : cls->test) {
    ++per_label[e.answer];
    // The question is exactly what the classifier-expert first pass sends for some request.
    const size_t start = e.question.find("\"\"\"\n") + 4;
    const std::string request = e.question.substr(start, e.question.rfind("\n\"\"\"") - start);
    EXPECT_EQ(e.question, adapt::ClassificationPrompt(request));
  }
  for (std::string_view c : adapt::kCategories) EXPECT_GT(per_label[std::string(c)], 80) << c;
}

// Every snippet of the code task (all splits) runs in CPython; what it prints must be the
// example's answer.
TEST(BuiltinTasks, CodeAnswersAreWhatPythonPrints) {
  auto code = BuiltinTask("code");
  ASSERT_TRUE(code.ok());
  testing::ScratchDir dir;
  nlohmann::json cases = nlohmann::json::array();
  for (const auto* split : {&code->train, &code->validation, &code->test}) {
    for (const Example& e : *split) cases.push_back({{"id", e.id}, {"code", e.question}, {"answer", e.answer}});
  }
  std::ofstream(dir.path() / "cases.json") << cases.dump();
  std::ofstream(dir.path() / "check.py") << R"(import contextlib, io, json, sys
cases = json.load(open(sys.argv[1]))
bad = 0
for case in cases:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(case["code"], {})
    if out.getvalue().rstrip("\n") != case["answer"]:
        bad += 1
        print(case["id"], repr(out.getvalue()), "!=", repr(case["answer"]))
print("checked", len(cases), "snippets,", bad, "wrong")
sys.exit(1 if bad else 0)
)";
  const char* python = std::getenv("T2_PYTHON");
  ChildProcess child;
  ASSERT_TRUE(child.Start({python != nullptr && *python ? python : "python3", (dir.path() / "check.py").string(),
                           (dir.path() / "cases.json").string()},
                          dir.path() / "log"));
  const int status = child.Wait(std::chrono::seconds(120));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Tail(dir.path() / "log");
  EXPECT_THAT(Tail(dir.path() / "log"), HasSubstr(absl::StrCat("checked ", cases.size(), " snippets, 0 wrong")));
}

TEST(AnswerParts, WhatTheVerifierReads) {
  EXPECT_EQ(AnswerText(AnswerPart::kWhole, " 14 "), " 14 ");
  EXPECT_EQ(AnswerText(AnswerPart::kLastBoxed, "so \\boxed{3} or \\boxed{4}"), "4");
  EXPECT_EQ(AnswerText(AnswerPart::kLastBoxed, "none"), "");
  EXPECT_EQ(AnswerText(AnswerPart::kFinalValue, "14"), "14");
  EXPECT_EQ(AnswerText(AnswerPart::kFinalValue, "It adds them.\n\nOutput: 14"), "14");
  EXPECT_EQ(AnswerText(AnswerPart::kFinalValue, "The output is: `[0, 2, 4]` as a list."), "[0, 2, 4]");
  EXPECT_EQ(AnswerText(AnswerPart::kFinalValue, "It prints:\n```\nababab\n```\n"), "ababab");
  EXPECT_EQ(AnswerText(AnswerPart::kFinalValue, "\"hello\"."), "hello");
  EXPECT_EQ(AnswerText(AnswerPart::kFinalValue, "This code will print 12."), "This code will print 12");

  Task task{.name = "t", .verifier = adapt::VerifierKind::kExact, .answer_part = AnswerPart::kLastBoxed};
  const Example e{"1", "q", "42"};
  EXPECT_TRUE(task.IsCorrect(e, "I think \\boxed{42}"));
  EXPECT_FALSE(task.IsCorrect(e, "42"));  // no box: wrong however right the text
}

TEST(TaskValidate, NamesTheProblem) {
  Task task{.name = "math", .verifier = adapt::VerifierKind::kNumeric};
  task.train = {{"a", "q1", "1"}};
  task.validation = {{"b", "q2", "2"}};
  task.test = {{"c", "q3", "3"}};
  EXPECT_TRUE(task.Validate().ok());
  Task dup = task;
  dup.test[0].id = "a";
  EXPECT_THAT(std::string(dup.Validate().message()), HasSubstr("duplicate id 'a'"));
  Task unverifiable = task;
  unverifiable.test[0].answer = "three";
  EXPECT_THAT(std::string(unverifiable.Validate().message()), HasSubstr("test 'c'"));
  Task no_placeholder = task;
  no_placeholder.prompt_template = "Solve it";
  EXPECT_THAT(std::string(no_placeholder.Validate().message()), HasSubstr("{question}"));
  Task bad_name = task;
  bad_name.name = "Math!";
  EXPECT_THAT(std::string(bad_name.Validate().message()), HasSubstr("task.name"));
  Task empty = task;
  empty.validation.clear();
  EXPECT_THAT(std::string(empty.Validate().message()), HasSubstr("no validation examples"));
  EXPECT_EQ(task.Prompt(task.train[0]), "q1");
}

TEST(Splits, SeededDisjointAndComplete) {
  std::vector<Example> examples;
  for (int i = 0; i < 100; ++i) examples.push_back({absl::StrCat("e", i), absl::StrCat("q", i), "1"});
  Task a{.name = "t"}, b{.name = "t"}, c{.name = "t"};
  ASSERT_TRUE(SplitExamples(examples, 7, {.validation = 0.1, .test = 0.2}, a).ok());
  ASSERT_TRUE(SplitExamples(examples, 7, {.validation = 0.1, .test = 0.2}, b).ok());
  ASSERT_TRUE(SplitExamples(examples, 8, {.validation = 0.1, .test = 0.2}, c).ok());
  EXPECT_EQ(a.train.size(), 70u);
  EXPECT_EQ(a.validation.size(), 10u);
  EXPECT_EQ(a.test.size(), 20u);
  EXPECT_EQ(a.test[0].id, b.test[0].id);
  std::set<std::string> ids;
  for (const auto* split : {&a.train, &a.validation, &a.test}) {
    for (const Example& e : *split) ids.insert(e.id);
  }
  EXPECT_EQ(ids.size(), 100u);
  std::vector<std::string> a_test, c_test;
  for (const Example& e : a.test) a_test.push_back(e.id);
  for (const Example& e : c.test) c_test.push_back(e.id);
  EXPECT_NE(a_test, c_test);
  Task t{.name = "t"};
  EXPECT_FALSE(SplitExamples({examples[0], examples[1]}, 0, {}, t).ok());
  EXPECT_FALSE(SplitExamples(examples, 0, {.validation = 0.5, .test = 0.5}, t).ok());
}

// ------------------------------------------------------------------------ JSONL readers

class JsonlTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& name, const std::string& contents) {
    const auto path = dir_.path() / name;
    std::ofstream(path) << contents;
    return path;
  }
  testing::ScratchDir dir_;
};

TEST_F(JsonlTest, Gsm8kShape) {
  const auto path = Write("gsm.jsonl",
                          R"({"question": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = 5\n#### 5"})"
                          "\n\n"
                          R"({"question": "A big sum?", "answer": "so\n#### 1,234"})"
                          "\n");
  auto examples = ReadJsonl(path);
  ASSERT_TRUE(examples.ok()) << examples.status();
  ASSERT_EQ(examples->size(), 2u);
  EXPECT_EQ((*examples)[0].answer, "5");
  EXPECT_EQ((*examples)[1].answer, "1234");
  EXPECT_EQ((*examples)[0].id, "gsm-1");
  EXPECT_EQ((*examples)[1].id, "gsm-3");  // line numbers, blank lines counted
}

TEST_F(JsonlTest, ArcShapes) {
  const auto path = Write(
      "arc.jsonl",
      R"({"id": "Mercury_1", "question": "Which is a mammal?", "choices": {"text": ["shark", "whale", "trout"], "label": ["A", "B", "C"]}, "answerKey": "B"})"
      "\n"
      R"({"id": "Mercury_2", "question": {"stem": "Which is hot?", "choices": [{"text": "ice", "label": "1"}, {"text": "fire", "label": "2"}]}, "answerKey": "2"})"
      "\n");
  auto examples = ReadJsonl(path, JsonlShape::kArc);
  ASSERT_TRUE(examples.ok()) << examples.status();
  ASSERT_EQ(examples->size(), 2u);
  EXPECT_EQ((*examples)[0].id, "Mercury_1");
  EXPECT_EQ((*examples)[0].question, "Which is a mammal?\nA) shark\nB) whale\nC) trout");
  EXPECT_EQ((*examples)[0].answer, "B");
  EXPECT_EQ((*examples)[1].question, "Which is hot?\nA) ice\nB) fire");  // 1-4 labels shown as A-D
  EXPECT_EQ((*examples)[1].answer, "B");
  auto detected = ReadJsonl(path);
  ASSERT_TRUE(detected.ok());
  EXPECT_EQ((*detected)[0].answer, "B");
}

TEST_F(JsonlTest, PlainShape) {
  const auto path = Write("plain.jsonl", R"({"id": 7, "question": "Capital of France?", "answer": "Paris"})"
                                         "\n"
                                         R"({"question": "6 * 7?", "answer": 42})"
                                         "\n");
  auto examples = ReadJsonl(path, JsonlShape::kPlain);
  ASSERT_TRUE(examples.ok()) << examples.status();
  EXPECT_EQ((*examples)[0].id, "7");
  EXPECT_EQ((*examples)[0].answer, "Paris");
  EXPECT_EQ((*examples)[1].answer, "42");
}

TEST_F(JsonlTest, MalformedFilesNameTheFileAndLine) {
  struct Bad {
    const char* name;
    std::string contents;
    JsonlShape shape;
    std::string expected;
  };
  const std::vector<Bad> cases = {
      {"empty", "", JsonlShape::kAuto, "no examples (empty file)"},
      {"blank", "\n  \n", JsonlShape::kAuto, "no examples"},
      {"json", "{\"question\": \"q\", \"answer\": \"a\"}\n{not json\n", JsonlShape::kAuto, ":2: not valid JSON"},
      {"array", "[1, 2]\n", JsonlShape::kAuto, ":1: not a JSON object"},
      {"missing", "{\"answer\": \"a\"}\n", JsonlShape::kPlain, ":1: missing field \"question\""},
      {"type", "{\"question\": 5, \"answer\": \"a\"}\n", JsonlShape::kPlain, ":1: field \"question\" is not a string"},
      {"gsm", "{\"question\": \"q\", \"answer\": \"no marker\"}\n", JsonlShape::kGsm8k, ":1: field \"answer\" has no"},
      {"key", "{\"question\": \"q\", \"choices\": {\"text\": [\"x\", \"y\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"C\"}\n",
       JsonlShape::kArc, ":1: answerKey \"C\" names no choice"},
      {"lists", "{\"question\": \"q\", \"choices\": {\"text\": [\"x\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}\n",
       JsonlShape::kArc, ":1: field \"choices\" needs lists"},
      {"dup", "{\"id\": \"a\", \"question\": \"q\", \"answer\": \"1\"}\n{\"id\": \"a\", \"question\": \"r\", \"answer\": \"2\"}\n",
       JsonlShape::kAuto, ":2: duplicate id \"a\""},
      {"empty_answer", "{\"question\": \"q\", \"answer\": \"  \"}\n", JsonlShape::kPlain, ":1: empty answer"},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = Write(std::string(c.name) + ".jsonl", c.contents);
    auto examples = ReadJsonl(path, c.shape);
    ASSERT_FALSE(examples.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(examples.status())) << examples.status();
    EXPECT_THAT(std::string(examples.status().message()), HasSubstr(path.string()));
    EXPECT_THAT(std::string(examples.status().message()), HasSubstr(c.expected));
  }
  EXPECT_TRUE(absl::IsNotFound(ReadJsonl(dir_.path() / "absent.jsonl").status()));
  EXPECT_FALSE(ParseJsonlShape("csv").ok());
}

}  // namespace
}  // namespace t2::tasks
