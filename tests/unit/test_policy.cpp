// Access control as policy/acl.h specifies it: pattern compilation (every refusal with its
// position), matching (including adversarial paths), identity globs, and the decisions with
// their built-in rules.

#include "policy/acl.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace coap_edge::policy {
namespace {

PathPattern pattern(std::string_view text) {
  auto compiled = compilePathPattern(text);
  EXPECT_TRUE(compiled.ok()) << text << ": " << compiled.error.message;
  return compiled.ok() ? *compiled.value : PathPattern{};
}

Rule rule(std::string_view text) {
  auto compiled = compileRule(text);
  EXPECT_TRUE(compiled.ok()) << text << ": " << compiled.error.message;
  return compiled.ok() ? *compiled.value : Rule{};
}

IdentityPattern identity(std::string_view text) {
  auto compiled = compileIdentityPattern(text);
  EXPECT_TRUE(compiled.ok()) << text << ": " << compiled.error.message;
  return compiled.ok() ? *compiled.value : IdentityPattern{};
}

/// "offset: message" of a refused path pattern, or "ok".
std::string patternError(std::string_view text) {
  const auto compiled = compilePathPattern(text);
  if (compiled.ok()) return "ok";
  return std::to_string(compiled.error.offset) + ": " + compiled.error.message;
}

std::string ruleError(std::string_view text) {
  const auto compiled = compileRule(text);
  if (compiled.ok()) return "ok";
  return std::to_string(compiled.error.offset) + ": " + compiled.error.message;
}

Entry entry(std::vector<std::string_view> who, std::vector<std::string_view> allow) {
  Entry e;
  e.label = "test";
  for (auto w : who) e.who.push_back(identity(w));
  for (auto a : allow) e.allow.push_back(rule(a));
  return e;
}

std::string joined(std::size_t count, std::string_view segment) {
  std::string path;
  for (std::size_t i = 0; i < count; ++i) {
    if (i != 0) path += '/';
    path += segment;
  }
  return path;
}

// ---------------------------------------------------------------- compiling path patterns

TEST(PathPatternCompile, AcceptsTheDocumentedForms) {
  for (const char* text : {"/", "/status", "/nodes/**", "/nodes/*/actuators/**", "/**", "/**/temp", "/a/**/b/*",
                           "/.well-known/core", "/a-b_c.d~e", "/!$&'()+,;=:@", "/a%20b", "/%2A", "/x%2fy"}) {
    EXPECT_EQ(patternError(text), "ok") << text;
  }
}

TEST(PathPatternCompile, RefusesWithThePositionOfTheProblem) {
  EXPECT_EQ(patternError(""), R"(0: the path pattern is empty; write e.g. "/status")");
  EXPECT_EQ(patternError("status"), R"(0: a path pattern starts with '/', e.g. "/nodes/**")");
  EXPECT_EQ(patternError("/a//b"), "3: empty segment ('//') in the path pattern");
  EXPECT_EQ(patternError("//"), "1: empty segment ('//') in the path pattern");
  EXPECT_EQ(patternError("/a/"),
            R"(2: the path pattern ends with '/'; remove it ("/a/**" covers everything below /a))");
  EXPECT_EQ(patternError("/a**"), "2: '*' and '**' must be a whole segment (\"/a/*\" is one segment, \"/a/**\" any "
                                  "depth); write %2A for a literal '*'");
  EXPECT_EQ(patternError("/x/***").substr(0, 6), "3: '*'");
  EXPECT_EQ(patternError("/x/*a").substr(0, 6), "3: '*'");
  EXPECT_EQ(patternError("/a/.."), "3: '.' and '..' segments are not allowed: request paths are not normalised, so "
                                   "a rule never matches them");
  EXPECT_EQ(patternError("/./a").substr(0, 3), "1: ");
  EXPECT_EQ(patternError("/a/%2E%2e").substr(0, 10), "3: '.' and");  // escaped dots are dots
  EXPECT_EQ(patternError("/a/%2e").substr(0, 10), "3: '.' and");
  EXPECT_EQ(patternError("/ab%zz"), "3: invalid percent-encoding \"%zz\": '%' must be followed by two hex digits "
                                    "(write %25 for a literal '%')");
  EXPECT_EQ(patternError("/ab%4").substr(0, 30), "3: invalid percent-encoding \"%");
  EXPECT_EQ(patternError("/ab%"), "3: invalid percent-encoding \"%\": '%' must be followed by two hex digits (write "
                                  "%25 for a literal '%')");
  EXPECT_EQ(patternError("/a b"), "2: a space is not allowed in a path; percent-encode it (%20)");
  EXPECT_EQ(patternError("/a?x=1"), "2: a pattern matches the path only; remove the query ('?...')");
  EXPECT_EQ(patternError("/a#f"), "2: a pattern matches the path only; remove the fragment ('#...')");
  EXPECT_EQ(patternError("/caf\xc3\xa9"), "4: byte 0xC3 (non-ASCII) is not allowed in a path; percent-encode it (%C3)");
  EXPECT_EQ(patternError(std::string("/a\0b", 4)), "2: control character 0x00 is not allowed in a path; "
                                                   "percent-encode it (%00)");
  EXPECT_EQ(patternError("/a\\b"), "2: '\\' is not allowed in a path; percent-encode it (%5C)");
}

TEST(PathPatternCompile, LimitsLengthAndSegments) {
  const std::string longest = "/" + std::string(kMaxPatternBytes - 1, 'a');
  EXPECT_EQ(patternError(longest), "ok");
  EXPECT_EQ(patternError(longest + "a"), "256: the path pattern is 257 bytes long (at most 256)");
  const std::string deepest = "/" + joined(kMaxPatternSegments, "a");
  EXPECT_EQ(patternError(deepest), "ok");
  EXPECT_EQ(patternError(deepest + "/b"), std::to_string(deepest.size() + 1) +
                                             ": the path pattern has more than 32 segments");
}

TEST(PathPatternCompile, LiteralsAreKeptInLibcoapsCanonicalForm) {
  const auto p = pattern("/a%41/%7e/x%2fy/%c3%A9/%2A/**/**/*");
  ASSERT_EQ(p.tokenCount(), 7U);  // the two `**` collapse into one
  EXPECT_EQ(p.literal(0), "aA");      // %41 is an unreserved letter: written plainly
  EXPECT_EQ(p.literal(1), "~");
  EXPECT_EQ(p.literal(2), "x%2Fy");   // an escaped '/' stays escaped, in upper case
  EXPECT_EQ(p.literal(3), "%C3%A9");
  EXPECT_EQ(p.literal(4), "*");       // '*' is a sub-delim: libcoap does not escape it
  EXPECT_EQ(p.kind(5), PathPattern::Kind::any);
  EXPECT_EQ(p.kind(6), PathPattern::Kind::one);
  EXPECT_EQ(p.text(), "/a%41/%7e/x%2fy/%c3%A9/%2A/**/**/*");
}

// ---------------------------------------------------------------- matching

TEST(PathPatternMatch, LiteralsMatchExactly) {
  const auto p = pattern("/status");
  EXPECT_TRUE(p.matches("status"));
  EXPECT_FALSE(p.matches("Status"));
  EXPECT_FALSE(p.matches("status/x"));
  EXPECT_FALSE(p.matches("statu"));
  EXPECT_FALSE(p.matches(""));
  EXPECT_TRUE(pattern("/").matches(""));
  EXPECT_FALSE(pattern("/").matches("a"));
}

TEST(PathPatternMatch, SingleStarIsExactlyOneSegment) {
  const auto p = pattern("/nodes/*/actuators/**");
  EXPECT_TRUE(p.matches("nodes/n1/actuators"));
  EXPECT_TRUE(p.matches("nodes/n1/actuators/valve/1"));
  EXPECT_FALSE(p.matches("nodes/actuators"));
  EXPECT_FALSE(p.matches("nodes/a/b/actuators"));
  EXPECT_TRUE(pattern("/*").matches("x"));
  EXPECT_FALSE(pattern("/*").matches(""));
  EXPECT_FALSE(pattern("/*").matches("x/y"));
}

TEST(PathPatternMatch, DoubleStarAtStartMiddleAndEnd) {
  const auto end = pattern("/nodes/**");
  EXPECT_TRUE(end.matches("nodes"));
  EXPECT_TRUE(end.matches("nodes/a"));
  EXPECT_TRUE(end.matches("nodes/a/b/c"));
  EXPECT_FALSE(end.matches("node"));
  EXPECT_FALSE(end.matches("nodesx/a"));

  const auto start = pattern("/**/temp");
  EXPECT_TRUE(start.matches("temp"));
  EXPECT_TRUE(start.matches("a/b/temp"));
  EXPECT_FALSE(start.matches("a/b/temp/x"));
  EXPECT_FALSE(start.matches("a/temperature"));

  const auto middle = pattern("/a/**/b/*");
  EXPECT_TRUE(middle.matches("a/b/x"));
  EXPECT_TRUE(middle.matches("a/1/2/b/x"));
  EXPECT_TRUE(middle.matches("a/b/b/b/x"));
  EXPECT_FALSE(middle.matches("a/b"));
  EXPECT_FALSE(middle.matches("a/1/b/x/y"));

  const auto two = pattern("/**/a/**/b");
  EXPECT_TRUE(two.matches("a/b"));
  EXPECT_TRUE(two.matches("x/a/y/z/b"));
  EXPECT_FALSE(two.matches("b/a"));

  EXPECT_TRUE(pattern("/**").matches(""));
  EXPECT_TRUE(pattern("/**").matches("anything/at/all"));
}

TEST(PathPatternMatch, EmptyDotAndDotDotSegmentsMatchNothing) {
  // Not even `**`: a request path is never normalised, so these can only be attacks or mistakes.
  for (const char* path : {"a//b", "a/", "/a", "a/./b", "a/../b", "..", ".", "nodes/x/..", "nodes/../secret", "/"}) {
    EXPECT_FALSE(pattern("/**").matches(path)) << path;
    EXPECT_FALSE(pattern("/a/**").matches(path)) << path;
    EXPECT_FALSE(pattern("/*/*/*").matches(path)) << path;
    EXPECT_TRUE(hasDotOrEmptySegment(path)) << path;
  }
  EXPECT_FALSE(hasDotOrEmptySegment(""));
  EXPECT_FALSE(hasDotOrEmptySegment("a/.b/..c/...")) << "only exact '.' and '..' are dot segments";
  EXPECT_TRUE(pattern("/**").matches("a/.b/..c/..."));
}

TEST(PathPatternMatch, PercentEncodingIsComparedInCanonicalForm) {
  // A '/' inside one Uri-Path option arrives as %2F: it never splits a segment.
  EXPECT_FALSE(pattern("/a/b").matches("a%2Fb"));
  EXPECT_TRUE(pattern("/*").matches("a%2Fb"));
  EXPECT_TRUE(pattern("/a%2fb").matches("a%2Fb"));
  EXPECT_TRUE(pattern("/%41").matches("A"));
  EXPECT_TRUE(pattern("/a%20b").matches("a%20b"));
  // "%2E%2E" in a path is a literal percent sign and letters (libcoap escapes '%' as %25)...
  EXPECT_TRUE(pattern("/%252E%252E").matches("%252E%252E"));
  // ...and never the dot-dot segment.
  EXPECT_FALSE(pattern("/**").matches(".."));
}

TEST(PathPatternMatch, VeryLongPathsAreHandledInBoundedTime) {
  const std::string deep = joined(10000, "a");
  EXPECT_TRUE(pattern("/**").matches(deep));
  EXPECT_TRUE(pattern("/a/**/a").matches(deep));
  EXPECT_FALSE(pattern("/**/b").matches(deep));
  // The worst case for backtracking: many `**` and a mismatch at the very end.
  EXPECT_FALSE(pattern("/**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/b").matches(deep));
  EXPECT_TRUE(pattern("/**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/a/**").matches(deep));
  const std::string wide = "nodes/" + std::string(100000, 'x');
  EXPECT_TRUE(pattern("/nodes/*").matches(wide));
  EXPECT_FALSE(pattern("/nodes/x").matches(wide));
  std::string bad = deep;
  bad[10000] = '/';  // an 'a' in the middle: "...a///a..."
  EXPECT_FALSE(pattern("/**").matches(bad));
}

// ---------------------------------------------------------------- rules

TEST(RuleCompile, MethodAndPattern) {
  const auto get = rule("GET /status");
  EXPECT_EQ(get.method(), Method::get);
  EXPECT_TRUE(get.matches(Method::get, "status"));
  EXPECT_FALSE(get.matches(Method::put, "status"));
  const auto any = rule("  *   /nodes/**\t");
  EXPECT_FALSE(any.method().has_value());
  EXPECT_EQ(any.text(), "*   /nodes/**");
  for (Method m : {Method::get, Method::post, Method::put, Method::del, Method::fetch, Method::patch, Method::ipatch}) {
    EXPECT_TRUE(any.matches(m, "nodes/x")) << methodName(m);
    EXPECT_EQ(rule(std::string(methodName(m)) + " /x").method(), m);
  }
}

TEST(RuleCompile, RefusesWithPositions) {
  EXPECT_EQ(ruleError(""), R"(0: the rule is empty; write "METHOD /path", e.g. "GET /status")");
  EXPECT_EQ(ruleError("GET"), R"(3: the rule has no path; write "METHOD /path", e.g. "GET /status")");
  EXPECT_EQ(ruleError("/status"), "0: the rule has no method; write \"METHOD /path\", e.g. \"GET /status\", or "
                                  "\"* /path\" for any method");
  EXPECT_EQ(ruleError("get /status"), R"(0: unknown method "get"; did you mean "GET"?)");
  EXPECT_EQ(ruleError("IPATCH /x"), R"(0: unknown method "IPATCH"; did you mean "iPATCH"?)");
  EXPECT_EQ(ruleError("ANY /x"), "0: unknown method \"ANY\"; write * for any method; methods are GET, POST, PUT, "
                                 "DELETE, FETCH, PATCH, iPATCH or * (any)");
  EXPECT_EQ(ruleError("  GETS /x").substr(0, 25), "2: unknown method \"GETS\";");
  EXPECT_EQ(ruleError("GET /a b"), "6: a space inside the path pattern; percent-encode it (%20) or remove it");
  // Path errors point into the rule text, not into the path alone.
  EXPECT_EQ(ruleError("PUT  /a//b"), "8: empty segment ('//') in the path pattern");
  EXPECT_EQ(ruleError("GET status"), R"(4: a path pattern starts with '/', e.g. "/nodes/**")");
}

// ---------------------------------------------------------------- identities

TEST(IdentityPatterns, ExactAndGlob) {
  EXPECT_TRUE(identity("dev-1").matches("dev-1"));
  EXPECT_FALSE(identity("dev-1").matches("dev-10"));
  EXPECT_FALSE(identity("dev-1").isGlob());
  const auto sensors = identity("sensor-*");
  EXPECT_TRUE(sensors.isGlob());
  EXPECT_TRUE(sensors.matches("sensor-1"));
  EXPECT_TRUE(sensors.matches("sensor-"));
  EXPECT_FALSE(sensors.matches("sensor"));
  EXPECT_FALSE(sensors.matches("xsensor-1"));
  EXPECT_TRUE(identity("*-temp-*").matches("a-temp-b"));
  EXPECT_TRUE(identity("*-temp-*").matches("-temp-"));
  EXPECT_FALSE(identity("*-temp-*").matches("a-tem-b"));
  EXPECT_TRUE(identity("a*b*c").matches("aXbYbZc"));
  EXPECT_FALSE(identity("a*b*c").matches("aXbYbZ"));
  EXPECT_TRUE(identity("*").matches("anyone"));
  EXPECT_TRUE(identity("**").matches("anyone"));
  // No pattern ever matches "no identity".
  EXPECT_FALSE(identity("*").matches(""));
  // Globs are byte-wise and anchored at both ends.
  EXPECT_FALSE(identity("dev").matches("DEV"));
  EXPECT_TRUE(identity("CN with spaces").matches("CN with spaces"));
  // Worst case for backtracking stays fast.
  EXPECT_FALSE(identity("*a*a*a*a*a*a*a*a*a*a*b").matches(std::string(200, 'a')));
}

TEST(IdentityPatterns, Refusals) {
  EXPECT_EQ(compileIdentityPattern("").error.message,
            R"(the identity is empty; write "*" for every authenticated identity)");
  const auto control = compileIdentityPattern("dev\n1");
  ASSERT_FALSE(control.ok());
  EXPECT_EQ(control.error.offset, 3U);
  EXPECT_EQ(control.error.message, "the identity contains control character 0x0A");
  const auto long_one = compileIdentityPattern(std::string(kMaxIdentityPatternBytes + 1, 'x'));
  ASSERT_FALSE(long_one.ok());
  EXPECT_EQ(long_one.error.message, "the identity is 257 bytes long (at most 256)");
  EXPECT_TRUE(compileIdentityPattern(std::string(kMaxIdentityPatternBytes, 'x')).ok());
}

// ---------------------------------------------------------------- decisions

TEST(PolicyDecisions, DefaultDenyExceptWellKnownCore) {
  const Policy none;
  EXPECT_EQ(none.check("dev-1", Method::get, ".well-known/core").decision, Decision::allow);
  EXPECT_EQ(none.check("dev-1", Method::get, ".well-known/core").basis, Basis::well_known_core);
  EXPECT_EQ(none.check("", Method::get, ".well-known/core").decision, Decision::allow);
  EXPECT_EQ(none.check("dev-1", Method::get, "status").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "status").basis, Basis::no_rule);
  EXPECT_EQ(none.check("dev-1", Method::post, ".well-known/core").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, ".well-known/core/x").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "").decision, Decision::forbidden);
  EXPECT_EQ(none.ruleCount(), 0U);
}

TEST(PolicyDecisions, WithoutIdentityEverythingElseIsUnauthenticated) {
  const Policy open({entry({"*"}, {"* /**"})});
  EXPECT_EQ(open.check("", Method::get, "status").decision, Decision::unauthenticated);
  EXPECT_EQ(open.check("", Method::get, "status").basis, Basis::no_identity);
  EXPECT_EQ(open.check("", Method::put, ".well-known/core").decision, Decision::unauthenticated);
  EXPECT_EQ(open.check("", Method::get, "nodes//x").decision, Decision::unauthenticated);
  EXPECT_EQ(open.check("anyone", Method::get, "status").decision, Decision::allow);
}

TEST(PolicyDecisions, ConfiguredRulesForIdentitiesGlobsAndGroups) {
  // A group is an entry whose `who` holds the group's members (the config expands it).
  const Policy policy({entry({"upstream"}, {"GET /nodes/**", "PUT /nodes/*/actuators/**"}),
                       entry({"sensor-*", "dev-7"}, {"POST /telemetry/*"}),
                       entry({"*"}, {"GET /status"})});
  EXPECT_EQ(policy.ruleCount(), 4U);
  const auto up = policy.check("upstream", Method::put, "nodes/n1/actuators/valve");
  EXPECT_EQ(up.decision, Decision::allow);
  EXPECT_EQ(up.basis, Basis::rule);
  ASSERT_NE(up.rule, nullptr);
  EXPECT_EQ(up.rule->text(), "PUT /nodes/*/actuators/**");
  EXPECT_EQ(policy.check("upstream", Method::del, "nodes/n1/actuators/valve").decision, Decision::forbidden);
  EXPECT_EQ(policy.check("upstream", Method::put, "nodes/n1/config").decision, Decision::forbidden);
  EXPECT_EQ(policy.check("sensor-12", Method::post, "telemetry/t").decision, Decision::allow);
  EXPECT_EQ(policy.check("dev-7", Method::post, "telemetry/t").decision, Decision::allow);
  EXPECT_EQ(policy.check("dev-8", Method::post, "telemetry/t").decision, Decision::forbidden);
  EXPECT_EQ(policy.check("dev-8", Method::get, "status").decision, Decision::allow);
  EXPECT_EQ(policy.check("dev-8", Method::get, "nodes/n1").decision, Decision::forbidden);
}

TEST(PolicyDecisions, BuiltInOwnNodeSubtree) {
  const Policy none;
  for (Method m : {Method::get, Method::put, Method::post, Method::del}) {
    EXPECT_EQ(none.check("dev-1", m, "nodes/dev-1").decision, Decision::allow);
    EXPECT_EQ(none.check("dev-1", m, "nodes/dev-1/temp").basis, Basis::own_node);
    EXPECT_EQ(none.check("dev-1", m, "nodes/dev-1/a/b/c").decision, Decision::allow);
  }
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes/dev-2/temp").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes/dev-10").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes/dev-1x").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "x/nodes/dev-1").decision, Decision::forbidden);
  // "..", "." and empty segments never ride on the built-in rule.
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes/dev-1/../dev-2").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes/dev-1/./x").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::get, "nodes/dev-1//x").decision, Decision::forbidden);
  EXPECT_EQ(none.check("..", Method::get, "nodes/../status").decision, Decision::forbidden);
  // Identities with bytes outside pchar are compared in their escaped form.
  EXPECT_EQ(none.check("a/b", Method::get, "nodes/a%2Fb/x").decision, Decision::allow);
  EXPECT_EQ(none.check("a/b", Method::get, "nodes/a/b/x").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev 1", Method::get, "nodes/dev%201").decision, Decision::allow);
  EXPECT_EQ(none.check("dev%1", Method::get, "nodes/dev%251").decision, Decision::allow);
  EXPECT_EQ(none.check("dev%1", Method::get, "nodes/dev%1").decision, Decision::forbidden);
}

TEST(PolicyDecisions, BuiltInResourceDirectory) {
  const Policy none;
  EXPECT_EQ(none.check("dev-1", Method::post, "rd").decision, Decision::allow);
  EXPECT_EQ(none.check("dev-1", Method::post, "rd").basis, Basis::own_rd);
  EXPECT_EQ(none.check("dev-1", Method::get, "rd").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::post, ".well-known/rd").decision, Decision::allow);
  EXPECT_EQ(none.check("dev-1", Method::get, ".well-known/rd").decision, Decision::forbidden);
  EXPECT_EQ(none.check("", Method::post, ".well-known/rd").decision, Decision::unauthenticated);
  EXPECT_EQ(none.check("dev-1", Method::post, "rd/dev-1").decision, Decision::allow);
  EXPECT_EQ(none.check("dev-1", Method::del, "rd/dev-1").decision, Decision::allow);
  EXPECT_EQ(none.check("dev-1", Method::del, "rd/dev-2").decision, Decision::forbidden);
  EXPECT_EQ(none.check("dev-1", Method::post, "rd/dev-1/x").decision, Decision::forbidden);
  EXPECT_EQ(none.check("", Method::post, "rd").decision, Decision::unauthenticated);
  EXPECT_TRUE(Policy::allowsRdEndpoint("dev-1", "dev-1"));
  EXPECT_FALSE(Policy::allowsRdEndpoint("dev-1", "dev-2"));
  EXPECT_FALSE(Policy::allowsRdEndpoint("dev-1", "dev-1 "));
  EXPECT_FALSE(Policy::allowsRdEndpoint("dev-1", ""));
  EXPECT_FALSE(Policy::allowsRdEndpoint("", ""));
}

TEST(PolicyDecisions, NobodyReachesAnotherNodeWithoutARule) {
  const Policy policy({entry({"dev-*"}, {"GET /status"})});
  EXPECT_EQ(policy.check("dev-1", Method::get, "nodes/dev-2/temp").decision, Decision::forbidden);
  const Policy granted({entry({"ops"}, {"GET /nodes/*/temp"})});
  EXPECT_EQ(granted.check("ops", Method::get, "nodes/dev-2/temp").decision, Decision::allow);
  EXPECT_EQ(granted.check("ops", Method::get, "nodes/dev-2/key").decision, Decision::forbidden);
}

TEST(PolicyDecisions, CountsEveryDecision) {
  const Policy policy({entry({"a"}, {"GET /x"})});
  DecisionCounts counts;
  counts.record(policy.check("a", Method::get, "x").decision);
  counts.record(policy.check("a", Method::get, "y").decision);
  counts.record(policy.check("", Method::get, "x").decision);
  counts.record(policy.check("", Method::get, ".well-known/core").decision);
  EXPECT_EQ(counts.allowed, 2U);
  EXPECT_EQ(counts.forbidden, 1U);
  EXPECT_EQ(counts.unauthenticated, 1U);
}

}  // namespace
}  // namespace coap_edge::policy
