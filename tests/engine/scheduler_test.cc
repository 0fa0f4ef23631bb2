// Continuous batching on the default model: requests that join a running batch at different
// steps get exactly what they get alone; the queue cap, cancellation, deadlines, draining
// and Score behave as Generator's header promises.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "t2/common/fault_point.h"
#include "t2/engine/generator.h"
#include "testing/eventually.h"
#include "testing/reference_data.h"

namespace t2::engine {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Collects one submitted request's stream and waits for its end.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  std::string text;
  std::optional<absl::StatusOr<GenerationResult>> done;
  std::atomic<int> token_calls{0};
  bool started = false;

  StreamCallbacks Callbacks() {
    StreamCallbacks cb;
    cb.on_start = [this](double) {
      std::lock_guard<std::mutex> l(mu);
      started = true;
    };
    cb.on_tokens = [this](std::string_view t, std::span<const int32_t> ids, std::span<const float>) {
      std::lock_guard<std::mutex> l(mu);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      text += t;
      ++token_calls;
      cv.notify_all();
    };
    cb.on_done = [this](absl::StatusOr<GenerationResult> r) {
      std::lock_guard<std::mutex> l(mu);
      done = std::move(r);
      cv.notify_all();
    };
    return cb;
  }
  // Bounded: a scheduler that lost the request fails the test instead of hanging it.
  absl::StatusOr<GenerationResult> Wait() {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, kPatience, [&] { return done.has_value(); })) {
      ADD_FAILURE() << "no answer within " << kPatience.count() << " s";
      return absl::DeadlineExceededError("test: no answer");
    }
    return *done;
  }
  void WaitForTokens(size_t n) {
    std::unique_lock<std::mutex> l(mu);
    if (!cv.wait_for(l, kPatience, [&] { return tokens.size() >= n || done.has_value(); })) {
      ADD_FAILURE() << "fewer than " << n << " tokens within " << kPatience.count() << " s";
    }
  }
  static constexpr std::chrono::seconds kPatience{300};
};

class SchedulerTest : public ::testing::Test {
 protected:
  static std::unique_ptr<Generator> Make(int32_t slots, int32_t queue) {
    auto g = Generator::Create({.model = t2::testing::DefaultModelPath(),
                                .device = t2::model::DeviceSpec::Cpu(),
                                .max_batch_size = slots,
                                .max_queue = queue});
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? std::move(*g) : nullptr;
  }
  static GenerationRequest Request(const Generator& g, const std::string& text, int32_t max_new) {
    GenerationRequest r;
    r.prompt_ids = g.tokenizer().Encode(text, false);
    r.max_new_tokens = max_new;
    r.ignore_eos = true;
    return r;
  }
};

TEST_F(SchedulerTest, RequestsJoiningARunningBatchMatchRunningAlone) {
  auto g = Make(/*slots=*/4, /*queue=*/16);
  ASSERT_NE(g, nullptr);
  const std::vector<std::string> prompts = {"The sea is", "def fibonacci(n):", "Paris is the capital of",
                                            "My favourite number is", "Once upon a time"};
  std::vector<GenerationRequest> requests;
  for (const auto& p : prompts) requests.push_back(Request(*g, p, 20));
  std::vector<std::vector<int32_t>> alone;
  for (const auto& r : requests) {
    auto out = g->Generate(std::span(&r, 1));
    ASSERT_TRUE(out.ok()) << out.status();
    alone.push_back((*out)[0].token_ids);
  }
  // Staggered: each request arrives after the previous one has produced a few tokens, so
  // it is prefilled beside sequences that are mid-decode, and with 5 requests on 4 slots the
  // last one waits for a finished slot (whose KV row another sequence is moved into).
  std::vector<std::unique_ptr<Collector>> collectors;
  for (size_t i = 0; i < requests.size(); ++i) {
    collectors.push_back(std::make_unique<Collector>());
    auto h = g->Submit(requests[i], collectors[i]->Callbacks());
    ASSERT_TRUE(h.ok()) << h.status();
    if (i > 0) collectors[i - 1]->WaitForTokens(3 + i);
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    auto r = collectors[i]->Wait();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->token_ids, alone[i]) << "request " << i;
    EXPECT_EQ(collectors[i]->tokens, alone[i]) << "streamed tokens of request " << i;
    EXPECT_EQ(collectors[i]->text, r->text);
  }
  EXPECT_GT(g->scheduler_stats().steps, 0);
  // Counted before on_done ran, so exact now.
  EXPECT_EQ(g->scheduler_stats().requests_done, static_cast<int64_t>(requests.size()) * 2);
}

TEST_F(SchedulerTest, FullQueueIsResourceExhaustedAndCancellationFreesTheSlot) {
  auto g = Make(/*slots=*/1, /*queue=*/1);
  ASSERT_NE(g, nullptr);
  Collector running, queued, late;
  auto h1 = g->Submit(Request(*g, "Count to one thousand:", 400), running.Callbacks());
  ASSERT_TRUE(h1.ok());
  running.WaitForTokens(1);  // it holds the only slot now
  auto h2 = g->Submit(Request(*g, "The sea is", 5), queued.Callbacks());
  ASSERT_TRUE(h2.ok()) << h2.status();
  auto h3 = g->Submit(Request(*g, "Another", 5), late.Callbacks());
  ASSERT_FALSE(h3.ok());
  EXPECT_EQ(h3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(h3.status().message()), HasSubstr("max_queue 1"));

  (*h1)->Cancel();
  auto r1 = running.Wait();
  EXPECT_EQ(r1.status().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(running.tokens.size(), 400u);
  auto r2 = queued.Wait();  // got the freed slot
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->token_ids.size(), 5u);
}

TEST_F(SchedulerTest, QueuedRequestPastItsDeadlineIsDroppedBeforePrefill) {
  auto g = Make(/*slots=*/1, /*queue=*/4);
  ASSERT_NE(g, nullptr);
  Collector running, expired;
  auto h1 = g->Submit(Request(*g, "Count to one hundred:", 60), running.Callbacks());
  ASSERT_TRUE(h1.ok());
  running.WaitForTokens(1);
  auto h2 = g->Submit(Request(*g, "The sea is", 5), expired.Callbacks(), absl::Now() + absl::Milliseconds(50));
  ASSERT_TRUE(h2.ok());
  auto r2 = expired.Wait();
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(expired.started) << "a dropped request must never be prefilled";
  EXPECT_TRUE(expired.tokens.empty());
  EXPECT_TRUE(running.Wait().ok());
}

TEST_F(SchedulerTest, DrainFinishesInFlightAndRefusesNewWork) {
  auto g = Make(/*slots=*/2, /*queue=*/4);
  ASSERT_NE(g, nullptr);
  Collector a, b;
  ASSERT_TRUE(g->Submit(Request(*g, "The sea is", 30), a.Callbacks()).ok());
  ASSERT_TRUE(g->Submit(Request(*g, "Once upon a time", 30), b.Callbacks()).ok());
  a.WaitForTokens(1);
  std::thread drain([&] { g->Drain(absl::Now() + absl::Seconds(60)); });
  // Drain has started (or is about to): new work is refused either way once it returns.
  drain.join();
  auto ra = a.Wait(), rb = b.Wait();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(ra->token_ids.size(), 30u);
  EXPECT_EQ(rb->token_ids.size(), 30u);
  Collector c;
  auto refused = g->Submit(Request(*g, "Too late", 5), c.Callbacks());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(g->scheduler_stats().kv_cache_bytes, 0) << "idle scheduler keeps KV memory";
}

// An exception out of a step (out of memory, a library error) used to end the process through
// std::terminate. Now the requests that step held end with Internal and the next ones are
// served as on a fresh scheduler.
TEST_F(SchedulerTest, AFaultInAStepFailsItsRequestsAndServingGoesOn) {
  auto g = Make(/*slots=*/2, /*queue=*/4);
  ASSERT_NE(g, nullptr);
  GenerationRequest fresh = Request(*g, "The sea is", 12);
  auto expected = g->Generate(std::span(&fresh, 1));
  ASSERT_TRUE(expected.ok()) << expected.status();

  // While decoding: both running requests fail.
  Collector a, b;
  ASSERT_TRUE(g->Submit(Request(*g, "Count to one hundred:", 60), a.Callbacks()).ok());
  ASSERT_TRUE(g->Submit(Request(*g, "Once upon a time", 60), b.Callbacks()).ok());
  a.WaitForTokens(2);
  b.WaitForTokens(2);
  ArmFault("scheduler.decode");
  EXPECT_EQ(a.Wait().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(b.Wait().status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(b.Wait().status().message()), Not(HasSubstr("injected")))
      << "the detail is logged, not sent";

  // Before a request admitted in that step has a row: it fails too (it was never running).
  ArmFault("scheduler.step");
  Collector c;
  ASSERT_TRUE(g->Submit(Request(*g, "The sea is", 5), c.Callbacks()).ok());
  EXPECT_EQ(c.Wait().status().code(), absl::StatusCode::kInternal);

  // Score's own work.
  ArmFault("scheduler.score");
  const std::vector<int32_t> prompt = fresh.prompt_ids;
  auto failed = g->Score({.prompt_ids = prompt, .completions = {{(*expected)[0].token_ids[0]}}});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);

  // Every slot is free again and answers are what a fresh scheduler gives.
  std::vector<GenerationRequest> again = {fresh, fresh};
  auto after = g->Generate(again);
  ASSERT_TRUE(after.ok()) << after.status();
  for (const auto& r : *after) EXPECT_EQ(r.token_ids, (*expected)[0].token_ids);
  EXPECT_TRUE(
      g->Score({.prompt_ids = prompt, .completions = {{(*expected)[0].token_ids[0]}}}).ok());
  const SchedulerStats stats = g->scheduler_stats();
  EXPECT_EQ(stats.active, 0);
  EXPECT_EQ(stats.queued, 0);
}

// Score used to skip the line: no queue cap, no deadline, no cancellation, and a caller blocked
// until the scheduler thread got to it however long that took.
TEST_F(SchedulerTest, ScoreWaitsInLineUnderTheQueueCapDeadlinesAndCancellation) {
  auto g = Make(/*slots=*/1, /*queue=*/1);
  ASSERT_NE(g, nullptr);
  // A running request whose token callback (on the scheduler thread) holds the thread until
  // the gate opens: everything submitted meanwhile waits in line.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool gate_open = false, holding = false;
  Collector running;
  StreamCallbacks held = running.Callbacks();
  held.on_tokens = [&, inner = held.on_tokens](std::string_view t, std::span<const int32_t> ids,
                                               std::span<const float> lp) {
    std::unique_lock<std::mutex> l(gate_mu);
    holding = true;
    gate_cv.notify_all();
    gate_cv.wait_for(l, std::chrono::seconds(120), [&] { return gate_open; });
    l.unlock();
    inner(t, ids, lp);
  };
  auto open_gate = [&] {
    std::lock_guard<std::mutex> l(gate_mu);
    gate_open = true;
    gate_cv.notify_all();
  };
  ASSERT_TRUE(g->Submit(Request(*g, "Count to ten:", 3), held).ok());
  {
    std::unique_lock<std::mutex> l(gate_mu);
    ASSERT_TRUE(gate_cv.wait_for(l, std::chrono::seconds(300), [&] { return holding; }));
  }
  const GenerationRequest probe = Request(*g, "The sea is", 1);
  const ScoreRequest score{.prompt_ids = probe.prompt_ids, .completions = {{42}, {43}}};

  // Past its deadline while waiting: DeadlineExceeded, on time.
  const absl::Time start = absl::Now();
  auto late = g->Score(score, absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));

  // One Score waits (the one queue place), the next one and a request are refused.
  std::atomic<bool> cancel{false};
  auto waiting = std::async(std::launch::async, [&] {
    return g->Score(score, absl::Now() + absl::Seconds(120), [&] { return cancel.load(); });
  });
  t2::testing::Eventually([&] { return g->scheduler_stats().queued > 0; },
                          std::chrono::seconds(30));
  ASSERT_EQ(g->scheduler_stats().queued, 1) << "the Score is waiting";
  auto refused = g->Score(score, absl::Now() + absl::Seconds(120));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("max_queue 1"));
  Collector refused_request;
  EXPECT_EQ(g->Submit(Request(*g, "The sea is", 2), refused_request.Callbacks()).status().code(),
            absl::StatusCode::kResourceExhausted);

  // Cancelled while waiting: Cancelled, and its place is free again at once.
  cancel = true;
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(waiting.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(g->scheduler_stats().queued, 0) << "a cancelled Score leaves the line";
  auto after_cancel = std::async(std::launch::async,
                                 [&] { return g->Score(score, absl::Now() + absl::Seconds(300)); });

  open_gate();
  ASSERT_EQ(after_cancel.wait_for(std::chrono::seconds(300)), std::future_status::ready);
  auto scored = after_cancel.get();
  ASSERT_TRUE(scored.ok()) << scored.status();
  EXPECT_EQ(scored->size(), 2u);
  EXPECT_TRUE(running.Wait().ok());
}

TEST_F(SchedulerTest, ScoreEqualsTheLogProbabilitiesOfGeneration) {
  auto g = Make(/*slots=*/4, /*queue=*/4);
  ASSERT_NE(g, nullptr);
  GenerationRequest r = Request(*g, "The capital of France is", 8);
  r.return_logprobs = true;
  auto out = g->Generate(std::span(&r, 1));
  ASSERT_TRUE(out.ok());
  const auto& tokens = (*out)[0].token_ids;
  double expected = 0;
  for (float lp : (*out)[0].logprobs) expected += lp;
  std::vector<int32_t> other = g->tokenizer().Encode(" a banana", false);
  auto scores = g->Score({.prompt_ids = r.prompt_ids, .completions = {tokens, other, {tokens[0]}}});
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->size(), 3u);
  EXPECT_NEAR((*scores)[0].logprob, expected, 1e-3);
  EXPECT_EQ((*scores)[0].tokens, static_cast<int32_t>(tokens.size()));
  EXPECT_NEAR((*scores)[2].logprob, (*out)[0].logprobs[0], 1e-4);
  EXPECT_LT((*scores)[1].logprob, (*scores)[0].logprob) << "the greedy continuation is the most likely";
  // Completions that begin alike (as labels "\boxed{code}", "\boxed{math}" do) have their
  // shared beginning scored once; each sum is still the generation's.
  ASSERT_GE(tokens.size(), 6u);
  std::vector<int32_t> first4(tokens.begin(), tokens.begin() + 4), first5(tokens.begin(), tokens.begin() + 5);
  auto alike = g->Score({.prompt_ids = r.prompt_ids, .completions = {first5, tokens, first4}});
  ASSERT_TRUE(alike.ok()) << alike.status();
  double expected4 = 0;
  for (int j = 0; j < 4; ++j) expected4 += (*out)[0].logprobs[j];
  EXPECT_NEAR((*alike)[0].logprob, expected4 + (*out)[0].logprobs[4], 1e-3);
  EXPECT_NEAR((*alike)[1].logprob, expected, 1e-3);
  EXPECT_NEAR((*alike)[2].logprob, expected4, 1e-3);
  EXPECT_EQ((*alike)[2].tokens, 4);
  // first_token_only: through the shared 4 tokens and one own token, in one prefill.
  std::vector<int32_t> departs = first4;
  departs.push_back(tokens[4] == 0 ? 1 : 0);
  auto firsts = g->Score({.prompt_ids = r.prompt_ids, .completions = {tokens, departs}, .first_token_only = true});
  ASSERT_TRUE(firsts.ok()) << firsts.status();
  EXPECT_NEAR((*firsts)[0].logprob, expected4 + (*out)[0].logprobs[4], 1e-3);
  EXPECT_EQ((*firsts)[0].tokens, 5);
  EXPECT_LT((*firsts)[1].logprob, (*firsts)[0].logprob);
  auto same_first = g->Score({.prompt_ids = r.prompt_ids, .completions = {tokens, first5, departs},
                              .first_token_only = true});
  EXPECT_EQ(same_first.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(same_first.status().message()), HasSubstr("completions[0] and [1]"));

  auto empty = g->Score({.prompt_ids = r.prompt_ids, .completions = {{}}});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto none = g->Score({.prompt_ids = r.prompt_ids});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  auto unknown = g->Score({.prompt_ids = r.prompt_ids, .completions = {{1}}, .adapter = "nope"});
  EXPECT_NE(unknown.status().code(), absl::StatusCode::kOk);
}

TEST_F(SchedulerTest, MaxContextCapsPromptPlusNewTokens) {
  auto g = Generator::Create({.model = t2::testing::DefaultModelPath(),
                              .device = t2::model::DeviceSpec::Cpu(),
                              .max_context = 64});
  ASSERT_TRUE(g.ok());
  GenerationRequest r = Request(**g, "Hello", 1);
  r.max_new_tokens = 64 - static_cast<int32_t>(r.prompt_ids.size());
  EXPECT_TRUE((*g)->ValidateRequest(r).ok());
  r.max_new_tokens += 1;
  auto s = (*g)->ValidateRequest(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("context of 64"));
  EXPECT_EQ((*g)->context_limit(), 64);
}

// A shared beginning (a system prompt) is copied from the prefix cache instead of being
// prefilled again; what comes out equals computing every position, alone or in a batch whose
// rows reuse different lengths, for generation and for Score.
TEST_F(SchedulerTest, PrefixCacheReuseEqualsComputingEveryPosition) {
  auto plain = Make(/*slots=*/4, /*queue=*/16);
  ASSERT_NE(plain, nullptr);
  auto made = Generator::Create({.model = t2::testing::DefaultModelPath(),
                                 .device = t2::model::DeviceSpec::Cpu(),
                                 .max_batch_size = 2,
                                 .max_queue = 16,
                                 .prefix_cache_bytes = int64_t{64} << 20});
  ASSERT_TRUE(made.ok()) << made.status();
  Generator& cached = **made;
  const std::string system =
      "<|im_start|>system\nYou are a careful assistant. Answer in one short sentence and say nothing "
      "else. Give units where they apply.<|im_end|>\n<|im_start|>user\n";
  const std::vector<std::string> questions = {"How far is the Moon?", "How hot is the Sun?",
                                              "How tall is Mount Everest?", "How long is a marathon?"};
  auto request = [&](const Generator& g, const std::string& q) {
    GenerationRequest r = Request(g, system + q + "<|im_end|>\n<|im_start|>assistant\n", 12);
    r.return_logprobs = true;
    return r;
  };
  const int64_t system_tokens = static_cast<int64_t>(cached.tokenizer().Encode(system, false).size());
  ASSERT_GE(system_tokens, 16) << "the shared beginning must be long enough to be reused";

  std::vector<GenerationResult> expected;
  for (const auto& q : questions) {
    GenerationRequest r = request(*plain, q);
    auto out = plain->Generate(std::span(&r, 1));
    ASSERT_TRUE(out.ok()) << out.status();
    expected.push_back((*out)[0]);
  }
  auto check = [&](const GenerationResult& got, size_t i) {
    EXPECT_EQ(got.token_ids, expected[i].token_ids) << questions[i];
    ASSERT_EQ(got.logprobs.size(), expected[i].logprobs.size());
    for (size_t j = 0; j < got.logprobs.size(); ++j) EXPECT_NEAR(got.logprobs[j], expected[i].logprobs[j], 1e-4);
  };
  // One at a time: the first fills the cache, the second reuses the system prompt.
  for (size_t i = 0; i < 2; ++i) {
    GenerationRequest r = request(cached, questions[i]);
    auto out = cached.Generate(std::span(&r, 1));
    ASSERT_TRUE(out.ok()) << out.status();
    check((*out)[0], i);
  }
  SchedulerStats stats = cached.scheduler_stats();
  EXPECT_EQ(stats.prefix_hits, 1);
  EXPECT_GE(stats.prefix_reused_tokens, system_tokens);
  EXPECT_GE(stats.prefix_cache_entries, 2);
  // Together: one row repeats a whole earlier prompt (all but its last token reused), the
  // other reuses only the system prompt, so the rows start their prefill at different depths.
  std::vector<GenerationRequest> batch = {request(cached, questions[0]), request(cached, questions[2])};
  auto out = cached.Generate(batch);
  ASSERT_TRUE(out.ok()) << out.status();
  check((*out)[0], 0);
  check((*out)[1], 2);
  stats = cached.scheduler_stats();
  EXPECT_EQ(stats.prefix_hits, 3);
  EXPECT_GE(stats.prefix_reused_tokens,
            system_tokens * 2 + static_cast<int64_t>(batch[0].prompt_ids.size()) - 1);

  // Score: five labels on two slots run in three chunks; the prompt's beginning is reused.
  ScoreRequest score{.prompt_ids = request(cached, questions[3]).prompt_ids};
  for (const char* label : {" 42 km", " 42.195 kilometres", " about 26 miles", " one hour", " far"}) {
    score.completions.push_back(cached.tokenizer().Encode(label, false));
  }
  auto want = plain->Score(score);
  auto got = cached.Score(score);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < score.completions.size(); ++i) {
    EXPECT_NEAR((*got)[i].logprob, (*want)[i].logprob, 1e-4) << i;
    EXPECT_EQ((*got)[i].tokens, (*want)[i].tokens);
  }
  EXPECT_EQ(cached.scheduler_stats().prefix_hits, 4);
  EXPECT_EQ(plain->scheduler_stats().prefix_hits, 0) << "the cache is off by default";
}

TEST_F(SchedulerTest, PrefixCacheStaysWithinItsBudget) {
  // SmolLM2-135M keeps 30 layers x 2 x 3 heads x 64 floats = 46080 bytes per position: a
  // 2 MB budget holds one prompt of 24 to 43 tokens, not two.
  const int64_t budget = 2'000'000;
  auto made = Generator::Create({.model = t2::testing::DefaultModelPath(),
                                 .device = t2::model::DeviceSpec::Cpu(),
                                 .max_batch_size = 2,
                                 .max_queue = 4,
                                 .prefix_cache_bytes = budget});
  ASSERT_TRUE(made.ok()) << made.status();
  Generator& g = **made;
  const std::vector<std::string> prompts = {
      "The history of the printing press begins in the fifteenth century, when a goldsmith in Mainz "
      "combined movable metal type with an oil-based ink and a screw press.",
      "Photosynthesis converts light energy into chemical energy: chlorophyll absorbs red and blue "
      "light, water is split, and carbon dioxide is fixed into sugars."};
  for (const auto& p : prompts) {
    GenerationRequest r = Request(g, p, 2);
    ASSERT_GE(r.prompt_ids.size(), 24u);
    ASSERT_LE(r.prompt_ids.size(), 43u);
    ASSERT_TRUE(g.Generate(std::span(&r, 1)).ok());
    const SchedulerStats stats = g.scheduler_stats();
    EXPECT_EQ(stats.prefix_cache_entries, 1) << "the older prompt is evicted";
    EXPECT_GT(stats.prefix_cache_bytes, 0);
    EXPECT_LE(stats.prefix_cache_bytes, budget);
  }
  // The evicted prompt is computed again, not reused.
  GenerationRequest again = Request(g, prompts[0], 2);
  ASSERT_TRUE(g.Generate(std::span(&again, 1)).ok());
  EXPECT_EQ(g.scheduler_stats().prefix_hits, 0);

  auto bad = Generator::Create({.model = t2::testing::DefaultModelPath(),
                                .device = t2::model::DeviceSpec::Cpu(),
                                .prefix_cache_bytes = -1});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("prefix_cache_bytes"));
}

}  // namespace
}  // namespace t2::engine
