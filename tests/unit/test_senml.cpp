#include "relay/senml.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace coap_edge::relay {
namespace {

using Kind = DecodedRecord::Kind;

QueuedValue qv(std::string node, std::string path, std::int64_t time_ms, std::string payload,
               std::uint16_t content_format = kContentFormatText, std::uint64_t seq = 1) {
  QueuedValue v;
  v.node = std::move(node);
  v.path = std::move(path);
  v.time_ms = time_ms;
  v.content_format = content_format;
  v.payload = std::move(payload);
  v.seq = seq;
  return v;
}

std::string bytes(std::initializer_list<int> b) {
  std::string out;
  for (const int c : b) out += static_cast<char>(c);
  return out;
}

// The tiny pack whose bytes are computed by hand below: two nodes, integral and fractional
// numbers, a binary value, a path with a leading '/'.
std::vector<QueuedValue> tinyPack() {
  return {qv("a", "t", 1000, "2"), qv("a", "t", 1500, "21.5"), qv("b", "/x", 0, bytes({1, 2}), 42)};
}

TEST(senml, CborBytesMatchAHandComputedVector) {
  const std::string expected = bytes({
      0x83,                                            // array(3)
      0xA4,                                            // map(4)
      0x00, 0x61, 't',                                 //   n: "t"
      0x02, 0x02,                                      //   v: 2
      0x06, 0x01,                                      //   t: 1
      0x21, 0x64, 'p', ':', 'a', '/',                  //   bn: "p:a/"
      0xA3,                                            // map(3): same node, no bn
      0x00, 0x61, 't',                                 //   n: "t"
      0x02, 0xFA, 0x41, 0xAC, 0x00, 0x00,              //   v: 21.5 (float32)
      0x06, 0xFA, 0x3F, 0xC0, 0x00, 0x00,              //   t: 1.5 (float32)
      0xA4,                                            // map(4)
      0x00, 0x61, 'x',                                 //   n: "x"
      0x06, 0x00,                                      //   t: 0
      0x08, 0x42, 0x01, 0x02,                          //   vd: h'0102'
      0x21, 0x64, 'p', ':', 'b', '/',                  //   bn: "p:b/"
  });
  EXPECT_EQ(encodePack(tinyPack(), SenmlFormat::cbor, "p:"), expected);
}

TEST(senml, JsonTextOfTheSamePack) {
  EXPECT_EQ(encodePack(tinyPack(), SenmlFormat::json, "p:"),
            R"([{"bn":"p:a/","n":"t","t":1,"v":2},{"n":"t","t":1.5,"v":21.5},{"bn":"p:b/","n":"x","t":0,"vd":"AQI"}])");
}

TEST(senml, EmptyPack) {
  EXPECT_EQ(encodePack({}, SenmlFormat::json, "p:"), "[]");
  EXPECT_EQ(encodePack({}, SenmlFormat::cbor, "p:"), bytes({0x80}));
  EXPECT_EQ(decodePack("[]", SenmlFormat::json), std::vector<DecodedRecord>{});
  EXPECT_EQ(decodePack(bytes({0x80}), SenmlFormat::cbor), std::vector<DecodedRecord>{});
  EXPECT_EQ(contentFormatOf(SenmlFormat::json), 110);
  EXPECT_EQ(contentFormatOf(SenmlFormat::cbor), 112);
}

struct MappingCase {
  std::string payload;
  std::uint16_t content_format;
  Kind kind;
  double number = 0;
  bool boolean = false;
};

TEST(senml, PayloadsMapToTheRightValueInBothFormats) {
  const std::vector<MappingCase> cases = {
      {"21.5", 0, Kind::number, 21.5},
      {"-3", 0, Kind::number, -3},
      {"1e3", 0, Kind::number, 1000},
      {"0.1", 0, Kind::number, 0.1},
      {"007", 0, Kind::number, 7},
      {"12345678901234567890", 0, Kind::number, 12345678901234567890.0},
      {"true", 0, Kind::boolean, 0, true},
      {"false", 0, Kind::boolean, 0, false},
      {"True", 0, Kind::string},
      {"21.5 ", 0, Kind::string},
      {"+1", 0, Kind::string},
      {".5", 0, Kind::string},
      {"1.", 0, Kind::string},
      {"nan", 0, Kind::string},
      {"inf", 0, Kind::string},
      {"1e999", 0, Kind::string},  // not finite as a double
      {"0x10", 0, Kind::string},
      {"", 0, Kind::string},
      {"h\xC3\xA9llo", 0, Kind::string},
      {"\xFF\xFE", 0, Kind::data},            // text/plain that is not UTF-8
      {"\xC0\xAF", 0, Kind::data},            // overlong '/'
      {"\xED\xA0\x80", 0, Kind::data},        // a surrogate
      {R"({"on":true})", 50, Kind::string},   // JSON travels as its text
      {"\xFF", 50, Kind::data},
      {"21.5", 42, Kind::data},               // octet-stream: never guessed at
      {"[1]", 110, Kind::data},
  };
  for (const SenmlFormat format : {SenmlFormat::json, SenmlFormat::cbor}) {
    for (const MappingCase& c : cases) {
      SCOPED_TRACE(testing::Message() << (format == SenmlFormat::json ? "json " : "cbor ") << '"' << c.payload
                                      << "\" cf " << c.content_format);
      const std::string pack = encodePack({qv("n", "p", 0, c.payload, c.content_format)}, format, "");
      const auto decoded = decodePack(pack, format);
      ASSERT_TRUE(decoded.has_value());
      ASSERT_EQ(decoded->size(), 1u);
      const DecodedRecord& r = decoded->front();
      EXPECT_EQ(r.kind, c.kind);
      switch (c.kind) {
        case Kind::number: EXPECT_EQ(r.number, c.number); break;
        case Kind::boolean: EXPECT_EQ(r.boolean, c.boolean); break;
        case Kind::string:
        case Kind::data: EXPECT_EQ(r.text, c.payload); break;
      }
    }
  }
}

TEST(senml, RoundTripKeepsNamesTimesAndOrder) {
  std::vector<QueuedValue> values;
  std::vector<DecodedRecord> expected;
  const std::int64_t base = 1'700'000'000'123;
  for (int i = 0; i < 40; ++i) {
    const std::string node = i < 10 ? "lamp-1" : (i < 25 ? "meter-2" : "lamp-1");
    std::string payload = i % 3 == 0 ? std::to_string(i) + ".25" : (i % 3 == 1 ? "on" : std::string(1, '\0') + "b");
    const std::uint16_t cf = i % 3 == 2 ? 42 : 0;
    values.push_back(qv(node, "/sensors/" + std::to_string(i), base + i * 1001, payload, cf,
                        static_cast<std::uint64_t>(i + 1)));
    DecodedRecord r;
    r.name = "urn:gw:gw-01:" + node + "/sensors/" + std::to_string(i);
    r.time = static_cast<double>(base + i * 1001) / 1000.0;
    r.kind = i % 3 == 0 ? Kind::number : (i % 3 == 1 ? Kind::string : Kind::data);
    if (r.kind == Kind::number) {
      r.number = i + 0.25;
    } else {
      r.text = payload;
    }
    expected.push_back(r);
  }
  for (const SenmlFormat format : {SenmlFormat::json, SenmlFormat::cbor}) {
    const std::string pack = encodePack(values, format, "urn:gw:gw-01:");
    const auto decoded = decodePack(pack, format);
    ASSERT_TRUE(decoded.has_value());
    ASSERT_EQ(decoded->size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      SCOPED_TRACE(i);
      const DecodedRecord& got = (*decoded)[i];
      EXPECT_EQ(got.name, expected[i].name);
      EXPECT_DOUBLE_EQ(got.time, expected[i].time);
      EXPECT_EQ(got.kind, expected[i].kind);
      EXPECT_EQ(got.number, expected[i].number);
      EXPECT_EQ(got.text, expected[i].text);
    }
  }
  // bn is sent once per run of one node: three runs here.
  const std::string json = encodePack(values, SenmlFormat::json, "urn:gw:gw-01:");
  std::size_t runs = 0;
  for (std::size_t at = 0; (at = json.find("\"bn\"", at)) != std::string::npos; ++at) ++runs;
  EXPECT_EQ(runs, 3u);
}

TEST(senml, NamesThatAreNotUtf8AreRepairedNotFatal) {
  const auto v = qv("bad\xFFnode", "p\xC0", 0, "1");
  for (const SenmlFormat format : {SenmlFormat::json, SenmlFormat::cbor}) {
    const auto decoded = decodePack(encodePack({v}, format, "x:"), format);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->front().name, "x:bad\xEF\xBF\xBDnode/p\xEF\xBF\xBD");
  }
}

TEST(senml, DecoderResolvesBaseNameAndBaseTime) {
  const auto got = decodePack(
      R"([{"bn":"urn:x/","bt":100,"n":"a","t":1,"v":1,"u":"Cel","bver":10},{"n":"b","vs":"s"},)"
      R"({"bn":"urn:y/","n":"c","t":-0.5,"vb":false}])",
      SenmlFormat::json);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].name, "urn:x/a");
  EXPECT_EQ((*got)[0].time, 101);
  EXPECT_EQ((*got)[1].name, "urn:x/b");
  EXPECT_EQ((*got)[1].time, 100);
  EXPECT_EQ((*got)[2].name, "urn:y/c");
  EXPECT_EQ((*got)[2].time, 99.5);
  EXPECT_EQ((*got)[2].kind, Kind::boolean);

  // The same in CBOR: bt is the negative label -3, t a half float.
  const std::string cbor = bytes({0x82, 0xA5, 0x21, 0x62, 'u', '/', 0x22, 0x18, 100, 0x00, 0x61, 'a', 0x06,
                                  0xF9, 0x3C, 0x00, 0x02, 0x01, 0xA2, 0x00, 0x61, 'b', 0x04, 0xF5});
  const auto c = decodePack(cbor, SenmlFormat::cbor);
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].name, "u/a");
  EXPECT_EQ((*c)[0].time, 101);
  EXPECT_EQ((*c)[0].number, 1);
  EXPECT_EQ((*c)[1].name, "u/b");
  EXPECT_EQ((*c)[1].time, 100);
  EXPECT_TRUE((*c)[1].boolean);
}

TEST(senml, DecoderRefusesWhatIsNotAPack) {
  const std::vector<std::string> json = {
      "",
      "{}",
      R"({"n":"a","v":1})",
      R"([{"n":"a"}])",                         // no value
      R"([{"n":"a","v":1,"vs":"x"}])",          // two values
      R"([{"v":1}])",                           // no name at all
      R"([{"n":"a","v":"1"}])",                 // wrong type
      R"([{"n":"a","vb":1}])",
      R"([{"n":"a","vd":"Zg=="}])",             // padding
      R"([{"n":"a","vd":"Z"}])",
      R"([{"n":"a","v":1,"x_":1}])",            // must-understand label
      R"([{"n":"a","v":1,"n":"b"}])",           // duplicate label
      R"([{"n":"a","v":1,"e":[1]}])",           // nested deeper than a pack
      R"([[{"n":"a","v":1}]])",
      R"([{"n":"a","v":1}] x)",
      R"([{"n":"a","v":1e999}])",
      std::string(100000, '[') + std::string(100000, ']'),
  };
  for (const auto& text : json) {
    EXPECT_FALSE(decodePack(text, SenmlFormat::json).has_value()) << text.substr(0, 60);
  }
  EXPECT_TRUE(decodePack(R"([{"n":"a\"[[[","v":1}])", SenmlFormat::json).has_value());  // brackets in strings

  const std::vector<std::string> cbor = {
      "",
      bytes({0xA0}),                                          // a map, not an array
      bytes({0x81, 0xA1, 0x00, 0x61, 'a'}),                   // no value
      bytes({0x81, 0xA2, 0x00, 0x61, 'a', 0x00, 0x61, 'b'}),  // duplicate label
      bytes({0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0x61, '1'}),  // v as text
      bytes({0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0xF9, 0x7C, 0x00}),  // v = +inf
      bytes({0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0x01, 0x00}),        // trailing byte
      bytes({0x9F, 0xA2, 0x00, 0x61, 'a', 0x02, 0x01, 0xFF}),        // indefinite array
      bytes({0x81, 0xA2, 0x00, 0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),  // huge string
      bytes({0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),  // huge array
      bytes({0x81, 0xA2, 0x00, 0x62, 0xC0, 0xAF, 0x02, 0x01}),  // n not UTF-8
      bytes({0x81, 0xA2, 0x00, 0x61, 'a', 0x62, 'x', '_', 0x01}),  // must-understand text label
      bytes({0x81, 0xA3, 0x00, 0x61, 'a', 0x02, 0x01}),         // map claims more than it has
  };
  for (const auto& b : cbor) EXPECT_FALSE(decodePack(b, SenmlFormat::cbor).has_value());
  // An unknown label with a nested value is skipped, within a depth bound.
  EXPECT_TRUE(decodePack(bytes({0x81, 0xA3, 0x00, 0x61, 'a', 0x02, 0x01, 0x18, 0x40, 0x81, 0x81, 0x01}),
                         SenmlFormat::cbor)
                  .has_value());
  std::string deep = bytes({0x81, 0xA3, 0x00, 0x61, 'a', 0x02, 0x01, 0x18, 0x40});
  deep += std::string(1000, static_cast<char>(0x81)) + bytes({0x01});
  EXPECT_FALSE(decodePack(deep, SenmlFormat::cbor).has_value());
  EXPECT_FALSE(decodePack(std::string(kMaxDecodedPackBytes + 1, ' '), SenmlFormat::json).has_value());
}

TEST(senml, Base64UrlFollowsRfc4648WithoutPadding) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"", ""},          {"f", "Zg"},         {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {bytes({0xFB, 0xFF}), "-_8"},
  };
  for (const auto& [raw, text] : vectors) {
    EXPECT_EQ(base64UrlEncode(raw), text);
    EXPECT_EQ(base64UrlDecode(text), raw);
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  EXPECT_EQ(base64UrlDecode(base64UrlEncode(all)), all);
  for (const char* bad : {"Zg==", "Z", "Zh", "Zm9v+A", "Zm9v/A", "Zm 9v", "Zm9=v"}) {
    EXPECT_FALSE(base64UrlDecode(bad).has_value()) << bad;
  }
}

TEST(senml, Utf8Validation) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("\xF0\x9F\x92\xA1"));  // U+1F4A1
  EXPECT_TRUE(isValidUtf8(std::string_view("\0", 1)));
  EXPECT_FALSE(isValidUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xE2\x82"));          // cut short
  EXPECT_FALSE(isValidUtf8("\x80"));
}

}  // namespace
}  // namespace coap_edge::relay
