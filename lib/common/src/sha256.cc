#include "t2/common/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <cstdio>

namespace t2 {

namespace {
EVP_MD_CTX* Ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }
// OpenSSL's digest calls fail only on allocation failure or a broken library; there is no
// input that makes them fail, so treat it like an out-of-memory condition.
void Check(int ok) {
  if (ok != 1) {
    std::fputs("t2: OpenSSL SHA-256 failed\n", stderr);
    std::abort();
  }
}
}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  Check(ctx_ != nullptr);
  Check(EVP_DigestInit_ex(Ctx(ctx_), EVP_sha256(), nullptr));
}

Sha256::~Sha256() { EVP_MD_CTX_free(Ctx(ctx_)); }

void Sha256::Update(std::span<const uint8_t> bytes) {
  Check(EVP_DigestUpdate(Ctx(ctx_), bytes.data(), bytes.size()));
}

void Sha256::Update(std::string_view text) {
  Check(EVP_DigestUpdate(Ctx(ctx_), text.data(), text.size()));
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  Check(EVP_DigestFinal_ex(Ctx(ctx_), digest, &length));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

std::string Sha256Hex(std::span<const uint8_t> bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.HexDigest();
}

std::string Sha256Hex(std::string_view text) {
  Sha256 h;
  h.Update(text);
  return h.HexDigest();
}

}  // namespace t2
