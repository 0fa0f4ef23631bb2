// Arithmetic word problems with whole-number answers (GSM8K-like, smaller): two thirds take one
// operation, a third two. The default model (SmolLM2-135M) is right on about 2% of two-step
// problems and about a fifth of one-step ones (bench/README.md): all two-step, nearly every
// training batch would be all wrong, which teaches nothing.
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rng.h"
#include "t2/tasks/builtin.h"

namespace t2::tasks {
namespace {

struct Person {
  const char* name;
  const char* he;   // "He" / "She"
  const char* his;  // "his" / "her"
};
const std::vector<Person> kPeople = {
    {"Sam", "He", "his"},    {"Maria", "She", "her"}, {"Tom", "He", "his"},   {"Aisha", "She", "her"},
    {"Liam", "He", "his"},   {"Emma", "She", "her"},  {"Kenji", "He", "his"}, {"Sofia", "She", "her"},
    {"Omar", "He", "his"},   {"Lena", "She", "her"},  {"Diego", "He", "his"}, {"Priya", "She", "her"},
    {"Noah", "He", "his"},   {"Chloe", "She", "her"}, {"Ivan", "He", "his"},  {"Mei", "She", "her"},
};
const std::vector<std::string> kItems = {"apples", "marbles", "stickers", "pencils", "cookies", "stamps",
                                         "books",  "coins",   "shells",   "cards",   "eggs",    "balloons"};

struct Problem {
  std::string text;
  int64_t answer;
};

using MathTemplate = std::function<Problem(Rng&)>;

const std::vector<MathTemplate>& OneStepTemplates() {
  static const std::vector<MathTemplate> templates = {
      // add
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        const std::string& item = r.Pick(kItems);
        int64_t a = r.Int(3, 40), b = r.Int(2, 25);
        return Problem{absl::StrFormat("%s has %d %s. %s gets %d more %s. How many %s does %s have now?", p.name, a,
                                       item, p.he, b, item, item, p.name),
                       a + b};
      },
      // take away
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        const std::string& item = r.Pick(kItems);
        int64_t a = r.Int(10, 60), b = r.Int(2, a - 1);
        return Problem{absl::StrFormat("%s had %d %s and gave %d of them away. How many %s does %s have left?",
                                       p.name, a, item, b, item, p.name),
                       a - b};
      },
      // equal groups
      [](Rng& r) {
        const std::string& item = r.Pick(kItems);
        int64_t per = r.Int(2, 12), bags = r.Int(2, 9);
        return Problem{absl::StrFormat("A bag holds %d %s. How many %s are in %d bags?", per, item, item, bags),
                       per * bags};
      },
      // share equally
      [](Rng& r) {
        const std::string& item = r.Pick(kItems);
        int64_t children = r.Int(2, 9), each = r.Int(2, 12);
        return Problem{absl::StrFormat("%d %s are shared equally among %d children. How many %s does each child get?",
                                       children * each, item, children, item),
                       each};
      },
      // a daily rate
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        int64_t pages = r.Int(2, 25), days = r.Int(2, 9);
        return Problem{absl::StrFormat("%s reads %d pages every day. How many pages does %s read in %d days?", p.name,
                                       pages, p.name, days),
                       pages * days};
      },
      // a price
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        int64_t price = r.Int(2, 15), count = r.Int(2, 9);
        return Problem{absl::StrFormat("A notebook costs %d dollars. %s buys %d notebooks. How many dollars does %s "
                                       "pay?",
                                       price, p.name, count, absl::AsciiStrToLower(p.he)),
                       price * count};
      },
  };
  return templates;
}

// A data table (one entry per template), which is why it is long.
const std::vector<MathTemplate>& TwoStepTemplates() {
  static const std::vector<MathTemplate> templates = {
      // add, then take away
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        const Person& q = r.Pick(kPeople);
        const std::string& item = r.Pick(kItems);
        int64_t a = r.Int(5, 40), b = r.Int(2, 30), c = r.Int(1, a + b - 1);
        return Problem{absl::StrFormat("%s has %d %s. %s buys %d more and then gives %d to %s. How many %s does %s "
                                       "have now?",
                                       p.name, a, item, p.he, b, c, p.name == q.name ? "a friend" : q.name, item,
                                       p.name),
                       a + b - c};
      },
      // boxes of items, minus some
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        const std::string& item = r.Pick(kItems);
        int64_t per = r.Int(3, 12), boxes = r.Int(2, 9), lost = r.Int(1, per);
        return Problem{absl::StrFormat("A box holds %d %s. %s buys %d boxes and then loses %d %s. How many %s does "
                                       "%s have?",
                                       per, item, p.name, boxes, lost, item, item, p.name),
                       per * boxes - lost};
      },
      // daily rate plus an extra day
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        int64_t a = r.Int(4, 25), days = r.Int(2, 7), extra = r.Int(5, 40);
        return Problem{absl::StrFormat("%s reads %d pages every day for %d days and then %d pages on the next day. "
                                       "How many pages does %s read in total?",
                                       p.name, a, days, extra, p.name),
                       a * days + extra};
      },
      // wage minus spending
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        int64_t wage = r.Int(5, 20), hours = r.Int(2, 8), spent = r.Int(1, wage * hours - 1);
        return Problem{absl::StrFormat("%s earns %d dollars per hour and works for %d hours. Then %s spends %d "
                                       "dollars on lunch. How many dollars does %s have left?",
                                       p.name, wage, hours, absl::AsciiStrToLower(p.he), spent, p.name),
                       wage * hours - spent};
      },
      // groups, then items per group
      [](Rng& r) {
        int64_t size = r.Int(2, 6), groups = r.Int(3, 9), each = r.Int(2, 8);
        return Problem{absl::StrFormat("There are %d students in a class. The teacher puts them in groups of %d and "
                                       "gives each group %d pencils. How many pencils does the teacher give out?",
                                       size * groups, size, each),
                       groups * each};
      },
      // times as many, together
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        const Person& q = r.Pick(kPeople);
        const std::string& item = r.Pick(kItems);
        int64_t a = r.Int(2, 15), k = r.Int(2, 5);
        std::string other = p.name == q.name ? "Alex" : q.name;
        return Problem{absl::StrFormat("%s has %d %s. %s has %d times as many %s as %s. How many %s do they have "
                                       "together?",
                                       p.name, a, item, other, k, item, p.name, item),
                       a + a * k};
      },
      // change from a bill
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        int64_t price = r.Int(2, 9), count = r.Int(2, 6);
        int64_t bill = price * count <= 20 ? 20 : (price * count <= 50 ? 50 : 100);
        return Problem{absl::StrFormat("A shop sells pens for %d dollars each. %s buys %d pens and pays with a "
                                       "%d-dollar bill. How many dollars of change does %s get?",
                                       price, p.name, count, bill, absl::AsciiStrToLower(p.he)),
                       bill - price * count};
      },
      // half, then more
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        const std::string& item = r.Pick(kItems);
        int64_t a = 2 * r.Int(4, 30), more = r.Int(1, 20);
        return Problem{absl::StrFormat("%s had %d %s. %s gave half of them to a friend and then got %d more. How "
                                       "many %s does %s have now?",
                                       p.name, a, item, p.he, more, item, p.name),
                       a / 2 + more};
      },
      // two purchases
      [](Rng& r) {
        const Person& p = r.Pick(kPeople);
        int64_t n1 = r.Int(2, 6), c1 = r.Int(2, 9), n2 = r.Int(2, 6), c2 = r.Int(2, 9);
        return Problem{absl::StrFormat("%s buys %d notebooks at %d dollars each and %d pens at %d dollars each. How "
                                       "many dollars does %s spend in all?",
                                       p.name, n1, c1, n2, c2, absl::AsciiStrToLower(p.he)),
                       n1 * c1 + n2 * c2};
      },
      // rows of chairs, some empty
      [](Rng& r) {
        int64_t rows = r.Int(3, 10), per = r.Int(4, 12), empty = r.Int(1, per * rows / 2);
        return Problem{absl::StrFormat("A hall has %d rows of chairs with %d chairs in each row. %d chairs are "
                                       "empty. How many chairs are taken?",
                                       rows, per, empty),
                       rows * per - empty};
      },
  };
  return templates;
}

}  // namespace

std::vector<Example> GenerateMath(uint64_t seed, size_t count) {
  Rng rng(seed);
  std::vector<Example> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const bool one_step = rng.Int(0, 2) < 2;
    const MathTemplate& t = rng.Pick(one_step ? OneStepTemplates() : TwoStepTemplates());
    Problem p = t(rng);
    out.push_back({absl::StrCat("math-", seed, "-", i), std::move(p.text), absl::StrCat(p.answer)});
  }
  return out;
}

}  // namespace t2::tasks
