// A throwaway certificate authority and certificates signed by it (OpenSSL, EC P-256), for
// `t2 up`'s local stack, `t2 certs` and the tests: TLS without a real CA. The CA's private key
// is never written, so nothing else can ever be signed by it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace t2::rpc {

struct PkiOptions {
  // One certificate per name: <dir>/<name>.pem and <dir>/<name>.key (mode 0600). The name is
  // the certificate's common name (the identity an auth file's `cert` entry matches) and one
  // of its DNS names.
  std::vector<std::string> names;
  // Further DNS names or IP addresses every certificate is valid for, besides localhost,
  // 127.0.0.1 and ::1 (a Kubernetes Service's name, say).
  std::vector<std::string> hosts;
  int valid_days = 30;
  std::string ca_name = "t2 throwaway CA";
};

// Writes <dir>/ca.pem and the certificates; creates dir.
absl::Status WriteThrowawayPki(const std::filesystem::path& dir, const PkiOptions& options);

}  // namespace t2::rpc
