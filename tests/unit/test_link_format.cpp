// CoRE Link Format (discovery/link_format.h): the RFC 6690 and RFC 9176 payloads a node or a
// client really sends, every refusal with its offset, every limit at and just past its bound,
// and round-trip properties over seeded random lists and random byte strings.

#include "discovery/link_format.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace coap_edge::discovery {
namespace {

LinkAttribute quoted(std::string name, std::string value) { return {std::move(name), std::move(value), true}; }
LinkAttribute token(std::string name, std::string value) { return {std::move(name), std::move(value), false}; }
LinkAttribute bare(std::string name) { return {std::move(name), std::nullopt, false}; }

std::vector<Link> parsed(std::string_view text, const LinkFormatLimits& limits = {}) {
  auto result = parseLinkFormat(text, limits);
  EXPECT_TRUE(result.ok()) << text << "\n-> " << result.error->offset << ": " << result.error->message;
  return result.links;
}

/// "offset: message" of a refused document, or "ok".
std::string errorOf(std::string_view text, const LinkFormatLimits& limits = {}) {
  const auto result = parseLinkFormat(text, limits);
  if (result.ok()) return "ok";
  EXPECT_TRUE(result.links.empty());
  return fmt::format("{}: {}", result.error->offset, result.error->message);
}

std::string repeated(std::string_view text, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) out += text;
  return out;
}

// ---------------------------------------------------------------- RFC examples

// RFC 6690 §5, verbatim including the linefeeds the RFC adds "for readability".
TEST(LinkFormatExamples, Rfc6690Section5) {
  const std::vector<Link> two_sensors{{"/sensors/temp", {quoted("if", "sensor")}},
                                      {"/sensors/light", {quoted("if", "sensor")}}};
  EXPECT_EQ(parsed("</sensors/temp>;if=\"sensor\",\n</sensors/light>;if=\"sensor\""), two_sensors);
  EXPECT_EQ(parsed("</sensors/temp>;if=\"sensor\",</sensors/light>;if=\"sensor\""), two_sensors);

  EXPECT_EQ(parsed("</sensors>;rt=\"index\""), (std::vector<Link>{{"/sensors", {quoted("rt", "index")}}}));
  EXPECT_EQ(parsed("</sensors/temp>;rt=\"temperature-c\";if=\"sensor\",\n"
                   "</sensors/light>;rt=\"light-lux\";if=\"sensor\""),
            (std::vector<Link>{{"/sensors/temp", {quoted("rt", "temperature-c"), quoted("if", "sensor")}},
                               {"/sensors/light", {quoted("rt", "light-lux"), quoted("if", "sensor")}}}));
  EXPECT_EQ(parsed("</sensors/light>;rt=\"light-lux\";if=\"sensor\""),
            (std::vector<Link>{{"/sensors/light", {quoted("rt", "light-lux"), quoted("if", "sensor")}}}));
}

// RFC 6690 §5.1, with its line break before ";rel".
TEST(LinkFormatExamples, Rfc6690Section5_1AnchorsAndRelations) {
  const auto links = parsed(
      "</sensors>;ct=40;title=\"Sensor Index\",\n"
      "</sensors/temp>;rt=\"temperature-c\";if=\"sensor\",\n"
      "</sensors/light>;rt=\"light-lux\";if=\"sensor\",\n"
      "<http://www.example.com/sensors/t123>;anchor=\"/sensors/temp\"\n"
      ";rel=\"describedby\",\n"
      "</t>;anchor=\"/sensors/temp\";rel=\"alternate\"");
  ASSERT_EQ(links.size(), 5U);
  EXPECT_EQ(links[0], (Link{"/sensors", {token("ct", "40"), quoted("title", "Sensor Index")}}));
  EXPECT_EQ(links[3], (Link{"http://www.example.com/sensors/t123",
                            {quoted("anchor", "/sensors/temp"), quoted("rel", "describedby")}}));
  EXPECT_EQ(links[4].attribute("anchor"), "/sensors/temp");
  EXPECT_EQ(links[4].values("rel"), (std::vector<std::string_view>{"alternate"}));
  EXPECT_EQ(links[2].attribute("rt"), "light-lux");
}

// Payloads in the shape RFC 9176 uses: discovery of the RD, a registration, lookup results.
TEST(LinkFormatExamples, ResourceDirectoryPayloads) {
  const auto rd = parsed("</rd>;rt=core.rd;ct=40,</rd-lookup/ep>;rt=core.rd-lookup-ep;ct=40,"
                         "</rd-lookup/res>;rt=core.rd-lookup-res;ct=40");
  ASSERT_EQ(rd.size(), 3U);
  EXPECT_EQ(rd[1], (Link{"/rd-lookup/ep", {token("rt", "core.rd-lookup-ep"), token("ct", "40")}}));

  const auto registration = parsed(
      "</sensors/temp>;ct=41;rt=\"temperature-c\";if=\"sensor\";anchor=\"coap://spurious.example:5683\",\n"
      "</sensors/light>;ct=41;rt=\"light-lux\";if=\"sensor\";obs");
  ASSERT_EQ(registration.size(), 2U);
  EXPECT_EQ(registration[0].attribute("anchor"), "coap://spurious.example:5683");
  EXPECT_TRUE(registration[1].has("obs"));
  EXPECT_FALSE(registration[1].attribute("obs").has_value());

  const auto endpoints = parsed("</rd/1234>;base=\"coap://[2001:db8:3::127]:61616\";ep=node5;"
                                "et=\"oic.d.sensor\";ct=40;rt=\"temperature\";lt=90000;d=floor-3");
  ASSERT_EQ(endpoints.size(), 1U);
  EXPECT_EQ(endpoints[0].attribute("ep"), "node5");
  EXPECT_EQ(endpoints[0].attribute("base"), "coap://[2001:db8:3::127]:61616");
  EXPECT_EQ(endpoints[0].attribute("lt"), "90000");

  const auto resources = parsed("<coap://[2001:db8:3::123]:61616/temp>;rt=\"temperature\";"
                                "anchor=\"coap://[2001:db8:3::123]:61616\"");
  ASSERT_EQ(resources.size(), 1U);
  EXPECT_EQ(resources[0].target, "coap://[2001:db8:3::123]:61616/temp");
}

// ---------------------------------------------------------------- attributes

TEST(LinkFormatAttributes, RepeatsKeptInOrderAndSpaceSeparatedListsSplit) {
  const auto links = parsed("</a>;rt=\"x  y\";RT=z;obs;rt;title=\"a b\";title=c;if=\" \";rel=\"next prev\"");
  ASSERT_EQ(links.size(), 1U);
  const Link& link = links[0];
  EXPECT_EQ(link.attributes, (std::vector<LinkAttribute>{quoted("rt", "x  y"), token("rt", "z"), bare("obs"),
                                                         bare("rt"), quoted("title", "a b"), token("title", "c"),
                                                         quoted("if", " "), quoted("rel", "next prev")}));
  EXPECT_EQ(link.values("rt"), (std::vector<std::string_view>{"x", "y", "z"}));
  EXPECT_EQ(link.values("Rt"), (std::vector<std::string_view>{"x", "y", "z"}));
  EXPECT_EQ(link.values("title"), (std::vector<std::string_view>{"a b", "c"}));  // not a list
  EXPECT_TRUE(link.values("if").empty());
  EXPECT_EQ(link.values("rel"), (std::vector<std::string_view>{"next", "prev"}));
  EXPECT_TRUE(link.values("obs").empty());
  EXPECT_TRUE(link.values("ct").empty());
  EXPECT_EQ(link.attribute("rt"), "x  y");
  EXPECT_EQ(link.attribute("TITLE"), "a b");
  EXPECT_FALSE(link.attribute("obs").has_value());
  EXPECT_TRUE(link.has("OBS"));
  EXPECT_FALSE(link.has("ct"));
}

TEST(LinkFormatAttributes, FirstValueSkipsABareOccurrence) {
  const auto links = parsed("</a>;ct;ct=40");
  ASSERT_EQ(links.size(), 1U);
  EXPECT_EQ(links[0].attribute("ct"), "40");
}

TEST(LinkFormatAttributes, NamesAreStoredInLowerCase) {
  EXPECT_EQ(parsed("</a>;Ct=40;TITLE=x;Foo-Bar.Baz_1"),
            (std::vector<Link>{{"/a", {token("ct", "40"), token("title", "x"), bare("foo-bar.baz_1")}}}));
}

TEST(LinkFormatAttributes, ExtensionsAndExtNameStar) {
  EXPECT_EQ(parsed("</a>;title*=UTF-8'en'%E2%82%AC;x-vendor!#$&+^`|~=\"1\""),
            (std::vector<Link>{{"/a", {token("title*", "UTF-8'en'%E2%82%AC"), quoted("x-vendor!#$&+^`|~", "1")}}}));
}

TEST(LinkFormatAttributes, PtokensMayHoldAngleBracketsAndEquals) {
  EXPECT_EQ(parsed("</a>;x=<b>=c/d?e[f]{g}*,</h>"),
            (std::vector<Link>{{"/a", {token("x", "<b>=c/d?e[f]{g}*")}}, {"/h", {}}}));
}

// ---------------------------------------------------------------- quoted strings

TEST(LinkFormatQuoted, BackslashEscapesAreRemoved) {
  const auto links = parsed(R"(</a>;title="say \"hi\" \\ \x\ ";t2="")");
  ASSERT_EQ(links.size(), 1U);
  EXPECT_EQ(links[0].attributes, (std::vector<LinkAttribute>{quoted("title", R"(say "hi" \ x )"), quoted("t2", "")}));
}

TEST(LinkFormatQuoted, TabsSeparatorsAndNonAsciiAreText) {
  const auto links = parsed("</a>;title=\"a\tb;c,d=e<f>\xC3\xA9\"");
  ASSERT_EQ(links.size(), 1U);
  EXPECT_EQ(links[0].attribute("title"), "a\tb;c,d=e<f>\xC3\xA9");
}

// ---------------------------------------------------------------- whitespace and targets

TEST(LinkFormatWhitespace, ToleratedAroundSeparatorsAndAtTheEnds) {
  const auto expected = parsed("</a>;rt=\"x\";ct=40,</b>;obs");
  for (const char* text : {" \t\r\n</a> ;\n rt = \"x\" ;ct\t=\t40 ,\r\n </b>\t;obs\n",
                           "</a>\n;rt=\"x\"\n;ct=40\n,\n</b>;obs", "</a>;rt=\"x\";ct=40,</b>;   obs   "}) {
    EXPECT_EQ(parsed(text), expected) << text;
  }
  EXPECT_TRUE(parsed("").empty());
  EXPECT_TRUE(parsed(" \r\n\t").empty());
}

TEST(LinkFormatTargets, KeptRawAndDecodable) {
  const auto links = parsed("</a%2Fb%20c?q=1&r=%7e#frag>,<>,<coap://[::1]:5683/x;y,z!$'()*+@>");
  ASSERT_EQ(links.size(), 3U);
  EXPECT_EQ(links[0].target, "/a%2Fb%20c?q=1&r=%7e#frag");
  EXPECT_EQ(percentDecode(links[0].target), "/a/b c?q=1&r=~#frag");
  EXPECT_EQ(links[1].target, "");
  EXPECT_EQ(links[2].target, "coap://[::1]:5683/x;y,z!$'()*+@");
}

TEST(PercentDecode, DecodesEscapesAndRefusesMalformedOnes) {
  EXPECT_EQ(percentDecode(""), "");
  EXPECT_EQ(percentDecode("%41%62c%2f%00"), std::string("Abc/\0", 5));
  EXPECT_EQ(percentDecode("plain"), "plain");
  EXPECT_FALSE(percentDecode("%").has_value());
  EXPECT_FALSE(percentDecode("a%4").has_value());
  EXPECT_FALSE(percentDecode("%zz").has_value());
  EXPECT_FALSE(percentDecode("%4g").has_value());
}

// ---------------------------------------------------------------- refusals

TEST(LinkFormatErrors, EachRefusalSaysWhereAndWhy) {
  EXPECT_EQ(errorOf("a"), "0: expected '<' to start a link");
  EXPECT_EQ(errorOf(","), "0: expected '<' to start a link");
  EXPECT_EQ(errorOf("<a"), "2: expected '>' after the link target");
  EXPECT_EQ(errorOf("<a>,"), "4: expected '<' to start a link");
  EXPECT_EQ(errorOf("<a>, ,<b>"), "5: expected '<' to start a link");
  EXPECT_EQ(errorOf("<a> x"), "4: expected ',' or ';'");
  EXPECT_EQ(errorOf("<a><b>"), "3: expected ',' or ';'");
  EXPECT_EQ(errorOf("<a b>"), "2: a space is not allowed in the link target");
  EXPECT_EQ(errorOf("<a\"b>"), "2: '\"' is not allowed in the link target");
  EXPECT_EQ(errorOf("<a<b>"), "2: '<' is not allowed in the link target");
  EXPECT_EQ(errorOf("<\xC3\xA9>"), "1: byte 0xC3 is not allowed in the link target");
  EXPECT_EQ(errorOf("<a, <b>"), "3: a space is not allowed in the link target");
  EXPECT_EQ(errorOf("<a%2>"), "2: malformed percent-escape in the link target (write %XX)");
  EXPECT_EQ(errorOf("<a%zz>"), "2: malformed percent-escape in the link target (write %XX)");
  EXPECT_EQ(errorOf("<a%"), "2: malformed percent-escape in the link target (write %XX)");
  EXPECT_EQ(errorOf("<a>;"), "4: expected a parameter name after ';'");
  EXPECT_EQ(errorOf("<a>;=x"), "4: expected a parameter name after ';'");
  EXPECT_EQ(errorOf("<a>;;ct=1"), "4: expected a parameter name after ';'");
  EXPECT_EQ(errorOf("<a>;rt="), "7: expected a value after '='");
  EXPECT_EQ(errorOf("<a>;rt= ,<b>"), "8: expected a value after '='");
  EXPECT_EQ(errorOf("<a>;rt=a b"), "9: expected ',' or ';'");
  EXPECT_EQ(errorOf("<a>;rt=\"a\"b"), "10: expected ',' or ';'");
  EXPECT_EQ(errorOf("<a>;ti tle"), "7: expected ',' or ';'");
  EXPECT_EQ(errorOf("<a>;title**=x"), "10: expected ',' or ';'");
  EXPECT_EQ(errorOf("<a>;rt=\"x"), "7: the quoted-string is not closed");
  EXPECT_EQ(errorOf("<a>;rt=\"x\\"), "7: the quoted-string is not closed");
  EXPECT_EQ(errorOf("<a>;rt=\"x\\\""), "7: the quoted-string is not closed");
  EXPECT_EQ(errorOf("<a>;rt=\"x\ny\""), "9: control character 0x0A is not allowed in a quoted-string");
  EXPECT_EQ(errorOf(std::string_view("<a>;rt=\"\0\"", 10)),
            "8: control character 0x00 is not allowed in a quoted-string");
  EXPECT_EQ(errorOf("<a>;rt=\"\x7F\""), "8: control character 0x7F is not allowed in a quoted-string");
  EXPECT_EQ(errorOf("<a>;rt=\"x\\\x01\""), "10: control character 0x01 cannot be escaped in a quoted-string");
  EXPECT_EQ(errorOf("<a>;anchor"), "4: anchor needs a URI-Reference value");
  EXPECT_EQ(errorOf("<a>;ANCHOR;rt=x"), "4: anchor needs a URI-Reference value");
  EXPECT_EQ(errorOf("<a>;anchor=\"x y\""), "11: a space is not allowed in the anchor");
  EXPECT_EQ(errorOf("<a>;anchor=\"%g0\""), "11: malformed percent-escape in the anchor (write %XX)");
}

TEST(LinkFormatErrors, MessagesFitADiagnosticPayload) {
  for (const char* text : {"a", "<a", "<a b>", "<a>;", "<a>;rt=", "<a>;rt=\"x", "<a>;anchor"}) {
    const auto result = parseLinkFormat(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_FALSE(result.error->message.empty());
    EXPECT_LE(result.error->message.size(), 80U) << result.error->message;
  }
}

// ---------------------------------------------------------------- limits

TEST(LinkFormatLimits, DocumentSize) {
  const std::string at_limit = "<a>" + std::string(16 * 1024 - 3, ' ');
  EXPECT_EQ(errorOf(at_limit), "ok");
  EXPECT_EQ(errorOf(at_limit + " "), "16384: the document is larger than 16384 bytes");
  LinkFormatLimits small;
  small.max_bytes = 8;
  EXPECT_EQ(errorOf("<a>,<bc>", small), "ok");
  EXPECT_EQ(errorOf("<a>,<bcd>", small), "8: the document is larger than 8 bytes");
}

TEST(LinkFormatLimits, LinkCount) {
  const std::string full = repeated("<a>,", 511) + "<a>";
  EXPECT_EQ(parsed(full).size(), 512U);
  EXPECT_EQ(errorOf(full + ",<a>"), "2048: too many links (at most 512)");
  LinkFormatLimits one;
  one.max_links = 1;
  EXPECT_EQ(errorOf("<a>;rt=x", one), "ok");
  EXPECT_EQ(errorOf("<a>;rt=x, <b>", one), "10: too many links (at most 1)");
}

TEST(LinkFormatLimits, AttributesPerLink) {
  const std::string full = "<a>" + repeated(";x", 32);
  EXPECT_EQ(parsed(full).at(0).attributes.size(), 32U);
  EXPECT_EQ(errorOf(full + ";y"), "68: too many parameters in one link (at most 32)");
  EXPECT_EQ(errorOf(full + ",<b>" + repeated(";x", 32)), "ok");  // the count is per link
  LinkFormatLimits none;
  none.max_attributes_per_link = 0;
  EXPECT_EQ(errorOf("<a>,<b>", none), "ok");
  EXPECT_EQ(errorOf("<a>,<b>;obs", none), "8: too many parameters in one link (at most 0)");
}

TEST(LinkFormatLimits, TargetBytes) {
  EXPECT_EQ(errorOf("<" + std::string(256, 'a') + ">"), "ok");
  EXPECT_EQ(errorOf("<" + std::string(257, 'a') + ">"), "1: the link target is longer than 256 bytes");
  EXPECT_EQ(errorOf("<b>,<" + std::string(257, 'a') + ">"), "5: the link target is longer than 256 bytes");
}

TEST(LinkFormatLimits, ValueBytesAfterUnquoting) {
  EXPECT_EQ(errorOf("<a>;t=" + std::string(256, 'v')), "ok");
  EXPECT_EQ(errorOf("<a>;t=" + std::string(257, 'v')), "6: the value is longer than 256 bytes");
  // 512 bytes written, 256 after removing the escapes: within the limit.
  EXPECT_EQ(errorOf("<a>;t=\"" + repeated("\\v", 256) + "\""), "ok");
  EXPECT_EQ(errorOf("<a>;t= \"" + repeated("\\v", 257) + "\""), "7: the value is longer than 256 bytes");
}

TEST(LinkFormatLimits, NameBytes) {
  EXPECT_EQ(errorOf("<a>;" + std::string(64, 'n')), "ok");
  EXPECT_EQ(errorOf("<a>;" + std::string(65, 'n') + "=1"), "4: the parameter name is longer than 64 bytes");
  EXPECT_EQ(errorOf("<a>;" + std::string(63, 'n') + "*=1"), "ok");  // the '*' counts
  EXPECT_EQ(errorOf("<a>;" + std::string(64, 'n') + "*=1"), "4: the parameter name is longer than 64 bytes");
}

// ---------------------------------------------------------------- serializing

TEST(LinkFormatSerialize, WritesCompactLinkFormat) {
  EXPECT_EQ(serializeLinkFormat({}), "");
  EXPECT_EQ(serializeLinkFormat({{"/s", {quoted("rt", "a b"), token("ct", "40"), bare("obs")}}, {"/t", {}}}),
            R"(</s>;rt="a b";ct=40;obs,</t>)");
  EXPECT_EQ(serializeLinkFormat({{"/s", {quoted("title", R"(a "b" \c)")}}}), R"(</s>;title="a \"b\" \\c")");
}

TEST(LinkFormatSerialize, QuotesAnUnquotedValueThatIsNotAPtoken) {
  EXPECT_EQ(serializeLinkFormat({{"/s", {token("a", "x y"), token("b", ""), token("c", "x,y"), token("d", "x;y")}}}),
            R"(</s>;a="x y";b="";c="x,y";d="x;y")");
  EXPECT_EQ(serializeLinkFormat({{"/s", {LinkAttribute{"obs", std::nullopt, true}}}}), "</s>;obs");
}

// ---------------------------------------------------------------- properties

// Fixed so that a failure replays exactly; printed so that it can be told apart from a changed one.
constexpr std::uint32_t kSeed = 6690;

class Generator {
 public:
  explicit Generator(std::uint32_t seed) : rng_(seed) {}

  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool chance(std::size_t percent) { return below(100) < percent; }
  char pick(std::string_view set) { return set[below(set.size())]; }

  std::string uriReference(std::size_t max_length) {
    static constexpr std::string_view kUri =
        "abcxyzABCXYZ0189-._~:/?#[]@!$&'()*+,;=";
    static constexpr std::string_view kHex = "0123456789abcdefABCDEF";
    std::string out;
    const std::size_t length = below(max_length + 1);
    while (out.size() < length) {
      if (chance(15)) {
        out += '%';
        out += pick(kHex);
        out += pick(kHex);
      } else {
        out += pick(kUri);
      }
    }
    return out;
  }

  std::string name() {
    static constexpr std::string_view kCommon[] = {"rt", "if", "rel", "anchor", "ct", "title", "obs", "sz",
                                                   "title*", "ep", "lt", "base"};
    static constexpr std::string_view kAttr = "abcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~";
    if (chance(70)) return std::string(kCommon[below(std::size(kCommon))]);
    std::string out;
    for (std::size_t n = 1 + below(8); n > 0; --n) out += pick(kAttr);
    if (chance(10)) out += '*';
    return out;
  }

  std::string ptoken() {
    static constexpr std::string_view kPtoken =
        "!#$%&'()*+-./:<=>?@[]^_`{|}~abcXYZ059";
    std::string out;
    for (std::size_t n = 1 + below(12); n > 0; --n) out += pick(kPtoken);
    return out;
  }

  // Any byte a quoted-string may carry once unescaped: HTAB, SP, visible ASCII (with '"' and
  // '\' often), obs-text.
  std::string quotedText() {
    std::string out;
    for (std::size_t n = below(13); n > 0; --n) {
      const std::size_t kind = below(10);
      if (kind == 0) {
        out += pick("\"\\");
      } else if (kind == 1) {
        out += pick(" \t");
      } else if (kind == 2) {
        out += static_cast<char>(0x80 + below(0x80));
      } else {
        out += static_cast<char>(0x21 + below(0x7F - 0x21));
      }
    }
    return out;
  }

  LinkAttribute attribute() {
    LinkAttribute a;
    a.name = name();
    if (a.name == "anchor") {
      a.value = uriReference(20);
      // Unquoted only where it reads back as one ptoken, as the parser would have produced it.
      a.quoted = chance(80) || !isPtokenText(*a.value);
      return a;
    }
    switch (below(3)) {
      case 0:
        break;  // bare
      case 1:
        a.value = ptoken();
        break;
      default:
        a.value = quotedText();
        a.quoted = true;
        break;
    }
    return a;
  }

  std::vector<Link> links() {
    std::vector<Link> out(below(7));
    for (auto& link : out) {
      link.target = uriReference(24);
      for (std::size_t n = below(7); n > 0; --n) {
        if (!link.attributes.empty() && chance(15)) {
          link.attributes.push_back(link.attributes[below(link.attributes.size())]);  // a repeat
        } else {
          link.attributes.push_back(attribute());
        }
      }
    }
    return out;
  }

  // A serialized random list with a few edits (a fragment inserted, a byte dropped or
  // replaced, a letter's case flipped): near-valid input with everything a list can hold.
  std::string mutated() {
    std::string out = serializeLinkFormat(links());
    for (std::size_t n = below(4); n > 0; --n) {
      const std::size_t at = below(out.size() + 1);
      switch (below(4)) {
        case 0:
          out.insert(at, fragments(2));
          break;
        case 1:
          if (at < out.size()) out.erase(at, 1);
          break;
        case 2:
          if (at < out.size()) out[at] = static_cast<char>(below(256));
          break;
        default:
          if (at < out.size() && out[at] >= 'a' && out[at] <= 'z') out[at] = static_cast<char>(out[at] - 'a' + 'A');
          break;
      }
    }
    return out;
  }

  // Concatenated fragments of link format, so that a fair share of the strings parse.
  std::string fragments(std::size_t max_count = 13) {
    static constexpr std::string_view kPieces[] = {
        "<", ">", "</a>", "<b%20c>", "<%zz>", ";", ",", "=", "rt", "RT", "obs", "anchor", "\"", "x y",
        "\\\"", "\\\\", " ", "\n", "\r\n", "\t", "%4", "\xC3\xA9", "\x01", "ct=40", "title*", "<>", "=\"/p\"",
        "*", "a", "1"};
    std::string out;
    for (std::size_t n = below(max_count + 1); n > 0; --n) {
      if (chance(5)) {
        out += static_cast<char>(below(256));
      } else {
        out += kPieces[below(std::size(kPieces))];
      }
    }
    return out;
  }

 private:
  static bool isPtokenText(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text) {
      if (std::string_view("!#$%&'()*+-./:<=>?@[]^_`{|}~").find(c) == std::string_view::npos &&
          !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9')) {
        return false;
      }
    }
    return true;
  }

  std::mt19937 rng_;
};

TEST(LinkFormatProperty, ParseOfSerializeIsIdentityOnRandomLists) {
  fmt::print("link-format property seed {}\n", kSeed);
  SCOPED_TRACE(fmt::format("seed {}", kSeed));
  Generator gen(kSeed);
  std::size_t attributes_seen = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::vector<Link> links = gen.links();
    const std::string text = serializeLinkFormat(links);
    const auto result = parseLinkFormat(text);
    ASSERT_TRUE(result.ok()) << "case " << i << ": " << text << "\n-> " << result.error->offset << ": "
                             << result.error->message;
    ASSERT_EQ(result.links, links) << "case " << i << ": " << text;
    for (const auto& link : links) attributes_seen += link.attributes.size();
  }
  EXPECT_GT(attributes_seen, 10000U);  // the generator really made lists worth checking
}

TEST(LinkFormatProperty, SerializeOfParseReparsesTheSameOnRandomBytes) {
  fmt::print("link-format property seed {}\n", kSeed + 1);
  SCOPED_TRACE(fmt::format("seed {}", kSeed + 1));
  Generator gen(kSeed + 1);
  std::size_t accepted = 0;
  std::size_t refused = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = i % 2 == 0 ? gen.fragments() : gen.mutated();
    const auto first = parseLinkFormat(input);
    if (!first.ok()) {
      ++refused;
      ASSERT_LE(first.error->offset, input.size()) << input;
      ASSERT_FALSE(first.error->message.empty());
      continue;
    }
    ++accepted;
    const std::string text = serializeLinkFormat(first.links);
    const auto second = parseLinkFormat(text);
    ASSERT_TRUE(second.ok()) << "input: " << input << "\nserialized: " << text;
    ASSERT_EQ(second.links, first.links) << "input: " << input << "\nserialized: " << text;
    ASSERT_EQ(serializeLinkFormat(second.links), text);  // the serialized form is a fixed point
  }
  fmt::print("{} accepted, {} refused\n", accepted, refused);
  EXPECT_GT(accepted, 4000U);
  EXPECT_GT(refused, 4000U);
}

}  // namespace
}  // namespace coap_edge::discovery
