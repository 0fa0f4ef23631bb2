// t2 token and t2 certs: the credentials a secured stack needs (README, Security).
//   t2 token: a new bearer token in a file only its owner can read, and the auth-file entry
//             that grants it roles (only the token's hash).
//   t2 certs: a throwaway CA and certificates signed by it, for a test or a small deployment
//             that has no CA of its own.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "commands.h"
#include "t2/common/flags.h"
#include "t2/rpc/auth.h"
#include "t2/rpc/throwaway_pki.h"

namespace t2::cli {
namespace {

constexpr const char* kTokenUsage =
    R"(usage: t2 token --identity NAME --roles R[,R...] --token-file FILE [--auth-file FILE]
  Makes a new random bearer token and writes it to --token-file (created with mode 0600;
  an existing file is not overwritten). Prints the auth-file entry that grants it the roles,
  and appends it to --auth-file when given (servers re-read that file within a second).
  Roles: generate, adapt, publish, admin, read (README, Security, says which RPC needs which).
  Clients send the token with --token-file FILE.
)";

constexpr const char* kCertsUsage =
    R"(usage: t2 certs --out DIR --name NAME [--name NAME ...] [--host H ...] [--days N]
  Writes a throwaway CA (DIR/ca.pem; its key is never written) and, per --name, a certificate
  and key (DIR/NAME.pem, DIR/NAME.key, mode 0600) valid for serving and for calling as NAME:
  the common name an auth file's `cert NAME ROLES` entry matches. Each certificate is valid
  for NAME, localhost, 127.0.0.1, ::1 and every --host (a Kubernetes Service's DNS name, say).
  --days N   validity (default 30)
)";

}  // namespace

int RunToken(const std::vector<std::string>& args) {
  auto flags = Flags::Parse(args, {.value_flags = {"identity", "roles", "token-file", "auth-file"},
                                   .bool_flags = {"help"}});
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 token: " << message << "\n" << kTokenUsage;
    return 2;
  };
  if (!flags.ok()) return usage_error(flags.status().message());
  if (flags->Has("help")) {
    std::cout << kTokenUsage;
    return 0;
  }
  const std::string identity = flags->Get("identity", ""), roles = flags->Get("roles", "");
  const std::string token_file = flags->Get("token-file", "");
  if (identity.empty() || roles.empty() || token_file.empty()) {
    return usage_error("--identity, --roles and --token-file are required");
  }
  const std::string token = rpc::NewToken();
  const std::string entry =
      absl::StrCat("token ", rpc::TokenHash(token), " ", identity, " ", roles);
  // The entry is checked before anything is written, with the parser servers use.
  if (auto parsed = rpc::ParseAuthFile(entry); !parsed.ok())
    return usage_error(parsed.status().message());

  const int fd = ::open(token_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::cerr << "t2 token: cannot create " << token_file << " (it must not exist yet)\n";
    return 1;
  }
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!written) {
    std::cerr << "t2 token: cannot write " << token_file << "\n";
    return 1;
  }
  if (flags->Has("auth-file")) {
    std::ofstream auth(flags->Get("auth-file", ""), std::ios::app);
    auth << entry << "\n";
    if (!auth.flush()) {
      std::cerr << "t2 token: cannot append to " << flags->Get("auth-file", "") << "\n";
      return 1;
    }
  }
  std::cout << entry << "\n";
  return 0;
}

int RunCerts(const std::vector<std::string>& args) {
  auto flags =
      Flags::Parse(args, {.value_flags = {"out", "name", "host", "days"}, .bool_flags = {"help"}});
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 certs: " << message << "\n" << kCertsUsage;
    return 2;
  };
  if (!flags.ok()) return usage_error(flags.status().message());
  if (flags->Has("help")) {
    std::cout << kCertsUsage;
    return 0;
  }
  if (!flags->Has("out") || flags->GetAll("name").empty())
    return usage_error("--out and --name are required");
  auto days = flags->GetInt("days", 30, 1, 3650);
  if (!days.ok()) return usage_error(days.status().message());
  rpc::PkiOptions options{.names = flags->GetAll("name"),
                          .hosts = flags->GetAll("host"),
                          .valid_days = static_cast<int>(*days)};
  if (absl::Status made = rpc::WriteThrowawayPki(flags->Get("out", ""), options); !made.ok()) {
    std::cerr << "t2 certs: " << made.message() << "\n";
    return absl::IsInvalidArgument(made) ? 2 : 1;
  }
  std::cout << "wrote " << flags->Get("out", "") << "/ca.pem and "
            << absl::StrJoin(options.names, ", ") << " (.pem, .key)\n";
  return 0;
}

}  // namespace t2::cli
