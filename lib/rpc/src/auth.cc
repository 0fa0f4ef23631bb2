#include "t2/rpc/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "t2/common/log.h"
#include "t2/common/sha256.h"

namespace t2::rpc {

const std::map<std::string, std::set<std::string>>& MethodRoles() {
  static const auto* const roles = new std::map<std::string, std::set<std::string>>{
      {"/t2.v1.Dispatcher/Generate", {"generate"}},
      {"/t2.v1.Dispatcher/GenerateStream", {"generate"}},
      {"/t2.v1.Dispatcher/Classify", {"generate"}},
      {"/t2.v1.Dispatcher/Adapt", {"adapt"}},
      {"/t2.v1.Worker/Generate", {"generate"}},
      {"/t2.v1.Worker/Score", {"generate"}},
      {"/t2.v1.Worker/Info", {"generate", "read"}},
      {"/t2.v1.Registry/PublishExpert", {"publish"}},
      {"/t2.v1.Registry/DeprecateExpert", {"publish"}},
      {"/t2.v1.Registry/SetAlias", {"publish"}},
      {"/t2.v1.Registry/DeleteAlias", {"publish"}},
      // Adapt stores the mixture it found, so the dispatcher's identity needs only `adapt`.
      {"/t2.v1.Registry/PutMixture", {"publish", "adapt"}},
      {"/t2.v1.Registry/DeleteMixture", {"admin"}},
      {"/t2.v1.Registry/RegisterBaseModel", {"admin"}},
      {"/t2.v1.Registry/GetExpert", {"read"}},
      {"/t2.v1.Registry/ResolveExpert", {"read"}},
      {"/t2.v1.Registry/ListExperts", {"read"}},
      {"/t2.v1.Registry/GetAlias", {"read"}},
      {"/t2.v1.Registry/ListAliases", {"read"}},
      {"/t2.v1.Registry/GetMixture", {"read"}},
      {"/t2.v1.Registry/ListMixtures", {"read"}},
      {"/t2.v1.Registry/Watch", {"read"}},
  };
  return *roles;
}

bool IsOpenMethod(absl::string_view method) {
  return absl::StartsWith(method, "/grpc.health.v1.Health/") ||
         absl::StartsWith(method, "/grpc.reflection.v1alpha.ServerReflection/") ||
         absl::StartsWith(method, "/grpc.reflection.v1.ServerReflection/");
}

namespace {

bool IsRole(absl::string_view role) {
  for (const char* known : kRoles) {
    if (role == known) return true;
  }
  return false;
}

absl::StatusOr<std::set<std::string>> ParseRoles(absl::string_view text, int line) {
  std::set<std::string> roles;
  for (absl::string_view role : absl::StrSplit(text, ',')) {
    if (!IsRole(role)) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth file line ", line, ": unknown role '", role,
                       "' (roles: ", absl::StrJoin(kRoles, ", "), ")"));
    }
    roles.insert(std::string(role));
  }
  return roles;
}

bool IsLowerHex(absl::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<AuthTable> ParseAuthFile(absl::string_view text) {
  AuthTable table;
  int number = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++number;
    absl::string_view line = raw.substr(0, raw.find('#'));
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    const auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("auth file line ", number, ": ", why));
    };
    if (fields[0] == "token") {
      if (fields.size() != 4) return bad("expected 'token sha256:<hex> <identity> <roles>'");
      absl::string_view hash = fields[1];
      if (!absl::ConsumePrefix(&hash, "sha256:") || hash.size() != 64 || !IsLowerHex(hash)) {
        return bad(
            "the token must be given as sha256:<64 lowercase hex digits> (t2 token makes it)");
      }
      auto roles = ParseRoles(fields[3], number);
      if (!roles.ok()) return roles.status();
      if (!table.token_hashes.emplace(std::string(hash), Caller{std::string(fields[2]), *roles})
               .second) {
        return bad("this token is listed twice");
      }
    } else if (fields[0] == "cert") {
      if (fields.size() != 3) return bad("expected 'cert <common name> <roles>'");
      auto roles = ParseRoles(fields[2], number);
      if (!roles.ok()) return roles.status();
      if (!table.certificates
               .emplace(std::string(fields[1]), Caller{std::string(fields[1]), *roles})
               .second) {
        return bad(absl::StrCat("certificate name '", fields[1], "' is listed twice"));
      }
    } else {
      return bad(absl::StrCat("an entry starts with 'token' or 'cert', not '", fields[0], "'"));
    }
  }
  return table;
}

absl::StatusOr<AuthTable> LoadAuthFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read auth file ", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  auto table = ParseAuthFile(text.str());
  if (!table.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", table.status().message()));
  }
  return table;
}

absl::StatusOr<Caller> Authorize(const AuthTable& table, absl::string_view method,
                                 absl::string_view bearer, absl::string_view certificate_name) {
  const Caller* caller = nullptr;
  if (!bearer.empty()) {
    absl::string_view token = bearer;
    if (!absl::ConsumePrefix(&token, "Bearer ") || token.empty()) {
      return absl::UnauthenticatedError("the authorization header must be 'Bearer <token>'");
    }
    // Compare the digest with every entry in constant time, so that neither the position of
    // a match nor the length of a common prefix shows in the answer's timing.
    const std::string digest = Sha256Hex(std::string_view(token.data(), token.size()));
    for (const auto& [hash, entry] : table.token_hashes) {
      if (CRYPTO_memcmp(hash.data(), digest.data(), digest.size()) == 0) caller = &entry;
    }
    if (caller == nullptr) return absl::UnauthenticatedError("the bearer token is not valid");
  } else if (!certificate_name.empty()) {
    auto it = table.certificates.find(std::string(certificate_name));
    if (it == table.certificates.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("certificate '", certificate_name, "' has no roles on this server"));
    }
    caller = &it->second;
  } else {
    return absl::UnauthenticatedError(
        "no credentials: send 'authorization: Bearer <token>' or a client certificate");
  }
  auto needed = MethodRoles().find(std::string(method));
  if (needed == MethodRoles().end()) {
    return absl::PermissionDeniedError(absl::StrCat("unknown method ", method));
  }
  for (const std::string& role : needed->second) {
    if (caller->roles.count(role) != 0) return *caller;
  }
  return absl::PermissionDeniedError(absl::StrCat("'", caller->identity, "' lacks the role ",
                                                  absl::StrJoin(needed->second, " or "), " that ",
                                                  method, " needs"));
}

AuthFile::AuthFile(std::filesystem::path path, AuthTable table,
                   std::filesystem::file_time_type mtime)
    : path_(std::move(path)),
      table_(std::make_shared<const AuthTable>(std::move(table))),
      mtime_(mtime),
      next_check_(std::chrono::steady_clock::now() + std::chrono::seconds(1)) {}

absl::StatusOr<std::shared_ptr<AuthFile>> AuthFile::Open(const std::filesystem::path& path) {
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read auth file ", path.string()));
  auto table = LoadAuthFile(path);
  if (!table.ok()) return table.status();
  return std::shared_ptr<AuthFile>(new AuthFile(path, std::move(*table), mtime));
}

std::shared_ptr<const AuthTable> AuthFile::Current() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return table_;
  next_check_ = now + std::chrono::seconds(1);
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(path_, ec);
  if (ec || mtime == mtime_) return table_;
  mtime_ = mtime;
  auto table = LoadAuthFile(path_);
  if (!table.ok()) {
    LogError(absl::StrCat("auth file changed but is not valid; keeping the previous one: ",
                          table.status().message()));
    return table_;
  }
  table_ = std::make_shared<const AuthTable>(std::move(*table));
  LogInfo(absl::StrCat("auth file ", path_.string(), " reloaded: ", table_->token_hashes.size(),
                       " token(s), ", table_->certificates.size(), " certificate name(s)"));
  return table_;
}

namespace {

class AuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit AuthProcessor(std::shared_ptr<AuthFile> file) : file_(std::move(file)) {}

  // Hashing a token and a map lookup: cheap enough for gRPC's own thread.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* /*response*/) override {
    absl::string_view method, bearer;
    for (const auto& [key, value] : metadata) {
      if (key == ":path") method = absl::string_view(value.data(), value.size());
      if (key == "authorization") bearer = absl::string_view(value.data(), value.size());
    }
    if (IsOpenMethod(method)) return grpc::Status::OK;
    std::string certificate_name;
    if (context != nullptr) {
      for (const grpc::string_ref& name : context->FindPropertyValues("x509_common_name")) {
        certificate_name.assign(name.data(), name.size());
      }
    }
    absl::StatusOr<Caller> caller = Authorize(*file_->Current(), method, bearer, certificate_name);
    if (!caller.ok()) {
      return grpc::Status(static_cast<grpc::StatusCode>(caller.status().code()),
                          std::string(caller.status().message()));
    }
    // Handlers (and anything they log) never see the token, only whose it is.
    if (!bearer.empty()) consumed->emplace("authorization", std::string(bearer));
    if (context != nullptr) context->AddProperty(kCallerIdentityProperty, caller->identity);
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<AuthFile> file_;
};

}  // namespace

std::string CallerIdentity(const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  for (const char* property : {kCallerIdentityProperty, "x509_common_name"}) {
    std::vector<grpc::string_ref> values = auth->FindPropertyValues(property);
    if (!values.empty()) return std::string(values.front().data(), values.front().size());
  }
  return "";
}

std::shared_ptr<grpc::AuthMetadataProcessor> MakeAuthProcessor(std::shared_ptr<AuthFile> file) {
  return std::make_shared<AuthProcessor>(std::move(file));
}

std::string NewToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    LogError("RAND_bytes failed; cannot make a token");
    std::abort();
  }
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string TokenHash(absl::string_view token) {
  return absl::StrCat("sha256:", Sha256Hex(std::string_view(token.data(), token.size())));
}

}  // namespace t2::rpc
