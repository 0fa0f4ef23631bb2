#include "t2/rpc/throwaway_pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace t2::rpc {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(std::FILE* p) const { std::fclose(p); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

absl::Status OpenSslError(const std::string& what) {
  return absl::InternalError(absl::StrCat("OpenSSL: ", what));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Owned<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("extension ", OBJ_nid2sn(nid), " = ", value));
  }
  return absl::OkStatus();
}

// A certificate for `key` named `name`, signed by (issuer, issuer_key); self-signed when issuer
// is null.
absl::StatusOr<Owned<X509>> MakeCertificate(EVP_PKEY* key, const std::string& name, X509* issuer,
                                            EVP_PKEY* issuer_key, bool is_ca,
                                            const std::string& subject_alt_names, int valid_days) {
  Owned<X509> cert(X509_new());
  if (cert == nullptr) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  Owned<BIGNUM> serial(BN_new());
  BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()));
  // Valid from an hour ago, so that a peer whose clock is slightly behind accepts it.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), int64_t{valid_days} * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer == nullptr ? subject : X509_get_subject_name(issuer));
  X509* signer = issuer == nullptr ? cert.get() : issuer;
  if (is_ca) {
    if (auto s =
            AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        !s.ok())
      return s;
    if (auto s = AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
        !s.ok())
      return s;
  } else {
    if (auto s = AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        !s.ok())
      return s;
    if (auto s = AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
        !s.ok())
      return s;
    // One certificate per service, used both to serve and to call other services.
    if (auto s = AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
        !s.ok())
      return s;
    if (auto s = AddExtension(cert.get(), signer, NID_subject_alt_name, subject_alt_names); !s.ok())
      return s;
  }
  if (auto s = AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"); !s.ok())
    return s;
  if (X509_sign(cert.get(), issuer_key == nullptr ? key : issuer_key, EVP_sha256()) == 0) {
    return OpenSslError(absl::StrCat("signing the certificate for ", name));
  }
  return cert;
}

absl::Status WritePem(const std::filesystem::path& path, X509* cert, EVP_PKEY* key) {
  // Keys are created 0600 from the start: never readable by others, not even briefly.
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, key != nullptr ? 0600 : 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  Owned<std::FILE> file(fdopen(fd, "w"));
  if (file == nullptr) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  }
  const bool ok = key != nullptr ? PEM_write_PrivateKey(file.get(), key, nullptr, nullptr, 0,
                                                        nullptr, nullptr) == 1
                                 : PEM_write_X509(file.get(), cert) == 1;
  if (!ok || std::fflush(file.get()) != 0)
    return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

std::string AltNameEntry(const std::string& host) {
  unsigned char buffer[16];
  const bool ip = inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
                  inet_pton(AF_INET6, host.c_str(), buffer) == 1;
  return absl::StrCat(ip ? "IP:" : "DNS:", host);
}

}  // namespace

absl::Status WriteThrowawayPki(const std::filesystem::path& dir, const PkiOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  Owned<EVP_PKEY> ca_key(EVP_EC_gen("P-256"));
  if (ca_key == nullptr) return OpenSslError("generating the CA key");
  auto ca = MakeCertificate(ca_key.get(), options.ca_name, nullptr, nullptr, true, "",
                            options.valid_days);
  if (!ca.ok()) return ca.status();
  if (auto s = WritePem(dir / "ca.pem", ca->get(), nullptr); !s.ok()) return s;
  for (const std::string& name : options.names) {
    if (name.empty() || name.find_first_of("/ \t\n,") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("certificate name '", name, "' must be one word"));
    }
    std::vector<std::string> alt_names = {AltNameEntry(name), "DNS:localhost", "IP:127.0.0.1",
                                          "IP:::1"};
    for (const std::string& host : options.hosts) alt_names.push_back(AltNameEntry(host));
    Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
    if (key == nullptr) return OpenSslError("generating a key");
    auto cert = MakeCertificate(key.get(), name, ca->get(), ca_key.get(), false,
                                absl::StrJoin(alt_names, ","), options.valid_days);
    if (!cert.ok()) return cert.status();
    if (auto s = WritePem(dir / (name + ".key"), nullptr, key.get()); !s.ok()) return s;
    if (auto s = WritePem(dir / (name + ".pem"), cert->get(), nullptr); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace t2::rpc
