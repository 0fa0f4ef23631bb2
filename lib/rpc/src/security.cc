#include "t2/rpc/security.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "t2/common/log.h"
#include "t2/rpc/auth.h"

namespace t2::rpc {

void AddSecurityFlags(CLI::App& app, Security& security, bool server) {
  CLI::App* group = app.add_option_group(
      "Transport security", server
                                ? "one of --tls-cert/--tls-key or --insecure-loopback is required"
                                : "one of --tls-ca/--tls-cert or --insecure-loopback is required");
  group
      ->add_option("--tls-cert", security.cert_file,
                   server
                       ? "this service's certificate chain (PEM), served to clients and shown to "
                         "the services it calls; re-read when it changes"
                       : "a client certificate (PEM), for servers that require mutual TLS")
      ->type_name("FILE");
  group->add_option("--tls-key", security.key_file, "the private key (PEM) of --tls-cert")
      ->type_name("FILE");
  group
      ->add_option(
          "--tls-ca", security.ca_file,
          server ? "CA bundle (PEM) that the services it calls, and client certificates, must "
                   "chain to (for the services it calls, default: the system's roots)"
                 : "CA bundle (PEM) the server's certificate must chain to (default: the "
                   "system's roots)")
      ->type_name("FILE");
  group
      ->add_option("--token-file", security.token_file,
                   server ? "bearer token sent to the services this one calls"
                          : "the bearer token to send (a file, so it shows in no process list)")
      ->type_name("FILE");
  group->add_flag("--insecure-loopback", security.insecure_loopback,
                  server ? "no TLS: serve and call plaintext, and accept only loopback peers"
                         : "plaintext to a server on this machine (127.0.0.1, ::1, localhost)");
  if (!server) return;
  group->add_flag("--require-client-cert", security.require_client_cert,
                  "refuse clients without a certificate from --tls-ca (mutual TLS)");
  group
      ->add_option("--auth-file", security.auth_file,
                   "tokens and certificate names with their roles (README, Security); without "
                   "it every caller may call everything")
      ->type_name("FILE");
  group
      ->add_option("--health-listen", security.health_listen,
                   "also answer grpc.health.v1 Check, and nothing else, in plaintext there "
                   "(Kubernetes' gRPC probes cannot speak TLS)")
      ->type_name("HOST:PORT");
}

namespace {

absl::Status CheckReadable(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--token-file: cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty() || token.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--token-file: ", path, " must hold one token on one line"));
  }
  return token;
}

}  // namespace

absl::Status CheckSecurity(const Security& s, bool server) {
  const bool tls = !s.cert_file.empty() || !s.key_file.empty() || !s.ca_file.empty();
  if (s.insecure_loopback && (tls || s.require_client_cert)) {
    return absl::InvalidArgumentError("--insecure-loopback cannot be combined with --tls-* flags");
  }
  if (s.cert_file.empty() != s.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!s.insecure_loopback) {
    if (server && s.cert_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert and --tls-key are required "
          "(or --insecure-loopback to serve plaintext to this machine only)");
    }
    if (!server && !tls) {
      return absl::InvalidArgumentError(
          "--tls-ca (or --tls-cert/--tls-key) is required "
          "(or --insecure-loopback for plaintext to a server on this machine)");
    }
  }
  if (s.require_client_cert && s.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--require-client-cert needs --tls-ca to verify client certificates");
  }
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"tls-cert", s.cert_file},
                                   {"tls-key", s.key_file},
                                   {"tls-ca", s.ca_file},
                                   {"auth-file", s.auth_file}}) {
    if (!path.empty()) {
      if (absl::Status readable = CheckReadable(flag, path); !readable.ok()) return readable;
    }
  }
  if (!s.token_file.empty()) {
    if (auto token = ReadToken(s.token_file); !token.ok()) return token.status();
  }
  return absl::OkStatus();
}

bool IsLoopbackAddress(const std::string& address) {
  std::string host = address.substr(0, address.rfind(':'));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]"))
    host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

std::shared_ptr<grpc::ServerCredentials> LoopbackServerCredentials() {
  return grpc::experimental::LocalServerCredentials(LOCAL_TCP);
}

std::shared_ptr<grpc::ChannelCredentials> LoopbackChannelCredentials() {
  return grpc::experimental::LocalCredentials(LOCAL_TCP);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const Security& security, const std::string& listen_address) {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (security.insecure_loopback) {
    if (!IsLoopbackAddress(listen_address)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--insecure-loopback accepts only loopback peers, so --listen ", listen_address,
          " would refuse every remote client; listen on 127.0.0.1 or use --tls-cert/--tls-key"));
    }
    credentials = LoopbackServerCredentials();
  } else {
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
    if (security.ca_file.empty()) {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          security.key_file, security.cert_file, security.reload_seconds);
    } else {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          security.key_file, security.cert_file, security.ca_file, security.reload_seconds);
    }
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_identity_key_cert_pairs();
    if (!security.ca_file.empty()) {
      options.watch_root_certs();
      // Without --require-client-cert a client may come with a token instead; a certificate it
      // does present must still chain to the CA.
      options.set_cert_request_type(security.require_client_cert
                                        ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                        : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    } else {
      options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    }
    credentials = grpc::experimental::TlsServerCredentials(options);
    if (credentials == nullptr)
      return absl::InvalidArgumentError("cannot build TLS server credentials");
  }
  if (!security.auth_file.empty()) {
    auto file = AuthFile::Open(security.auth_file);
    if (!file.ok()) return file.status();
    credentials->SetAuthMetadataProcessor(MakeAuthProcessor(*file));
  } else {
    LogWarning("no --auth-file: every caller that reaches this server may call every method");
  }
  return credentials;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const Security& security) {
  std::shared_ptr<grpc::ChannelCredentials> channel;
  if (security.insecure_loopback) {
    channel = LoopbackChannelCredentials();
  } else {
    grpc::experimental::TlsChannelCredentialsOptions options;
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
    if (!security.cert_file.empty() && !security.ca_file.empty()) {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          security.key_file, security.cert_file, security.ca_file, security.reload_seconds);
    } else if (!security.cert_file.empty()) {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          security.key_file, security.cert_file, security.reload_seconds);
    } else if (!security.ca_file.empty()) {
      provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          security.ca_file, security.reload_seconds);
    }
    if (provider != nullptr) options.set_certificate_provider(provider);
    if (!security.ca_file.empty()) options.watch_root_certs();
    if (!security.cert_file.empty()) options.watch_identity_key_cert_pairs();
    options.set_verify_server_certs(true);
    channel = grpc::experimental::TlsCredentials(options);
    if (channel == nullptr)
      return absl::InvalidArgumentError("cannot build TLS channel credentials");
  }
  if (security.token_file.empty()) return channel;
  auto token = ReadToken(security.token_file);
  if (!token.ok()) return token.status();
  return grpc::CompositeChannelCredentials(channel, grpc::AccessTokenCredentials(*token));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(const Security& security,
                                                                 const std::string& target) {
  if (absl::Status checked = CheckSecurity(security, /*server=*/false); !checked.ok())
    return checked;
  auto credentials = MakeChannelCredentials(security);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxClientReceiveMessageBytes);
  return grpc::CreateCustomChannel(target, *credentials, args);
}

}  // namespace t2::rpc
