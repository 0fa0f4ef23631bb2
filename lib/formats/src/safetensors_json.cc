#include "safetensors_json.h"

#include <exception>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "t2/common/status.h"

namespace t2::formats::internal {
namespace {

using json = nlohmann::json;

// A SAX pass that builds nothing: it only tracks the keys of each open object and the
// nesting depth, and stops the parse at the first duplicate, excess depth or syntax error.
class StrictChecker final : public nlohmann::json_sax<json> {
 public:
  explicit StrictChecker(int max_depth) : max_depth_(max_depth) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }

  bool start_object(std::size_t) override { return Push(/*is_object=*/true); }
  bool end_object() override { return Pop(); }
  bool start_array(std::size_t) override { return Push(/*is_object=*/false); }
  bool end_array() override { return Pop(); }

  bool key(string_t& key) override {
    if (scopes_.empty() || !scopes_.back().is_object) return true;
    if (!scopes_.back().keys.insert(key).second) {
      error_ = absl::StrCat("duplicate key \"", key, "\"");
      return false;
    }
    return true;
  }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_ = absl::StrCat("syntax error at byte ", position, ": ", ex.what());
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  struct Scope {
    bool is_object = false;
    std::set<std::string> keys;
  };

  bool Push(bool is_object) {
    if (static_cast<int>(scopes_.size()) >= max_depth_) {
      error_ = absl::StrCat("nesting deeper than ", max_depth_, " levels");
      return false;
    }
    scopes_.push_back(Scope{is_object, {}});
    return true;
  }
  bool Pop() {
    if (!scopes_.empty()) scopes_.pop_back();
    return true;
  }

  int max_depth_;
  std::vector<Scope> scopes_;
  std::string error_;
};

}  // namespace

absl::StatusOr<json> ParseStrictJson(std::string_view text, std::string_view what, int max_depth) {
  // nlohmann reports errors through exceptions in a few paths (and allocation can throw);
  // none may escape into callers that are built to return Status.
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore what follows;
  // JSON allows no raw NUL anywhere, so reject it as the Rust reference does.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(AsAbsl(what), ": syntax error at byte ", nul, ": NUL byte"));
  }
  try {
    StrictChecker checker(max_depth);
    bool ok = json::sax_parse(text.begin(), text.end(), &checker, json::input_format_t::json,
                              /*strict=*/true);
    if (!ok) {
      std::string error = checker.error().empty() ? "invalid JSON" : checker.error();
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(what), ": ", error));
    }
    json parsed = json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                              /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat(AsAbsl(what), ": invalid JSON"));
    }
    return parsed;
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(AsAbsl(what), ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(what), ": ", e.what()));
  } catch (...) {
    return absl::InvalidArgumentError(absl::StrCat(AsAbsl(what), ": unparseable JSON"));
  }
}

}  // namespace t2::formats::internal
