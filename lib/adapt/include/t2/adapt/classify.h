// The first pass of Transformer² (SVF.md §3): ask a model which kind of task a request is and
// read its answer. Two ways to read it:
//   - generate: the model answers the classification prompt and the last \boxed{...} in its
//     text is the category (the paper's way);
//   - label scoring: the log-likelihood of each "\boxed{<category>}" completion after the same
//     prompt is compared, which needs one batched prefill instead of a decode loop.
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace t2::adapt {

// The categories the first pass chooses from, in the order label scoring reports them and
// breaks ties. "other" means no expert: the second pass runs the base model.
inline constexpr std::array<std::string_view, 4> kCategories = {"code", "math", "reasoning",
                                                                "other"};
inline constexpr std::string_view kOtherCategory = "other";

// The user message that asks a model to classify `request` (the text of the request being
// served). The model is told to answer with \boxed{category}.
std::string ClassificationPrompt(std::string_view request);

// The contents of the last complete \boxed{...} in `text` (braces inside are balanced, e.g.
// "\boxed{\text{math}}" gives "\text{math}"); nullopt when there is none. An unclosed box
// (an answer cut off by the token limit) does not count.
std::optional<std::string> LastBoxed(std::string_view text);

// Maps a label to a known category, ignoring case, surrounding whitespace, quotes, a final
// period and one \text{...} / \textbf{...} / \mathrm{...} wrapper. Anything else is "other".
std::string NormalizeCategory(std::string_view label);

// The category a generated classification answer names: NormalizeCategory(LastBoxed(text)),
// or "other" when the text has no box.
std::string CategoryFromGenerated(std::string_view text);

// The completions label scoring compares, one per kCategories entry, in that order.
std::vector<std::string> LabelCompletions();

// Index of the largest value; ties go to the first. Requires a non-empty span.
size_t ArgMax(std::span<const double> values);

}  // namespace t2::adapt
