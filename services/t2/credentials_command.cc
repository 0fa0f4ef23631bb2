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
#include "t2/common/command_line.h"
#include "t2/rpc/auth.h"
#include "t2/rpc/throwaway_pki.h"

namespace t2::cli {

namespace {

// Writes `token` to a new file only its owner can read; an existing file is never replaced.
// The exit code: 0, or 1 after saying why on stderr.
int WriteTokenFile(const std::string& path, const std::string& token) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::cerr << "t2 token: cannot create " << path << " (it must not exist yet)\n";
    return 1;
  }
  const std::string line = token + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!written) {
    std::cerr << "t2 token: cannot write " << path << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int RunToken(const std::vector<std::string>& args) {
  CommandLine command_line(
      "t2 token", "Makes a new random bearer token and the auth-file entry granting it roles.");
  std::string identity, roles, token_file, auth_file;
  command_line.add_option("--identity", identity, "who the token's holder is, to servers")
      ->type_name("NAME")
      ->required();
  command_line
      .add_option("--roles", roles,
                  "generate, adapt, publish, admin, read (README, Security, says which RPC "
                  "needs which)")
      ->type_name("R[,R...]")
      ->required();
  command_line
      .add_option("--token-file", token_file,
                  "the token is written here (created with mode 0600; an "
                  "existing file is not overwritten)")
      ->type_name("FILE")
      ->required();
  command_line
      .add_option("--auth-file", auth_file,
                  "also append the entry to this auth file (servers re-read it "
                  "within a second)")
      ->type_name("FILE");
  command_line.footer(
      "Prints the auth-file entry (it holds only the token's hash). Clients send the token with\n"
      "--token-file FILE.");
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  auto usage_error = [](absl::string_view message) {
    std::cerr << "t2 token: " << message << "\n";
    return 2;
  };
  if (identity.empty() || roles.empty() || token_file.empty()) {
    return usage_error("--identity, --roles and --token-file are required");
  }
  const std::string token = rpc::NewToken();
  const std::string entry =
      absl::StrCat("token ", rpc::TokenHash(token), " ", identity, " ", roles);
  // The entry is checked before anything is written, with the parser servers use.
  if (auto parsed = rpc::ParseAuthFile(entry); !parsed.ok())
    return usage_error(parsed.status().message());

  if (int exit_code = WriteTokenFile(token_file, token); exit_code != 0) return exit_code;
  if (!auth_file.empty()) {
    std::ofstream auth(auth_file, std::ios::app);
    auth << entry << "\n";
    if (!auth.flush()) {
      std::cerr << "t2 token: cannot append to " << auth_file << "\n";
      return 1;
    }
  }
  std::cout << entry << "\n";
  return 0;
}

int RunCerts(const std::vector<std::string>& args) {
  CommandLine command_line("t2 certs",
                           "Makes a throwaway CA and certificates signed by it, for TLS.");
  std::string out;
  rpc::PkiOptions options;
  command_line.add_option("--out", out, "the folder written")->type_name("DIR")->required();
  command_line
      .add_option("--name", options.names,
                  "a certificate's name: the common name an auth file's "
                  "`cert NAME ROLES` entry matches; repeatable")
      ->type_name("NAME")
      ->required();
  command_line
      .add_option("--host", options.hosts,
                  "another name every certificate is valid for (a Kubernetes "
                  "Service's DNS name, say); repeatable")
      ->type_name("H");
  command_line.add_option("--days", options.valid_days, "validity")
      ->type_name("N")
      ->transform(IntIn(1, 3650));
  command_line.footer(
      "Writes the CA (DIR/ca.pem; its key is never written) and, per --name, a certificate and "
      "key\n"
      "(DIR/NAME.pem, DIR/NAME.key, mode 0600) valid for serving and for calling as NAME, for "
      "NAME,\n"
      "localhost, 127.0.0.1, ::1 and every --host.");
  if (auto exit_code = command_line.Parse(args)) return *exit_code;
  if (absl::Status made = rpc::WriteThrowawayPki(out, options); !made.ok()) {
    std::cerr << "t2 certs: " << made.message() << "\n";
    return absl::IsInvalidArgument(made) ? 2 : 1;
  }
  std::cout << "wrote " << out << "/ca.pem and " << absl::StrJoin(options.names, ", ")
            << " (.pem, .key)\n";
  return 0;
}

}  // namespace t2::cli
