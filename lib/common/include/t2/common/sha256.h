// SHA-256 (OpenSSL's implementation) for content addresses and model fingerprints.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace t2 {

// Incremental hashing: Update() any number of times, then HexDigest() once.
// Not thread-safe; cheap to create.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::span<const uint8_t> bytes);
  void Update(std::string_view text);
  // 64 lowercase hex characters. The object must not be used afterwards.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so callers do not include OpenSSL headers
};

std::string Sha256Hex(std::span<const uint8_t> bytes);
std::string Sha256Hex(std::string_view text);

}  // namespace t2
