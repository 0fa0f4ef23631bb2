// Who may call what: bearer tokens and client-certificate identities mapped to roles, and the
// role each RPC needs. Checked by gRPC before a call reaches its handler
// (AuthMetadataProcessor), so no handler can forget it.
//
// The auth file, one entry per line ('#' starts a comment):
//   token sha256:<64 hex digits of SHA-256(token)> <identity> <role>[,<role>...]
//   cert  <certificate common name>                           <role>[,<role>...]
// Only token hashes are stored, so the file reveals no credential. `t2 token` makes entries.
#pragma once

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/server_context.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace t2::rpc {

// The roles, in the order the README's table lists them.
inline constexpr const char* kRoles[] = {"generate", "adapt", "publish", "admin", "read"};

// Every t2.v1 RPC ("/t2.v1.Registry/PublishExpert") and the roles that may call it (any one
// suffices). Methods not listed are refused, except the open ones below.
const std::map<std::string, std::set<std::string>>& MethodRoles();
// Health checks and server reflection: anyone, credentials or not.
bool IsOpenMethod(absl::string_view method);

struct Caller {
  std::string identity;
  std::set<std::string> roles;
};

struct AuthTable {
  std::map<std::string, Caller> token_hashes;  // hex SHA-256 of the token -> caller
  std::map<std::string, Caller> certificates;  // certificate common name -> caller
};

// InvalidArgumentError naming the line for a malformed entry, an unknown role or a duplicate.
absl::StatusOr<AuthTable> ParseAuthFile(absl::string_view text);
absl::StatusOr<AuthTable> LoadAuthFile(const std::filesystem::path& path);

// The decision for one call. `bearer` is the value of the authorization header ("" if none),
// `certificate_name` the verified client certificate's common name ("" if none).
// UNAUTHENTICATED: no credential, or a token not in the table. PERMISSION_DENIED: a known
// caller without a role the method needs, or an unknown method. Never says the token.
absl::StatusOr<Caller> Authorize(const AuthTable& table, absl::string_view method,
                                 absl::string_view bearer, absl::string_view certificate_name);

// The auth file, re-read when its modification time changes (checked at most once a second),
// so tokens can be added and revoked without a restart; a file that no longer parses is
// logged and the previous table kept.
class AuthFile {
 public:
  static absl::StatusOr<std::shared_ptr<AuthFile>> Open(const std::filesystem::path& path);
  std::shared_ptr<const AuthTable> Current();

 private:
  AuthFile(std::filesystem::path path, AuthTable table, std::filesystem::file_time_type mtime);
  const std::filesystem::path path_;
  std::mutex mu_;
  std::shared_ptr<const AuthTable> table_;
  std::filesystem::file_time_type mtime_;
  std::chrono::steady_clock::time_point next_check_;
};

// The processor gRPC runs on every call of a server with secure (TLS or loopback) credentials.
// It records the caller's identity on the call (kCallerIdentityProperty).
std::shared_ptr<grpc::AuthMetadataProcessor> MakeAuthProcessor(std::shared_ptr<AuthFile> file);

// Who is calling, for handlers that record it: the identity the auth file gave the caller's
// token or certificate; without an auth file, a verified client certificate's common name;
// otherwise "".
inline constexpr char kCallerIdentityProperty[] = "t2_identity";
std::string CallerIdentity(const grpc::ServerContextBase& context);

// A new random token (32 bytes, URL-safe base64) and its auth-file hash ("sha256:<hex>").
std::string NewToken();
std::string TokenHash(absl::string_view token);

}  // namespace t2::rpc
