// SHA-256 against the FIPS 180-2 test vectors, and incremental == one-shot.
#include "t2/common/sha256.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace t2 {
namespace {

TEST(Sha256, Fips180Vectors) {
  EXPECT_EQ(Sha256Hex(std::string_view("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(std::string_view("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(std::string_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 million;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) million.Update(chunk);
  EXPECT_EQ(million.HexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  std::vector<uint8_t> bytes(10007);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 131 + 7);
  Sha256 h;
  h.Update(std::span(bytes).first(1));
  h.Update(std::span(bytes).subspan(1, 4096));
  h.Update(std::span(bytes).subspan(4097));
  EXPECT_EQ(h.HexDigest(), Sha256Hex(bytes));
}

}  // namespace
}  // namespace t2
