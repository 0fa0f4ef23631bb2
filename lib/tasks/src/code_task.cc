// Short Python snippets and exactly what they print. The outputs are computed here from the
// same values the snippet is written with; tests/tasks runs every snippet through CPython
// and compares.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "rng.h"
#include "t2/tasks/builtin.h"

namespace t2::tasks {
namespace {

const std::vector<std::string> kWords = {"apple", "river", "python", "table", "garden", "rocket",
                                         "pencil", "window", "orange", "planet", "silver", "button"};
const std::vector<std::string> kVars = {"x", "a", "n", "k", "m", "value", "count", "total"};

struct Snippet {
  std::string code;
  std::string output;  // what print writes, without the final newline
};

// Python's floor division and modulo for a positive divisor.
int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

using CodeTemplate = std::function<Snippet(Rng&)>;

// A data table (one entry per template), which is why it is long.
const std::vector<CodeTemplate>& CodeTemplates() {
  static const std::vector<CodeTemplate> templates = {
      // One step: a literal, a variable, one operation.
      [](Rng& r) {
        int64_t a = r.Int(0, 99);
        return Snippet{absl::StrCat("print(", a, ")"), absl::StrCat(a)};
      },
      [](Rng& r) {
        const std::string& v = r.Pick(kVars);
        int64_t a = r.Int(0, 99);
        return Snippet{absl::StrCat(v, " = ", a, "\nprint(", v, ")"), absl::StrCat(a)};
      },
      [](Rng& r) {
        const std::string& w = r.Pick(kWords);
        return Snippet{absl::StrCat("print(\"", w, "\")"), w};
      },
      [](Rng& r) {
        int64_t a = r.Int(1, 20), b = r.Int(1, 20);
        if (r.Int(0, 1) == 0)
          return Snippet{absl::StrCat("print(", a, " + ", b, ")"), absl::StrCat(a + b)};
        return Snippet{absl::StrCat("print(", a, " * ", b, ")"), absl::StrCat(a * b)};
      },
      [](Rng& r) {
        const std::string& v = r.Pick(kVars);
        int64_t a = r.Int(1, 30), b = r.Int(1, 9);
        return Snippet{absl::StrCat(v, " = ", a, "\n", v, " = ", v, " + ", b, "\nprint(", v, ")"), absl::StrCat(a + b)};
      },
      [](Rng& r) {
        const std::string& w = r.Pick(kWords);
        return Snippet{absl::StrCat("print(len(\"", w, "\"))"), absl::StrCat(w.size())};
      },
      [](Rng& r) {
        int64_t a = r.Int(1, 50), b = r.Int(1, 50);
        return Snippet{absl::StrCat("print(", a, " > ", b, ")"), a > b ? "True" : "False"};
      },
      // Several steps: two variables and an expression
      [](Rng& r) {
        std::vector<std::string> v = r.Sample(kVars, 2);
        int64_t a = r.Int(2, 12), b = r.Int(2, 12), c = r.Int(1, 20);
        const int form = static_cast<int>(r.Int(0, 2));
        std::string expr;
        int64_t out = 0;
        if (form == 0) {
          expr = absl::StrCat(v[0], " * ", v[1], " - ", c);
          out = a * b - c;
        }
        if (form == 1) {
          expr = absl::StrCat(v[0], " + ", v[1], " * ", c);
          out = a + b * c;
        }
        if (form == 2) {
          expr = absl::StrCat("(", v[0], " + ", c, ") * ", v[1]);
          out = (a + c) * b;
        }
        return Snippet{absl::StrCat(v[0], " = ", a, "\n", v[1], " = ", b, "\nprint(", expr, ")"), absl::StrCat(out)};
      },
      // a loop that sums
      [](Rng& r) {
        int64_t n = r.Int(3, 8), k = r.Int(1, 5);
        int64_t total = 0;
        for (int64_t i = 0; i < n; ++i) total += i * k;
        return Snippet{absl::StrCat("total = 0\nfor i in range(", n, "):\n    total += i * ", k, "\nprint(total)"),
                       absl::StrCat(total)};
      },
      // strings: index, last character, length, upper case, reversed
      [](Rng& r) {
        const std::string& w = r.Pick(kWords);
        const int form = static_cast<int>(r.Int(0, 4));
        const int64_t i = r.Int(0, static_cast<int64_t>(w.size()) - 1);
        std::string expr, out;
        if (form == 0) {
          expr = absl::StrCat("s[", i, "]");
          out = std::string(1, w[i]);
        }
        if (form == 1) {
          expr = "s[-1]";
          out = std::string(1, w.back());
        }
        if (form == 2) {
          expr = "len(s)";
          out = absl::StrCat(w.size());
        }
        if (form == 3) {
          expr = "s.upper()";
          out = absl::AsciiStrToUpper(w);
        }
        if (form == 4) {
          expr = "s[::-1]";
          out = std::string(w.rbegin(), w.rend());
        }
        return Snippet{absl::StrCat("s = \"", w, "\"\nprint(", expr, ")"), out};
      },
      // lists: max, min, sum, an element, the smallest after sorting, the length
      [](Rng& r) {
        const size_t n = static_cast<size_t>(r.Int(3, 6));
        std::vector<int64_t> nums;
        for (size_t i = 0; i < n; ++i) nums.push_back(r.Int(1, 50));
        const int form = static_cast<int>(r.Int(0, 4));
        const int64_t i = r.Int(0, static_cast<int64_t>(n) - 1);
        std::string expr;
        int64_t out = 0;
        if (form == 0) {
          expr = "max(nums)";
          out = *std::max_element(nums.begin(), nums.end());
        }
        if (form == 1) {
          expr = "min(nums)";
          out = *std::min_element(nums.begin(), nums.end());
        }
        if (form == 2) {
          expr = "sum(nums)";
          for (int64_t x : nums) out += x;
        }
        if (form == 3) {
          expr = absl::StrCat("nums[", i, "]");
          out = nums[i];
        }
        if (form == 4) {
          std::vector<int64_t> sorted = nums;
          std::sort(sorted.begin(), sorted.end());
          expr = absl::StrCat("sorted(nums)[", i, "]");
          out = sorted[i];
        }
        return Snippet{absl::StrCat("nums = [", absl::StrJoin(nums, ", "), "]\nprint(", expr, ")"), absl::StrCat(out)};
      },
      // if / else
      [](Rng& r) {
        const std::string& v = r.Pick(kVars);
        int64_t a = r.Int(1, 30), b = r.Int(1, 30);
        static const std::vector<std::pair<std::string, std::string>> words = {
            {"big", "small"}, {"yes", "no"}, {"high", "low"}, {"up", "down"}};
        const auto& w = r.Pick(words);
        return Snippet{absl::StrCat(v, " = ", a, "\nif ", v, " > ", b, ":\n    print(\"", w.first, "\")\nelse:\n    print(\"",
                                    w.second, "\")"),
                       a > b ? w.first : w.second};
      },
      // string repetition and concatenation
      [](Rng& r) {
        if (r.Int(0, 1) == 0) {
          static const std::vector<std::string> parts = {"ab", "xo", "hi", "la", "z", "123"};
          const std::string& p = r.Pick(parts);
          int64_t k = r.Int(2, 4);
          std::string out;
          for (int64_t i = 0; i < k; ++i) out += p;
          return Snippet{absl::StrCat("print(\"", p, "\" * ", k, ")"), out};
        }
        std::vector<std::string> w = r.Sample(kWords, 2);
        return Snippet{absl::StrCat("a = \"", w[0], "\"\nb = \"", w[1], "\"\nprint(a + b)"), w[0] + w[1]};
      },
      // floor division and modulo
      [](Rng& r) {
        int64_t a = r.Int(10, 99), b = r.Int(2, 9);
        if (r.Int(0, 1) == 0)
          return Snippet{absl::StrCat("print(", a, " // ", b, ")"), absl::StrCat(FloorDiv(a, b))};
        return Snippet{absl::StrCat("print(", a, " % ", b, ")"), absl::StrCat(a - b * FloorDiv(a, b))};
      },
      // a function
      [](Rng& r) {
        int64_t k = r.Int(2, 9), c = r.Int(1, 15), a = r.Int(1, 12);
        return Snippet{absl::StrCat("def f(n):\n    return n * ", k, " + ", c, "\n\nprint(f(", a, "))"),
                       absl::StrCat(a * k + c)};
      },
      // a while loop that counts
      [](Rng& r) {
        int64_t a = r.Int(10, 60), b = r.Int(3, 9);
        int64_t n = a, count = 0;
        while (n > 0) {
          n -= b;
          ++count;
        }
        return Snippet{absl::StrCat("n = ", a, "\ncount = 0\nwhile n > 0:\n    n -= ", b, "\n    count += 1\nprint(count)"),
                       absl::StrCat(count)};
      },
      // building a list
      [](Rng& r) {
        int64_t n = r.Int(2, 5), k = r.Int(1, 4);
        std::vector<int64_t> items;
        for (int64_t i = 0; i < n; ++i) items.push_back(i * k);
        return Snippet{absl::StrCat("items = []\nfor i in range(", n, "):\n    items.append(i * ", k, ")\nprint(items)"),
                       absl::StrCat("[", absl::StrJoin(items, ", "), "]")};
      },
      // a dictionary lookup
      [](Rng& r) {
        std::vector<std::string> keys = r.Sample(kWords, 3);
        std::vector<int64_t> values = {r.Int(1, 20), r.Int(1, 20), r.Int(1, 20)};
        const size_t pick = static_cast<size_t>(r.Int(0, 2));
        int64_t add = r.Int(1, 9);
        std::vector<std::string> entries;
        for (size_t i = 0; i < 3; ++i)
          entries.push_back(absl::StrCat("\"", keys[i], "\": ", values[i]));
        return Snippet{absl::StrCat("d = {", absl::StrJoin(entries, ", "), "}\nprint(d[\"", keys[pick], "\"] + ", add, ")"),
                       absl::StrCat(values[pick] + add)};
      },
  };
  return templates;
}

}  // namespace

std::vector<Example> GenerateCode(uint64_t seed, size_t count) {
  Rng rng(seed);
  std::vector<Example> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Snippet s = rng.Pick(CodeTemplates())(rng);
    out.push_back({absl::StrCat("code-", seed, "-", i), std::move(s.code), std::move(s.output)});
  }
  return out;
}

}  // namespace t2::tasks
