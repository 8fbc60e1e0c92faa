// Resource Directory (discovery/resource_directory.h, RFC 9176) with a fake clock: time is
// whatever the test says. Lookup results are compared after parsing them back (the serializer's
// spacing is not part of the contract; parse(serialize(x)) == x is).

#include "discovery/rd_query.h"
#include "discovery/rd_uri.h"
#include "discovery/resource_directory.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace coap_edge::discovery {
namespace {

using std::chrono::seconds;

const RdClock::time_point kT0{std::chrono::hours(1000)};
constexpr std::string_view kNodeBase = "coap://[2001:db8::7]:5683";

// A link as a comparable value: target and (name, value or "<none>") pairs in order.
using Flat = std::pair<std::string, std::vector<std::pair<std::string, std::string>>>;

std::vector<Flat> flatten(std::string_view payload) {
  LinkFormatLimits generous;
  generous.max_bytes = 1 << 20;
  generous.max_links = 1 << 16;
  generous.max_target_bytes = 4096;
  generous.max_value_bytes = 4096;
  const LinkFormatResult parsed = parseLinkFormat(payload, generous);
  EXPECT_TRUE(parsed.ok()) << payload << " -> " << (parsed.error ? parsed.error->message : "");
  std::vector<Flat> out;
  for (const Link& link : parsed.links) {
    Flat flat{link.target, {}};
    for (const LinkAttribute& a : link.attributes) flat.second.emplace_back(a.name, a.value.value_or("<none>"));
    out.push_back(std::move(flat));
  }
  return out;
}

std::vector<std::string> targets(std::string_view payload) {
  std::vector<std::string> out;
  for (const Flat& flat : flatten(payload)) out.push_back(flat.first);
  return out;
}

RdReply reg(ResourceDirectory& rd, std::string_view query, std::string_view payload = "</a>",
            RdClock::time_point now = kT0, std::string_view registrant = "") {
  return rd.registerEndpoint(query, payload, kNodeBase, registrant, now);
}

// ---- query strings ------------------------------------------------------------------------

TEST(RdQuery, SplitsDecodesAndLowerCasesNames) {
  const QueryParseResult q = parseRdQuery("ep=node%201&LT=60&&obs&et=a%3Db&x=", 1024, 32);
  ASSERT_TRUE(q.ok()) << q.error;
  const std::vector<QueryParam> expected = {
      {"ep", "node 1"}, {"lt", "60"}, {"obs", std::nullopt}, {"et", "a=b"}, {"x", ""}};
  EXPECT_EQ(q.params, expected);
  EXPECT_TRUE(parseRdQuery("", 1024, 32).params.empty());
}

TEST(RdQuery, RefusesMalformedEscapesBadNamesAndExcess) {
  EXPECT_FALSE(parseRdQuery("ep=%zz", 1024, 32).ok());
  EXPECT_FALSE(parseRdQuery("ep=%2", 1024, 32).ok());
  EXPECT_FALSE(parseRdQuery("=x", 1024, 32).ok());
  EXPECT_FALSE(parseRdQuery("a%20b=x", 1024, 32).ok());  // space is not a parmname character
  EXPECT_FALSE(parseRdQuery("a=1&b=2&c=3", 1024, 2).ok());
  EXPECT_TRUE(parseRdQuery("a=1&b=2", 1024, 2).ok());
  EXPECT_FALSE(parseRdQuery(std::string(1025, 'a'), 1024, 32).ok());
}

TEST(RdQuery, JoinedOptionsParseBackToTheSameOptions) {
  const std::string joined = joinQueryOptions({"ep=a&b", "d=100%", "et=x=y"});
  const QueryParseResult q = parseRdQuery(joined, 1024, 32);
  ASSERT_TRUE(q.ok()) << q.error;
  const std::vector<QueryParam> expected = {{"ep", "a&b"}, {"d", "100%"}, {"et", "x=y"}};
  EXPECT_EQ(q.params, expected);
}

TEST(RdQuery, EndpointNameForTheAccessCheck) {
  EXPECT_EQ(registrationEndpointName("lt=60&ep=dev-1"), "dev-1");
  EXPECT_EQ(registrationEndpointName("ep=dev%2D1"), "dev-1");
  EXPECT_EQ(registrationEndpointName("lt=60"), std::nullopt);
  EXPECT_EQ(registrationEndpointName("ep="), std::nullopt);
  EXPECT_EQ(registrationEndpointName("ep"), std::nullopt);
  EXPECT_EQ(registrationEndpointName("ep=a&ep=a"), std::nullopt);
  EXPECT_EQ(registrationEndpointName("ep=%zz"), std::nullopt);
}

// ---- URI references (RFC 3986 §5.4) -----------------------------------------------------------

TEST(RdUri, ResolvesTheRfc3986Examples) {
  const std::string_view base = "http://a/b/c/d;p?q";
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"g:h", "g:h"},          {"g", "http://a/b/c/g"},       {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"}, {"/g", "http://a/g"},        {"//g", "http://g"},
      {"?y", "http://a/b/c/d;p?y"}, {"g?y", "http://a/b/c/g?y"}, {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"}, {"g?y#s", "http://a/b/c/g?y#s"}, {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"}, {"", "http://a/b/c/d;p?q"}, {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},  {"..", "http://a/b/"},         {"../", "http://a/b/"},
      {"../g", "http://a/b/g"}, {"../..", "http://a/"},        {"../../g", "http://a/g"},
      // abnormal examples (§5.4.2)
      {"../../../g", "http://a/g"}, {"../../../../g", "http://a/g"}, {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},  {"g.", "http://a/b/c/g."},      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."}, {"..g", "http://a/b/c/..g"}, {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"}, {"g/./h", "http://a/b/c/g/h"}, {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"}, {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"}, {"g#s/../x", "http://a/b/c/g#s/../x"}, {"http:g", "http:g"},
  };
  for (const auto& [reference, expected] : cases) {
    EXPECT_EQ(resolveUriReference(base, reference), expected) << reference;
  }
  // A base without a path (the usual RD base) gets a '/' before a relative path.
  EXPECT_EQ(resolveUriReference("coap://[2001:db8::1]:5683", "temp"), "coap://[2001:db8::1]:5683/temp");
  EXPECT_EQ(resolveUriReference("coap://[2001:db8::1]:5683", "/temp"), "coap://[2001:db8::1]:5683/temp");
  // Not a valid scheme before the ':' (RFC 3986 §3.1): a relative path, resolved like any other,
  // so a lookup never shows a relative target.
  EXPECT_EQ(resolveUriReference("coap://h", "~x:y/a"), "coap://h/~x:y/a");
  EXPECT_EQ(resolveUriReference("coap://h", "1a:b"), "coap://h/1a:b");
  EXPECT_EQ(resolveUriReference("coap://h", "a+b.c-d:x"), "a+b.c-d:x");
  EXPECT_EQ(removeDotSegments("/a/b/c/./../../g"), "/a/g");
  EXPECT_EQ(removeDotSegments("mid/content=5/../6"), "mid/6");
}

TEST(RdUri, BaseMustBeAnAbsoluteCoapUriWithoutQueryOrFragment) {
  for (const std::string_view good : {"coap://[2001:db8::1]:5683", "coaps://10.0.0.7:5684", "coap://node.local",
                                      "COAP://node.local/dev/", "coap://[fe80::1%25eth0]:5683"}) {
    EXPECT_EQ(baseUriError(good, 256), std::nullopt) << good;
  }
  for (const std::string_view bad :
       {"http://node.local", "/relative", "node.local:5683", "coap:///path", "coap://h?q", "coap://h#f",
        "coap://user@h", "coap://[2001:db8::1", "coap://[2001:db8::1]x", "coap://h:99999", "coap://h:x",
        "coap://h:", "coap://h b", "coap://h/a b", "", "coap:"}) {
    EXPECT_NE(baseUriError(bad, 256), std::nullopt) << bad;
  }
  EXPECT_NE(baseUriError("coap://" + std::string(300, 'h'), 256), std::nullopt);
}

TEST(RdUri, PathSegmentsAreEncodedAsLibcoapDoes) {
  EXPECT_EQ(encodePathSegment("node-1"), "node-1");
  EXPECT_EQ(encodePathSegment("a b/c%"), "a%20b%2Fc%25");
  EXPECT_EQ(encodePathSegment("~!$&'()*+,;=:@"), "~!$&'()*+,;=:@");
}

// ---- registration (RFC 9176 §5.3) ------------------------------------------------------------

TEST(RdRegister, TheRfcExampleRegistrationAndRead) {
  // RFC 9176 §5.3, the registration example (Figure 12-ish): POST /rd?ep=node1.
  ResourceDirectory rd;
  const std::string payload = "</sensors/temp>;rt=\"temperature-c\";if=\"sensor\",\n"
                              "</sensors/light>;rt=\"light-lux\";if=\"sensor\"";
  const RdReply r = rd.registerEndpoint("ep=node1", payload, "coap://[2001:db8:3::123]:61616", "", kT0);
  ASSERT_EQ(r.status, RdStatus::created) << r.payload;
  EXPECT_EQ(rdCoapCode(r.status), 201);
  EXPECT_EQ(r.location, "rd/node1");
  ASSERT_EQ(rd.size(), 1U);
  const Registration* node = rd.find("node1");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->ep, "node1");
  EXPECT_EQ(node->sector, "");
  EXPECT_EQ(node->base, "coap://[2001:db8:3::123]:61616");
  EXPECT_FALSE(node->base_explicit);
  EXPECT_EQ(node->lifetime, seconds(90000));
  EXPECT_EQ(node->expires, kT0 + seconds(90000));
  // GET /rd/node1 gives the links as registered (relative, not resolved).
  const RdReply read = rd.read("node1");
  ASSERT_EQ(read.status, RdStatus::content);
  const std::vector<Flat> expected = {
      {"/sensors/temp", {{"rt", "temperature-c"}, {"if", "sensor"}}},
      {"/sensors/light", {{"rt", "light-lux"}, {"if", "sensor"}}},
  };
  EXPECT_EQ(flatten(read.payload), expected);
  EXPECT_EQ(rd.read("node2").status, RdStatus::not_found);
}

TEST(RdRegister, EpIsMandatoryAndSingle) {
  ResourceDirectory rd;
  RdReply r = reg(rd, "lt=600");
  EXPECT_EQ(r.status, RdStatus::bad_request);
  EXPECT_EQ(r.payload, "missing ep");
  EXPECT_EQ(reg(rd, "ep=").status, RdStatus::bad_request);
  EXPECT_EQ(reg(rd, "ep").status, RdStatus::bad_request);
  r = reg(rd, "ep=a&ep=b");
  EXPECT_EQ(r.status, RdStatus::bad_request);
  EXPECT_EQ(r.payload, "duplicate ep");
  EXPECT_EQ(reg(rd, "ep=a&d=x&d=y").status, RdStatus::bad_request);
  EXPECT_EQ(reg(rd, "ep=a&d=").status, RdStatus::bad_request);
  EXPECT_EQ(reg(rd, "ep=" + std::string(64, 'n')).status, RdStatus::bad_request);  // RFC 9176: 63 bytes
  EXPECT_EQ(reg(rd, "ep=" + std::string(63, 'n')).status, RdStatus::created);
  EXPECT_EQ(reg(rd, "ep=a%0Ab").status, RdStatus::bad_request);  // control characters
  EXPECT_EQ(reg(rd, "ep=a%zz").status, RdStatus::bad_request);
  EXPECT_EQ(rd.size(), 1U);
}

TEST(RdRegister, EndpointNamesArePathCharactersSectorsAnything) {
  ResourceDirectory rd;
  // Percent-decoded from the query; the ep then names /rd/{ep} without any escaping.
  RdReply r = reg(rd, "ep=node%2D1%3Aa%40b&d=floor%2F3%20east");
  ASSERT_EQ(r.status, RdStatus::created) << r.payload;
  EXPECT_EQ(r.location, "rd/node-1:a@b");
  ASSERT_NE(rd.find("node-1:a@b"), nullptr);
  EXPECT_EQ(rd.find("node-1:a@b")->sector, "floor/3 east");
  r = reg(rd, "ep=" + joinQueryOptions({"a&b=c;d"}));
  ASSERT_EQ(r.status, RdStatus::created) << r.payload;
  EXPECT_EQ(r.location, "rd/a&b=c;d");
  EXPECT_EQ(targets(rd.lookupEndpoints("").payload), (std::vector<std::string>{"/rd/node-1:a@b", "/rd/a&b=c;d"}));
  for (const std::string_view bad : {"ep=a%2Fb", "ep=a%20b", "ep=a%25b", "ep=caf%C3%A9", "ep=a?b", "ep=a%23b",
                                     "ep=a%22b", "ep=a%3Cb"}) {
    r = reg(rd, bad);
    EXPECT_EQ(r.status, RdStatus::bad_request) << bad;
    EXPECT_NE(r.payload.find("ep may only contain"), std::string::npos) << bad << ": " << r.payload;
  }
  EXPECT_EQ(rd.size(), 2U);
}

TEST(RdRegister, LifetimeDefaultRangeAndClamp) {
  ResourceDirectory rd;  // min 60 s, max 7 days
  for (const std::string_view bad : {"lt=0", "lt=-5", "lt=abc", "lt=", "lt", "lt=4294967296", "lt=99999999999",
                                     "lt=604801", "lt=60&lt=60"}) {
    EXPECT_EQ(reg(rd, "ep=n&" + std::string(bad)).status, RdStatus::bad_request) << bad;
  }
  EXPECT_EQ(rd.size(), 0U);
  ASSERT_EQ(reg(rd, "ep=short&lt=10").status, RdStatus::created);
  EXPECT_EQ(rd.find("short")->lifetime, seconds(60));  // raised to the minimum
  ASSERT_EQ(reg(rd, "ep=week&lt=604800").status, RdStatus::created);
  EXPECT_EQ(rd.find("week")->expires, kT0 + seconds(604800));
  ASSERT_EQ(reg(rd, "ep=ten&lt=600").status, RdStatus::created);
  EXPECT_EQ(rd.find("ten")->expires, kT0 + seconds(600));
  // The limits bound the RFC's range too: lt up to 2^32-1 with a large enough maximum.
  RdLimits wide;
  wide.max_lifetime = seconds(99999999999);
  ResourceDirectory big(wide);
  ASSERT_EQ(reg(big, "ep=n&lt=4294967295").status, RdStatus::created);
  EXPECT_EQ(big.find("n")->lifetime, seconds(4294967295));
  EXPECT_EQ(reg(big, "ep=m&lt=4294967296").status, RdStatus::bad_request);
}

TEST(RdRegister, BaseIsCheckedAndDefaultsToTheRequester) {
  ResourceDirectory rd;
  for (const std::string_view bad : {"base=http://h", "base=/x", "base=coap://h%3Fq", "base=coap://h%23f",
                                     "base=coap:///x", "base=coap://u%40h", "base=", "base"}) {
    const RdReply r = reg(rd, "ep=n&" + std::string(bad));
    EXPECT_EQ(r.status, RdStatus::bad_request) << bad;
    EXPECT_FALSE(r.payload.empty());
  }
  EXPECT_EQ(reg(rd, "ep=n&base=coap://a&base=coap://b").status, RdStatus::bad_request);
  ASSERT_EQ(reg(rd, "ep=n&base=coaps://[2001:db8::9]:5684/dev").status, RdStatus::created);
  EXPECT_EQ(rd.find("n")->base, "coaps://[2001:db8::9]:5684/dev");
  EXPECT_TRUE(rd.find("n")->base_explicit);
  // No base= and no usable requester address: nothing to resolve the links against.
  EXPECT_EQ(rd.registerEndpoint("ep=m", "</a>", "", "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.registerEndpoint("ep=m", "</a>", "garbage", "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.size(), 1U);
}

TEST(RdRegister, UnknownParametersBecomeEndpointAttributes) {
  ResourceDirectory rd;
  ASSERT_EQ(reg(rd, "ep=n&et=tag:example.com,2020:platform&vendor=ACME&sleepy").status, RdStatus::created);
  const Registration* n = rd.find("n");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->extra_attributes.size(), 3U);
  EXPECT_EQ(n->extra_attributes[0].name, "et");
  EXPECT_EQ(n->extra_attributes[0].value, "tag:example.com,2020:platform");
  EXPECT_EQ(n->extra_attributes[1].name, "vendor");
  EXPECT_EQ(n->extra_attributes[2].value, std::nullopt);
  // Lookup-only and link-only parameters are not endpoint attributes.
  for (const std::string_view bad : {"page=1", "count=1", "href=/x", "anchor=/x", "rel=x", "rt=x", "if=x"}) {
    EXPECT_EQ(reg(rd, "ep=m&" + std::string(bad)).status, RdStatus::bad_request) << bad;
  }
  std::string many = "ep=m";
  for (int i = 0; i < 17; ++i) many += "&a" + std::to_string(i) + "=1";
  EXPECT_EQ(reg(rd, many).status, RdStatus::bad_request);
  EXPECT_EQ(reg(rd, "ep=m&x=" + std::string(257, 'v')).status, RdStatus::bad_request);
  EXPECT_EQ(reg(rd, "ep=m&x=a%01").status, RdStatus::bad_request);
  EXPECT_EQ(reg(rd, "ep=m&" + std::string(64, 'x') + "=1").status, RdStatus::bad_request);
  EXPECT_EQ(rd.size(), 1U);
}

TEST(RdRegister, SameEndpointReplacesInPlaceAndKeepsItsLocation) {
  ResourceDirectory rd;
  std::vector<std::pair<std::string, RdEvent>> events;
  rd.onChange([&events](const Registration& r, RdEvent e) { events.emplace_back(r.ep, e); });
  ASSERT_EQ(reg(rd, "ep=first", "</1>").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=second&d=floor-1&lt=600&et=old", "</x>;rt=a,</y>").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=third", "</3>").status, RdStatus::created);
  const RdReply again = reg(rd, "ep=second&d=floor-1&lt=900", "</z>", kT0 + seconds(100));
  ASSERT_EQ(again.status, RdStatus::created) << again.payload;
  EXPECT_EQ(again.location, "rd/second");
  EXPECT_EQ(rd.size(), 3U);
  const Registration* second = rd.find("second");
  EXPECT_EQ(second->lifetime, seconds(900));
  EXPECT_EQ(second->expires, kT0 + seconds(1000));
  EXPECT_TRUE(second->extra_attributes.empty());  // a registration is replaced, not merged
  EXPECT_EQ(targets(rd.read("second").payload), (std::vector<std::string>{"/z"}));
  // The order stays the order of first registration.
  EXPECT_EQ(targets(rd.lookupEndpoints("").payload),
            (std::vector<std::string>{"/rd/first", "/rd/second", "/rd/third"}));
  // Another sector: still the same endpoint (one registration per ep), the sector moves.
  ASSERT_EQ(reg(rd, "ep=second&d=floor-2").status, RdStatus::created);
  EXPECT_EQ(rd.size(), 3U);
  EXPECT_EQ(rd.find("second")->sector, "floor-2");
  const std::vector<std::pair<std::string, RdEvent>> expected = {
      {"first", RdEvent::added},     {"second", RdEvent::added},   {"third", RdEvent::added},
      {"second", RdEvent::updated},  {"second", RdEvent::updated},
  };
  EXPECT_EQ(events, expected);
  // The old expiry is gone: only the new one counts.
  EXPECT_TRUE(rd.expire(kT0 + seconds(700)).empty());
}

TEST(RdRegister, MalformedPayloadIsRefusedWithTheParserDiagnosticAndChangesNothing) {
  ResourceDirectory rd;
  int callbacks = 0;
  rd.onChange([&callbacks](const Registration&, RdEvent) { ++callbacks; });
  RdReply r = reg(rd, "ep=n", "</a>;rt=x,<b");
  EXPECT_EQ(r.status, RdStatus::bad_request);
  EXPECT_EQ(r.payload.rfind("offset ", 0), 0U) << r.payload;
  EXPECT_EQ(rd.size(), 0U);
  EXPECT_EQ(callbacks, 0);
  EXPECT_EQ(rd.memoryBytes(), 0U);
  // Re-registration with a broken payload leaves the registration as it was, lifetime included.
  ASSERT_EQ(reg(rd, "ep=n&lt=600", "</good>;rt=x").status, RdStatus::created);
  const std::size_t bytes = rd.memoryBytes();
  r = reg(rd, "ep=n&lt=900", "</bad>;rt=\"unterminated", kT0 + seconds(100));
  EXPECT_EQ(r.status, RdStatus::bad_request);
  EXPECT_EQ(r.payload.rfind("offset ", 0), 0U) << r.payload;
  EXPECT_EQ(rd.find("n")->lifetime, seconds(600));
  EXPECT_EQ(rd.find("n")->expires, kT0 + seconds(600));
  EXPECT_EQ(targets(rd.read("n").payload), (std::vector<std::string>{"/good"}));
  EXPECT_EQ(rd.memoryBytes(), bytes);
  EXPECT_EQ(callbacks, 1);
  // A bad parameter next to a good payload: refused too, nothing changes.
  EXPECT_EQ(reg(rd, "ep=n&lt=0", "</other>").status, RdStatus::bad_request);
  EXPECT_EQ(targets(rd.read("n").payload), (std::vector<std::string>{"/good"}));
}

TEST(RdRegister, PayloadAndLinkLimits) {
  RdLimits limits;
  limits.max_payload_bytes = 64;
  limits.max_links_per_registration = 3;
  ResourceDirectory rd(limits);
  const RdReply big = reg(rd, "ep=n", "</" + std::string(70, 'a') + ">");
  EXPECT_EQ(big.status, RdStatus::payload_too_large);
  EXPECT_EQ(rdCoapCode(big.status), 413);
  EXPECT_EQ(reg(rd, "ep=n", "</a>,</b>,</c>,</d>").status, RdStatus::bad_request);
  EXPECT_EQ(rd.size(), 0U);
  EXPECT_EQ(reg(rd, "ep=n", "</a>,</b>,</c>").status, RdStatus::created);
  EXPECT_EQ(reg(rd, "ep=e", "").status, RdStatus::created);  // no links is a valid registration
}

TEST(RdRegister, FullDirectoryRefusesNewEndpointsButNotReplacements) {
  RdLimits limits;
  limits.max_registrations = 2;
  ResourceDirectory rd(limits);
  ASSERT_EQ(reg(rd, "ep=a").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=b").status, RdStatus::created);
  const RdReply full = reg(rd, "ep=c");
  EXPECT_EQ(full.status, RdStatus::service_unavailable);
  EXPECT_EQ(rdCoapCode(full.status), 503);
  EXPECT_EQ(rd.size(), 2U);
  EXPECT_EQ(reg(rd, "ep=a&lt=120").status, RdStatus::created);
  ASSERT_EQ(rd.remove("b", "").status, RdStatus::deleted);
  EXPECT_EQ(reg(rd, "ep=c").status, RdStatus::created);
}

TEST(RdRegister, OnlyTheRegistrantMayReplaceUpdateOrRemove) {
  ResourceDirectory rd;
  ASSERT_EQ(reg(rd, "ep=dev-1", "</a>", kT0, "dev-1").status, RdStatus::created);
  EXPECT_EQ(rd.find("dev-1")->registrant, "dev-1");
  EXPECT_EQ(reg(rd, "ep=dev-1", "</evil>", kT0, "dev-2").status, RdStatus::forbidden);
  EXPECT_EQ(reg(rd, "ep=dev-1", "</evil>", kT0, "").status, RdStatus::forbidden);
  EXPECT_EQ(rd.update("dev-1", "lt=60", "", kNodeBase, "dev-2", kT0).status, RdStatus::forbidden);
  EXPECT_EQ(rd.remove("dev-1", "").status, RdStatus::forbidden);
  EXPECT_EQ(rdCoapCode(RdStatus::forbidden), 403);
  EXPECT_EQ(targets(rd.read("dev-1").payload), (std::vector<std::string>{"/a"}));
  EXPECT_EQ(rd.update("dev-1", "lt=60", "", kNodeBase, "dev-1", kT0).status, RdStatus::changed);
  EXPECT_EQ(rd.remove("dev-1", "dev-1").status, RdStatus::deleted);
  // A registration made without an identity can be taken over by one (and then it is owned).
  ASSERT_EQ(reg(rd, "ep=dev-3", "</a>", kT0, "").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=dev-3", "</b>", kT0, "dev-3").status, RdStatus::created);
  EXPECT_EQ(rd.find("dev-3")->registrant, "dev-3");
  EXPECT_EQ(rd.remove("dev-3", "").status, RdStatus::forbidden);
}

// ---- simple registration (RFC 9176 §5.1) -------------------------------------------------------

TEST(RdSimple, QueryIsCheckedBeforeTheFetchAndTheFetchedLinksAreRegistered) {
  ResourceDirectory rd;
  EXPECT_EQ(rd.checkSimpleRegistration("ep=n&lt=600"), std::nullopt);
  ASSERT_NE(rd.checkSimpleRegistration("ep=n&base=coap://h"), std::nullopt);
  EXPECT_EQ(rd.checkSimpleRegistration("ep=n&base=coap://h")->status, RdStatus::bad_request);
  EXPECT_NE(rd.checkSimpleRegistration("lt=600"), std::nullopt);
  EXPECT_NE(rd.checkSimpleRegistration("ep=n&lt=0"), std::nullopt);
  const RdReply r = rd.registerSimple("ep=n&lt=600", "</sensors/temp>;rt=\"temperature\"", kNodeBase, "", kT0);
  ASSERT_EQ(r.status, RdStatus::changed) << r.payload;
  EXPECT_EQ(rdCoapCode(r.status), 204);
  EXPECT_EQ(rd.find("n")->base, kNodeBase);
  EXPECT_EQ(targets(rd.lookupResources("").payload),
            (std::vector<std::string>{std::string(kNodeBase) + "/sensors/temp"}));
  const RdReply bad = rd.registerSimple("ep=m", "<broken", kNodeBase, "", kT0);
  EXPECT_EQ(bad.status, RdStatus::bad_request);
  EXPECT_NE(bad.payload.find("/.well-known/core: offset "), std::string::npos) << bad.payload;
  EXPECT_EQ(rd.registerSimple("ep=m&base=coap://h", "</a>", kNodeBase, "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.size(), 1U);
}

// ---- update and removal (RFC 9176 §5.3.1, §5.3.2) ----------------------------------------------

TEST(RdUpdate, RefreshesTheLifetimeAndAppliesParameters) {
  ResourceDirectory rd;
  std::vector<RdEvent> events;
  rd.onChange([&events](const Registration&, RdEvent e) { events.push_back(e); });
  ASSERT_EQ(reg(rd, "ep=n&lt=600&et=a&vendor=x", "</a>;rt=x").status, RdStatus::created);
  // Empty update: lifetime restarts from now.
  RdReply r = rd.update("n", "", "", kNodeBase, "", kT0 + seconds(500));
  ASSERT_EQ(r.status, RdStatus::changed) << r.payload;
  EXPECT_EQ(rdCoapCode(r.status), 204);
  EXPECT_EQ(rd.find("n")->expires, kT0 + seconds(1100));
  EXPECT_TRUE(rd.expire(kT0 + seconds(1000)).empty());
  // New lt, attribute override (all earlier values of that name), empty payload keeps the links.
  r = rd.update("n", "lt=120&et=b&et=c", "", kNodeBase, "", kT0 + seconds(1000));
  ASSERT_EQ(r.status, RdStatus::changed) << r.payload;
  const Registration* n = rd.find("n");
  EXPECT_EQ(n->lifetime, seconds(120));
  EXPECT_EQ(n->expires, kT0 + seconds(1120));
  ASSERT_EQ(n->extra_attributes.size(), 3U);
  EXPECT_EQ(n->extra_attributes[0].name, "vendor");
  EXPECT_EQ(n->extra_attributes[1].value, "b");
  EXPECT_EQ(n->extra_attributes[2].value, "c");
  EXPECT_EQ(targets(rd.read("n").payload), (std::vector<std::string>{"/a"}));
  // A payload replaces the links.
  ASSERT_EQ(rd.update("n", "", "</b>,</c>", kNodeBase, "", kT0 + seconds(1000)).status, RdStatus::changed);
  EXPECT_EQ(targets(rd.read("n").payload), (std::vector<std::string>{"/b", "/c"}));
  EXPECT_EQ(events, (std::vector<RdEvent>{RdEvent::added, RdEvent::updated, RdEvent::updated, RdEvent::updated}));
}

TEST(RdUpdate, RefusalsChangeNothing) {
  ResourceDirectory rd;
  ASSERT_EQ(reg(rd, "ep=n&lt=600", "</a>").status, RdStatus::created);
  const RdReply unknown = rd.update("m", "", "", kNodeBase, "", kT0);
  EXPECT_EQ(unknown.status, RdStatus::not_found);
  EXPECT_EQ(rdCoapCode(unknown.status), 404);
  EXPECT_EQ(rd.update("n", "ep=m", "", kNodeBase, "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.update("n", "d=x", "", kNodeBase, "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.update("n", "lt=0", "", kNodeBase, "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.update("n", "base=http://x", "", kNodeBase, "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(rd.update("n", "rt=x", "", kNodeBase, "", kT0).status, RdStatus::bad_request);
  // lt given with a malformed payload: neither is applied.
  const RdReply bad = rd.update("n", "lt=900", "</x>;=", kNodeBase, "", kT0 + seconds(300));
  EXPECT_EQ(bad.status, RdStatus::bad_request);
  EXPECT_EQ(bad.payload.rfind("offset ", 0), 0U) << bad.payload;
  EXPECT_EQ(rd.find("n")->lifetime, seconds(600));
  EXPECT_EQ(rd.find("n")->expires, kT0 + seconds(600));
  EXPECT_EQ(targets(rd.read("n").payload), (std::vector<std::string>{"/a"}));
  RdLimits small;
  small.max_payload_bytes = 16;
  small.max_endpoint_attributes = 2;
  ResourceDirectory tight(small);
  ASSERT_EQ(reg(tight, "ep=n&a=1&b=2", "</a>").status, RdStatus::created);
  EXPECT_EQ(tight.update("n", "", std::string(20, ' '), kNodeBase, "", kT0).status, RdStatus::payload_too_large);
  EXPECT_EQ(tight.update("n", "c=3", "", kNodeBase, "", kT0).status, RdStatus::bad_request);
  EXPECT_EQ(tight.update("n", "a=9", "", kNodeBase, "", kT0).status, RdStatus::changed);  // override: still 2
}

TEST(RdUpdate, AnImplicitBaseFollowsTheEndpointAndAnExplicitOneStays) {
  ResourceDirectory rd;
  ASSERT_EQ(rd.registerEndpoint("ep=moving", "</a>", "coap://192.0.2.1:5683", "", kT0).status, RdStatus::created);
  ASSERT_EQ(rd.registerEndpoint("ep=fixed&base=coap://node.example", "</a>", "coap://192.0.2.2:5683", "", kT0).status,
            RdStatus::created);
  ASSERT_EQ(rd.update("moving", "", "", "coap://192.0.2.9:40000", "", kT0).status, RdStatus::changed);
  ASSERT_EQ(rd.update("fixed", "", "", "coap://192.0.2.9:40001", "", kT0).status, RdStatus::changed);
  EXPECT_EQ(rd.find("moving")->base, "coap://192.0.2.9:40000");
  EXPECT_EQ(rd.find("fixed")->base, "coap://node.example");
  // An update that gives base= makes it explicit from then on.
  ASSERT_EQ(rd.update("moving", "base=coap://m.example", "", "coap://192.0.2.10:1", "", kT0).status,
            RdStatus::changed);
  ASSERT_EQ(rd.update("moving", "", "", "coap://192.0.2.11:1", "", kT0).status, RdStatus::changed);
  EXPECT_EQ(rd.find("moving")->base, "coap://m.example");
}

TEST(RdRemove, DeletesOnceAndReportsIt) {
  ResourceDirectory rd;
  std::vector<std::pair<std::string, RdEvent>> events;
  rd.onChange([&events](const Registration& r, RdEvent e) { events.emplace_back(r.ep, e); });
  ASSERT_EQ(reg(rd, "ep=n").status, RdStatus::created);
  const RdReply r = rd.remove("n", "");
  EXPECT_EQ(r.status, RdStatus::deleted);
  EXPECT_EQ(rdCoapCode(r.status), 202);
  EXPECT_EQ(rd.remove("n", "").status, RdStatus::not_found);
  EXPECT_EQ(rd.find("n"), nullptr);
  EXPECT_EQ(rd.size(), 0U);
  EXPECT_EQ(rd.nextExpiry(), std::nullopt);
  EXPECT_EQ(rd.memoryBytes(), 0U);
  EXPECT_EQ(events.back(), (std::pair<std::string, RdEvent>{"n", RdEvent::removed}));
}

// ---- expiry -------------------------------------------------------------------------------------

TEST(RdExpiry, RegistrationsEndExactlyAtTheirLifetime) {
  ResourceDirectory rd;
  std::vector<std::string> removed;
  rd.onChange([&removed](const Registration& r, RdEvent e) {
    if (e == RdEvent::removed) removed.push_back(r.ep);
  });
  EXPECT_EQ(rd.nextExpiry(), std::nullopt);
  ASSERT_EQ(reg(rd, "ep=slow&lt=900").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=fast&lt=60").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=mid&lt=300").status, RdStatus::created);
  EXPECT_EQ(rd.nextExpiry(), kT0 + seconds(60));
  EXPECT_TRUE(rd.expire(kT0 + seconds(59)).empty());
  std::vector<Registration> gone = rd.expire(kT0 + seconds(60));
  ASSERT_EQ(gone.size(), 1U);
  EXPECT_EQ(gone[0].ep, "fast");
  EXPECT_EQ(rd.find("fast"), nullptr);
  EXPECT_EQ(rd.nextExpiry(), kT0 + seconds(300));
  // A refresh before the end moves it.
  ASSERT_EQ(rd.update("mid", "", "", kNodeBase, "", kT0 + seconds(299)).status, RdStatus::changed);
  EXPECT_EQ(rd.nextExpiry(), kT0 + seconds(599));
  gone = rd.expire(kT0 + seconds(10000));
  ASSERT_EQ(gone.size(), 2U);
  EXPECT_EQ(gone[0].ep, "mid");  // in order of expiry
  EXPECT_EQ(gone[1].ep, "slow");
  EXPECT_EQ(removed, (std::vector<std::string>{"fast", "mid", "slow"}));
  EXPECT_EQ(rd.size(), 0U);
  EXPECT_EQ(rd.memoryBytes(), 0U);
  EXPECT_EQ(rd.update("slow", "", "", kNodeBase, "", kT0 + seconds(10000)).status, RdStatus::not_found);
  // The same endpoint may register again afterwards (a new registration, at the end of the order).
  EXPECT_EQ(reg(rd, "ep=fast").status, RdStatus::created);
}

// ---- lookup (RFC 9176 §6) -----------------------------------------------------------------------

TEST(RdLookup, TheRfcResourceLookupExample) {
  // RFC 9176 §6.3: GET /rd-lookup/res?rt=tag:example.org,2020:temperature
  ResourceDirectory rd;
  ASSERT_EQ(rd.registerEndpoint("ep=node1", "</temp>;rt=\"tag:example.org,2020:temperature\",</light>;rt=\"light-lux\"",
                                "coap://[2001:db8:3::123]:61616", "", kT0)
                .status,
            RdStatus::created);
  const RdReply r = rd.lookupResources("rt=tag:example.org,2020:temperature");
  ASSERT_EQ(r.status, RdStatus::content) << r.payload;
  EXPECT_EQ(rdCoapCode(r.status), 205);
  const std::vector<Flat> expected = {
      {"coap://[2001:db8:3::123]:61616/temp",
       {{"rt", "tag:example.org,2020:temperature"}, {"anchor", "coap://[2001:db8:3::123]:61616"}}},
  };
  EXPECT_EQ(flatten(r.payload), expected);
}

TEST(RdLookup, TheRfcEndpointLookupExample) {
  // RFC 9176 §6.3: GET /rd-lookup/ep?et=tag:example.com,2020:platform
  ResourceDirectory rd;
  ASSERT_EQ(rd.registerEndpoint("ep=node5&et=tag:example.com,2020:platform&lt=600", "</a>",
                                "coap://[2001:db8:3::127]:61616", "", kT0)
                .status,
            RdStatus::created);
  ASSERT_EQ(rd.registerEndpoint("ep=node6&lt=600", "</a>", "coap://[2001:db8:3::128]:61616", "", kT0).status,
            RdStatus::created);
  ASSERT_EQ(rd.registerEndpoint("ep=node7&d=floor-3&et=tag:example.com,2020:platform&lt=600", "</a>",
                                "coap://[2001:db8:3::129]:61616", "", kT0)
                .status,
            RdStatus::created);
  const RdReply r = rd.lookupEndpoints("et=tag:example.com,2020:platform");
  ASSERT_EQ(r.status, RdStatus::content) << r.payload;
  const std::vector<Flat> expected = {
      {"/rd/node5",
       {{"base", "coap://[2001:db8:3::127]:61616"},
        {"ep", "node5"},
        {"lt", "600"},
        {"et", "tag:example.com,2020:platform"}}},
      {"/rd/node7",
       {{"base", "coap://[2001:db8:3::129]:61616"},
        {"ep", "node7"},
        {"d", "floor-3"},
        {"lt", "600"},
        {"et", "tag:example.com,2020:platform"}}},
  };
  EXPECT_EQ(flatten(r.payload), expected);
}

TEST(RdLookup, LinksAndAnchorsAreResolvedAgainstTheBase) {
  // RFC 9176 §5.3's registration with base= and anchors (with a coap base instead of http).
  ResourceDirectory rd;
  const std::string payload =
      "</sensors/temp>;rt=\"temperature-c\";if=\"sensor\","
      "<http://www.example.com/sensors/t123>;anchor=\"/sensors/temp\";rel=\"describedby\","
      "</t>;anchor=\"/sensors/temp\";rel=\"alternate\","
      "<rel/x>;anchor=\"sub/\"";
  ASSERT_EQ(reg(rd, "ep=node1&base=coap://[2001:db8:1::1]/dev/", payload).status, RdStatus::created);
  const std::vector<Flat> expected = {
      {"coap://[2001:db8:1::1]/sensors/temp",
       {{"rt", "temperature-c"}, {"if", "sensor"}, {"anchor", "coap://[2001:db8:1::1]/dev/"}}},
      {"http://www.example.com/sensors/t123",
       {{"rel", "describedby"}, {"anchor", "coap://[2001:db8:1::1]/sensors/temp"}}},
      {"coap://[2001:db8:1::1]/t", {{"rel", "alternate"}, {"anchor", "coap://[2001:db8:1::1]/sensors/temp"}}},
      // Target and anchor are both resolved against the base (RFC 9176 Appendix C), not the
      // target against the anchor.
      {"coap://[2001:db8:1::1]/dev/rel/x", {{"anchor", "coap://[2001:db8:1::1]/dev/sub/"}}},
  };
  EXPECT_EQ(flatten(rd.lookupResources("").payload), expected);
}

class RdFilters : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(rd_.registerEndpoint("ep=lamp&d=floor-1&et=oic.d.light",
                                   "</light>;rt=\"core.light oic.r.switch\";if=\"core.a\";ct=\"0 60\","
                                   "</dim>;rt=\"core.light.dim\";obs",
                                   "coap://[2001:db8::1]", "", kT0)
                  .status,
              RdStatus::created);
    ASSERT_EQ(rd_.registerEndpoint("ep=thermo&d=floor-2&lt=600",
                                   "</temp>;rt=\"temperature\";if=\"core.s\";ct=60,</hum>;rt=\"humidity\"",
                                   "coap://[2001:db8::2]", "", kT0)
                  .status,
              RdStatus::created);
    ASSERT_EQ(rd_.registerEndpoint("ep=plain", "</x>", "coap://192.0.2.3", "", kT0).status, RdStatus::created);
  }
  std::vector<std::string> res(std::string_view query) {
    const RdReply r = rd_.lookupResources(query);
    EXPECT_EQ(r.status, RdStatus::content) << query << ": " << r.payload;
    return targets(r.payload);
  }
  std::vector<std::string> eps(std::string_view query) {
    const RdReply r = rd_.lookupEndpoints(query);
    EXPECT_EQ(r.status, RdStatus::content) << query << ": " << r.payload;
    return targets(r.payload);
  }
  ResourceDirectory rd_;
};

using Targets = std::vector<std::string>;

TEST_F(RdFilters, ExactPrefixAndListMembership) {
  EXPECT_EQ(res("rt=temperature"), Targets{"coap://[2001:db8::2]/temp"});
  EXPECT_EQ(res("rt=temp"), Targets{});  // exact unless '*'
  EXPECT_EQ(res("rt=temp*"), Targets{"coap://[2001:db8::2]/temp"});
  EXPECT_EQ(res("rt=core.light*"), (Targets{"coap://[2001:db8::1]/light", "coap://[2001:db8::1]/dim"}));
  EXPECT_EQ(res("rt=oic.r.switch"), Targets{"coap://[2001:db8::1]/light"});  // one word of rt="a b"
  EXPECT_EQ(res("rt=core.light%20oic.r.switch"), Targets{"coap://[2001:db8::1]/light"});  // the whole value
  EXPECT_EQ(res("if=core.s"), Targets{"coap://[2001:db8::2]/temp"});
  EXPECT_EQ(res("ct=60"), (Targets{"coap://[2001:db8::1]/light", "coap://[2001:db8::2]/temp"}));
  EXPECT_EQ(res("rt=*"), (Targets{"coap://[2001:db8::1]/light", "coap://[2001:db8::1]/dim",
                                  "coap://[2001:db8::2]/temp", "coap://[2001:db8::2]/hum"}));
  EXPECT_EQ(res("obs"), Targets{"coap://[2001:db8::1]/dim"});  // presence
  EXPECT_EQ(res("RT=humidity"), Targets{"coap://[2001:db8::2]/hum"});  // names are case-insensitive
  EXPECT_EQ(res("rt=Humidity"), Targets{});  // values are not
}

TEST_F(RdFilters, EndpointAttributesFilterResources) {
  EXPECT_EQ(res("ep=thermo"), (Targets{"coap://[2001:db8::2]/temp", "coap://[2001:db8::2]/hum"}));
  EXPECT_EQ(res("d=floor-*&rt=humidity"), Targets{"coap://[2001:db8::2]/hum"});
  EXPECT_EQ(res("et=oic.d.light&obs"), Targets{"coap://[2001:db8::1]/dim"});
  EXPECT_EQ(res("lt=600&rt=temperature"), Targets{"coap://[2001:db8::2]/temp"});
  EXPECT_EQ(res("base=coap://192.0.2.3"), Targets{"coap://192.0.2.3/x"});
  EXPECT_EQ(res("ep=lamp&rt=temperature"), Targets{});  // all filters must match
}

TEST_F(RdFilters, HrefMatchesAsRegisteredOrResolved) {
  EXPECT_EQ(res("href=/temp"), Targets{"coap://[2001:db8::2]/temp"});
  EXPECT_EQ(res("href=coap://[2001:db8::2]/temp"), Targets{"coap://[2001:db8::2]/temp"});
  EXPECT_EQ(res("href=coap://[2001:db8::1]*"), (Targets{"coap://[2001:db8::1]/light", "coap://[2001:db8::1]/dim"}));
  EXPECT_EQ(res("href=/h*"), Targets{"coap://[2001:db8::2]/hum"});
  EXPECT_EQ(eps("href=/rd/plain"), Targets{"/rd/plain"});
  EXPECT_EQ(eps("href=/rd/*"), (Targets{"/rd/lamp", "/rd/thermo", "/rd/plain"}));
  EXPECT_EQ(eps("href=/temp"), Targets{"/rd/thermo"});  // an endpoint with that link
  EXPECT_EQ(eps("href"), (Targets{"/rd/lamp", "/rd/thermo", "/rd/plain"}));  // every registration resource
}

TEST_F(RdFilters, EndpointLookupByEndpointOrResourceAttributes) {
  EXPECT_EQ(eps(""), (Targets{"/rd/lamp", "/rd/thermo", "/rd/plain"}));
  EXPECT_EQ(eps("d=floor-2"), Targets{"/rd/thermo"});
  EXPECT_EQ(eps("d=floor*"), (Targets{"/rd/lamp", "/rd/thermo"}));
  EXPECT_EQ(eps("d"), (Targets{"/rd/lamp", "/rd/thermo"}));  // has a sector
  EXPECT_EQ(eps("ep=pl*"), Targets{"/rd/plain"});
  EXPECT_EQ(eps("rt=humidity"), Targets{"/rd/thermo"});  // has such a resource
  EXPECT_EQ(eps("rt=core.light.dim&if=core.a"), Targets{"/rd/lamp"});  // each filter by some link
  EXPECT_EQ(eps("et=oic.d.light"), Targets{"/rd/lamp"});
  EXPECT_EQ(eps("ep=nobody"), Targets{});
  EXPECT_EQ(rd_.lookupEndpoints("ep=nobody").payload, "");
}

TEST_F(RdFilters, MalformedLookupQueriesAreRefused) {
  for (const std::string_view bad : {"page=1", "page=x&count=1", "count=-1", "count=", "count", "count=1&count=2",
                                     "page=1&page=1&count=1", "rt=%zz", "a%20b=1", "count=257"}) {
    EXPECT_EQ(rd_.lookupResources(bad).status, RdStatus::bad_request) << bad;
    EXPECT_EQ(rd_.lookupEndpoints(bad).status, RdStatus::bad_request) << bad;
  }
}

TEST(RdPaging, PagesOfCountStartingAtZero) {
  ResourceDirectory rd;
  ASSERT_EQ(reg(rd, "ep=a", "</1>,</2>,</3>").status, RdStatus::created);
  ASSERT_EQ(reg(rd, "ep=b", "</4>,</5>").status, RdStatus::created);
  auto page = [&rd](std::string_view query) {
    std::vector<std::string> paths;
    const RdReply r = rd.lookupResources(query);
    EXPECT_EQ(r.status, RdStatus::content) << query << ": " << r.payload;
    for (const std::string& t : targets(r.payload)) paths.push_back(t.substr(t.rfind('/')));
    return paths;
  };
  EXPECT_EQ(page("count=2"), (Targets{"/1", "/2"}));
  EXPECT_EQ(page("page=0&count=2"), (Targets{"/1", "/2"}));
  EXPECT_EQ(page("page=1&count=2"), (Targets{"/3", "/4"}));  // across registrations
  EXPECT_EQ(page("page=2&count=2"), (Targets{"/5"}));
  EXPECT_EQ(page("page=3&count=2"), Targets{});
  EXPECT_EQ(page("count=0"), Targets{});
  EXPECT_EQ(page("page=7&count=0"), Targets{});
  EXPECT_EQ(page("count=5"), (Targets{"/1", "/2", "/3", "/4", "/5"}));
  EXPECT_EQ(page("count=256"), (Targets{"/1", "/2", "/3", "/4", "/5"}));
  EXPECT_EQ(page("page=18446744073709551615&count=256"), Targets{});  // no overflow
  EXPECT_EQ(page("page=1&count=1&href=/4*"), Targets{});  // paging applies after filtering
  EXPECT_EQ(page("page=0&count=1&href=/4*"), Targets{"/4"});
  EXPECT_EQ(targets(rd.lookupEndpoints("page=1&count=1").payload), Targets{"/rd/b"});
}

TEST(RdPaging, UnpagedLookupsAreBoundedAndSayHowToPage) {
  RdLimits limits;
  limits.max_page_count = 4;
  ResourceDirectory rd(limits);
  ASSERT_EQ(reg(rd, "ep=a", "</1>,</2>,</3>,</4>").status, RdStatus::created);
  EXPECT_EQ(targets(rd.lookupResources("").payload).size(), 4U);  // exactly the maximum: fine
  ASSERT_EQ(reg(rd, "ep=b", "</5>").status, RdStatus::created);
  const RdReply refused = rd.lookupResources("");
  EXPECT_EQ(refused.status, RdStatus::bad_request);
  EXPECT_NE(refused.payload.find("count="), std::string::npos) << refused.payload;
  EXPECT_EQ(targets(rd.lookupResources("page=1&count=4").payload).size(), 1U);
  EXPECT_EQ(rd.lookupResources("count=5").status, RdStatus::bad_request);
  EXPECT_EQ(targets(rd.lookupResources("href=/5").payload).size(), 1U);  // few matches: fine
}

// ---- memory -------------------------------------------------------------------------------------

TEST(RdMemory, BytesFollowTheRegistrationsAndStayBounded) {
  RdLimits limits;
  limits.max_registrations = 50;
  limits.max_payload_bytes = 2048;
  ResourceDirectory rd(limits);
  EXPECT_EQ(rd.memoryBytes(), 0U);
  ASSERT_EQ(reg(rd, "ep=small", "</a>").status, RdStatus::created);
  const std::size_t small = rd.memoryBytes();
  EXPECT_GT(small, 0U);
  std::string big;
  for (int i = 0; i < 40; ++i) big += (i ? "," : "") + ("</sensor/" + std::to_string(i) + ">;rt=\"temperature\"");
  ASSERT_EQ(reg(rd, "ep=small", big).status, RdStatus::created);
  EXPECT_GT(rd.memoryBytes(), small + 40 * 20);
  ASSERT_EQ(reg(rd, "ep=small", "</a>").status, RdStatus::created);
  EXPECT_EQ(rd.memoryBytes(), small);  // replaced, not added
  // Filling the directory with maximal registrations stays within a fixed multiple of the input.
  std::string full;
  for (int i = 0; full.size() < 1900; ++i) full += (i ? "," : "") + ("</s" + std::to_string(i) + ">;rt=\"r\"");
  for (int i = 0; i < 60; ++i) (void)reg(rd, "ep=n" + std::to_string(i), full);
  EXPECT_EQ(rd.size(), 50U);
  EXPECT_LT(rd.memoryBytes(), 50U * 2048U * 16U);
  for (const Registration* r : rd.registrations()) (void)rd.remove(r->id, "");
  EXPECT_EQ(rd.memoryBytes(), 0U);
}

}  // namespace
}  // namespace coap_edge::discovery
