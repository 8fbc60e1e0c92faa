#include "tls/random.h"
#include "tls/secret.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace coap_edge::tls {
namespace {

std::vector<std::uint8_t> bytesOf(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

TEST(tlsHex, RoundTripsEveryByteValue) {
  std::vector<std::uint8_t> all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i);
  const std::string text = hexEncode(all);
  ASSERT_EQ(text.size(), 512u);
  EXPECT_EQ(text.substr(0, 8), "00010203");
  EXPECT_EQ(text.substr(504), "fcfdfeff");
  const auto back = hexDecode(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, all);
}

TEST(tlsHex, AcceptsUpperAndLowerCase) {
  const auto lower = hexDecode("deadbeef0a");
  const auto upper = hexDecode("DEADBEEF0A");
  ASSERT_TRUE(lower && upper);
  EXPECT_EQ(*lower, (std::vector<std::uint8_t>{0xde, 0xad, 0xbe, 0xef, 0x0a}));
  EXPECT_EQ(*lower, *upper);
}

TEST(tlsHex, EmptyIsEmpty) {
  EXPECT_EQ(hexEncode({}), "");
  const auto empty = hexDecode("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST(tlsHex, RejectsOddLengthAndNonHex) {
  EXPECT_FALSE(hexDecode("abc").has_value());
  EXPECT_FALSE(hexDecode("0g").has_value());
  EXPECT_FALSE(hexDecode("g0").has_value());
  EXPECT_FALSE(hexDecode("0x12").has_value());
  EXPECT_FALSE(hexDecode("12 34").has_value());
  EXPECT_FALSE(hexDecode(" 1234").has_value());
  EXPECT_FALSE(hexDecode(std::string("12\0" "4", 4)).has_value());
  // Every byte value that is not a hex digit is rejected, in both nibble positions.
  for (int c = 0; c < 256; ++c) {
    const bool is_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    const std::string hi{static_cast<char>(c), '0'};
    const std::string lo{'0', static_cast<char>(c)};
    EXPECT_EQ(hexDecode(hi).has_value(), is_hex) << "char " << c;
    EXPECT_EQ(hexDecode(lo).has_value(), is_hex) << "char " << c;
  }
}

TEST(tlsHex, DecodeSecret) {
  const auto secret = hexDecodeSecret("00ff10");
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ(bytesOf(secret->span()), (std::vector<std::uint8_t>{0x00, 0xff, 0x10}));
  EXPECT_FALSE(hexDecodeSecret("00f").has_value());
  EXPECT_FALSE(hexDecodeSecret("zz").has_value());
}

TEST(tlsBase64, MatchesRfc4648Vectors) {
  const auto enc = [](std::string_view s) {
    return base64Encode({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
  };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg==");
  EXPECT_EQ(enc("fo"), "Zm8=");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foob"), "Zm9vYg==");
  EXPECT_EQ(enc("fooba"), "Zm9vYmE=");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
}

TEST(tlsConstantTimeEqual, Semantics) {
  const std::array<std::uint8_t, 4> a{1, 2, 3, 4};
  const std::array<std::uint8_t, 4> same{1, 2, 3, 4};
  const std::array<std::uint8_t, 4> last_differs{1, 2, 3, 5};
  const std::array<std::uint8_t, 4> first_differs{0, 2, 3, 4};
  const std::array<std::uint8_t, 3> prefix{1, 2, 3};
  EXPECT_TRUE(constantTimeEqual(a, same));
  EXPECT_FALSE(constantTimeEqual(a, last_differs));
  EXPECT_FALSE(constantTimeEqual(a, first_differs));
  // A prefix with equal content but a different length is not equal, in either order.
  EXPECT_FALSE(constantTimeEqual(a, prefix));
  EXPECT_FALSE(constantTimeEqual(prefix, a));
  EXPECT_TRUE(constantTimeEqual({}, {}));
  EXPECT_FALSE(constantTimeEqual(a, {}));
}

TEST(tlsSecretBytes, MoveLeavesSourceEmpty) {
  SecretBytes a(std::vector<std::uint8_t>{9, 8, 7});
  SecretBytes b(std::move(a));
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_TRUE(a.span().empty());
  EXPECT_EQ(a.span().data(), nullptr);
  EXPECT_EQ(bytesOf(b.span()), (std::vector<std::uint8_t>{9, 8, 7}));

  SecretBytes c(std::vector<std::uint8_t>{1, 1});
  c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.span().data(), nullptr);
  EXPECT_EQ(bytesOf(c.span()), (std::vector<std::uint8_t>{9, 8, 7}));
}

TEST(tlsSecretBytes, SizedConstructorZeroesAndCloneCopies) {
  SecretBytes zero(5);
  EXPECT_EQ(bytesOf(zero.span()), std::vector<std::uint8_t>(5, 0));
  zero.mutableSpan()[0] = 42;
  SecretBytes copy = zero.clone();
  EXPECT_NE(copy.span().data(), zero.span().data());
  EXPECT_EQ(bytesOf(copy.span()), bytesOf(zero.span()));
  copy.clear();
  EXPECT_TRUE(copy.empty());
  EXPECT_EQ(zero.span()[0], 42);
}

TEST(tlsSecretBytes, WipeString) {
  std::string text = "00112233";
  wipe(text);
  EXPECT_TRUE(text.empty());
}

TEST(tlsDrbg, KeysHaveTheRightLengthAndDiffer) {
  Drbg drbg("test_tls");
  for (std::size_t n : {16u, 32u, 64u}) {
    const SecretBytes a = drbg.randomSecret(n);
    const SecretBytes b = drbg.randomSecret(n);
    ASSERT_EQ(a.size(), n);
    ASSERT_EQ(b.size(), n);
    EXPECT_FALSE(constantTimeEqual(a.span(), b.span()));
    EXPECT_NE(bytesOf(a.span()), std::vector<std::uint8_t>(n, 0));
  }
  // Two independently seeded generators do not produce the same stream.
  Drbg other("test_tls");
  EXPECT_FALSE(constantTimeEqual(drbg.randomSecret(32).span(), other.randomSecret(32).span()));
}

TEST(tlsDrbg, FillsMoreThanOneRequest) {
  Drbg drbg("test_tls large");
  std::vector<std::uint8_t> big(5000, 0);
  drbg.fill(big);
  // A run of 64 zero bytes at the end would mean the chunking stopped early.
  EXPECT_NE(std::vector<std::uint8_t>(big.end() - 64, big.end()), std::vector<std::uint8_t>(64, 0));
}

TEST(tlsDrbg, RngTrampolineMatchesMbedtlsContract) {
  Drbg drbg("test_tls rng");
  std::array<unsigned char, 48> out{};
  EXPECT_EQ(Drbg::rng(&drbg, out.data(), out.size()), 0);
  EXPECT_EQ(Drbg::rng(&drbg, out.data(), 0), 0);
  EXPECT_NE(Drbg::rng(nullptr, out.data(), out.size()), 0);
  Drbg moved(std::move(drbg));
  EXPECT_EQ(Drbg::rng(&moved, out.data(), out.size()), 0);
}

}  // namespace
}  // namespace coap_edge::tls
