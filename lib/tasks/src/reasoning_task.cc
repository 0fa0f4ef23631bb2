// Multiple-choice questions a careful reader can answer without outside knowledge:
// comparison chains, the largest or smallest number, syllogisms, days of the week.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rng.h"
#include "t2/tasks/builtin.h"

namespace t2::tasks {
namespace {

const std::vector<std::string> kNames = {"Anna", "Ben",  "Carl",  "Dina", "Eli",   "Fay",  "Gus",  "Hana",
                                         "Ivo",  "Jade", "Kofi",  "Lola", "Milo",  "Nora", "Otto", "Pia",
                                         "Ravi", "Sara", "Theo",  "Uma",  "Victor", "Wren", "Yara", "Zeke"};

struct Relation {
  const char* more;   // "is taller than"
  const char* most;   // "the tallest"
  const char* least;  // "the shortest"
};
const std::vector<Relation> kRelations = {
    {"is taller than", "the tallest", "the shortest"},
    {"is older than", "the oldest", "the youngest"},
    {"runs faster than", "the fastest runner", "the slowest runner"},
    {"is heavier than", "the heaviest", "the lightest"},
    {"arrived earlier than", "the first to arrive", "the last to arrive"},
};

struct Question {
  std::string stem;
  std::vector<std::string> options;
  size_t correct = 0;
};

// Lays out options A), B), ... after the stem, shuffled; returns the correct letter.
Example Render(Rng& r, Question q, const std::string& id) {
  std::vector<size_t> order(q.options.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  r.Shuffle(order);
  std::string text = q.stem;
  std::string answer;
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string letter(1, static_cast<char>('A' + i));
    absl::StrAppend(&text, "\n", letter, ") ", q.options[order[i]]);
    if (order[i] == q.correct) answer = letter;
  }
  return {id, text, answer};
}

using ReasoningTemplate = std::function<Question(Rng&)>;

// A data table (one entry per template), which is why it is long.
const std::vector<ReasoningTemplate>& ReasoningTemplates() {
  static const std::vector<ReasoningTemplate> templates = {
      // A > B > C (> D): who is the most / the least?
      [](Rng& r) {
        const size_t n = static_cast<size_t>(r.Int(3, 4));
        std::vector<std::string> people = r.Sample(kNames, n);  // people[0] ranks highest
        const Relation& rel = r.Pick(kRelations);
        std::vector<std::string> facts;
        for (size_t i = 0; i + 1 < n; ++i)
          facts.push_back(absl::StrCat(people[i], " ", rel.more, " ", people[i + 1], "."));
        r.Shuffle(facts);
        const bool most = r.Int(0, 1) == 0;
        Question q;
        q.stem = absl::StrCat(absl::StrJoin(facts, " "), " Who is ", most ? rel.most : rel.least, "?");
        q.options = people;
        q.correct = most ? 0 : n - 1;
        return q;
      },
      // the largest / smallest of four numbers
      [](Rng& r) {
        std::vector<int64_t> values;
        while (values.size() < 4) {
          int64_t v = r.Int(10, 999);
          if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
        }
        const bool largest = r.Int(0, 1) == 0;
        Question q;
        q.stem = absl::StrCat("Which number is the ", largest ? "largest" : "smallest", "?");
        size_t best = 0;
        for (size_t i = 0; i < values.size(); ++i) {
          q.options.push_back(absl::StrCat(values[i]));
          if (largest ? values[i] > values[best] : values[i] < values[best]) best = i;
        }
        q.correct = best;
        return q;
      },
      // syllogisms: all / no / some
      [](Rng& r) {
        struct Kind {
          const char* group;  // "birds"
          const char* one;    // "a bird"
        };
        static const std::vector<Kind> kinds = {{"birds", "a bird"},       {"cats", "a cat"},
                                                {"trees", "a tree"},       {"robots", "a robot"},
                                                {"painters", "a painter"}, {"doctors", "a doctor"},
                                                {"boats", "a boat"},       {"students", "a student"}};
        static const std::vector<std::pair<const char*, const char*>> traits = {
            {"can swim", "swim"},           {"like music", "like music"}, {"are blue", "is blue"},
            {"are quiet", "is quiet"},      {"can fly", "fly"},           {"have wheels", "has wheels"},
            {"are very old", "is very old"}, {"sleep at night", "sleep at night"}};
        const Kind& k = r.Pick(kinds);
        const auto& t = r.Pick(traits);
        const std::string& name = r.Pick(kNames);
        const int form = static_cast<int>(r.Int(0, 2));
        const char* quantifier = form == 0 ? "All" : (form == 1 ? "No" : "Some");
        // "can swim" asks "Can Nora swim?"; "are blue" asks "Is Nora blue?".
        std::string trait = t.first;
        std::string ask;
        if (trait.rfind("can ", 0) == 0) {
          ask = absl::StrCat("Can ", name, " ", t.second, "?");
        } else if (trait.rfind("are ", 0) == 0) {
          ask = absl::StrCat("Is ", name, " ", std::string(t.second).substr(3), "?");
        } else {
          ask = absl::StrCat("Does ", name, " ", t.second == std::string("has wheels") ? "have wheels" : t.second, "?");
        }
        Question q;
        q.stem = absl::StrCat(quantifier, " ", k.group, " ", trait, ". ", name, " is ", k.one, ". ", ask);
        q.options = {"Yes", "No", "It cannot be known"};
        q.correct = static_cast<size_t>(form);
        return q;
      },
      // days of the week
      [](Rng& r) {
        static const std::vector<std::string> days = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                                      "Friday", "Saturday", "Sunday"};
        const int64_t today = r.Int(0, 6), shift = r.Int(1, 10);
        const bool ahead = r.Int(0, 1) == 0;
        const int64_t answer = ((today + (ahead ? shift : -shift)) % 7 + 7) % 7;
        Question q;
        q.stem = ahead ? absl::StrCat("Today is ", days[today], ". What day of the week will it be in ", shift,
                                      shift == 1 ? " day?" : " days?")
                       : absl::StrCat("Today is ", days[today], ". What day of the week was it ", shift,
                                      shift == 1 ? " day ago?" : " days ago?");
        std::vector<int64_t> picks = {answer};
        while (picks.size() < 4) {
          int64_t d = r.Int(0, 6);
          if (std::find(picks.begin(), picks.end(), d) == picks.end()) picks.push_back(d);
        }
        for (int64_t d : picks) q.options.push_back(days[d]);
        q.correct = 0;
        return q;
      },
      // order of events
      [](Rng& r) {
        static const std::vector<std::string> events = {"breakfast", "a walk", "a swim", "lunch", "a nap",
                                                        "homework",  "a call", "dinner", "a bath", "reading"};
        std::vector<std::string> e = r.Sample(events, 3);  // e[0] happened first
        const std::string& name = r.Pick(kNames);
        std::vector<std::string> facts = {absl::StrCat(name, " had ", e[0], " before ", e[1], "."),
                                          absl::StrCat(name, " had ", e[2], " after ", e[1], ".")};
        r.Shuffle(facts);
        const bool first = r.Int(0, 1) == 0;
        Question q;
        q.stem = absl::StrCat(facts[0], " ", facts[1], " What did ", name, " have ", first ? "first" : "last", "?");
        q.options = e;
        q.correct = first ? 0 : 2;
        return q;
      },
  };
  return templates;
}

}  // namespace

std::vector<Example> GenerateReasoning(uint64_t seed, size_t count) {
  Rng rng(seed);
  std::vector<Example> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Question q = rng.Pick(ReasoningTemplates())(rng);
    out.push_back(Render(rng, std::move(q), absl::StrCat("reasoning-", seed, "-", i)));
  }
  return out;
}

}  // namespace t2::tasks
