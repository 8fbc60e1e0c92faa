// The upstream's pure parts: reconnect backoff (fixed random source) and the Resource Directory
// registration plan (RFC 9176) with its refresh and change tracking (fake clock).

#include "relay/backoff.h"
#include "relay/upstream_rd.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <set>
#include <vector>

namespace coap_edge::relay {
namespace {

using namespace std::chrono_literals;
using discovery::Link;
using discovery::LinkAttribute;
using discovery::NodeRecord;
using Clock = RdRegistrationState::Clock;

// ---------------------------------------------------------------- backoff

TEST(backoff, FirstWaitIsMinThenTheCeilingDoubles) {
  Backoff b(1s, 60s, [] { return 0.999999; });  // always near the top of the range
  EXPECT_EQ(b.ceiling(), 1s);
  EXPECT_EQ(b.next(), 1s);  // [1s, 1s]
  EXPECT_EQ(b.ceiling(), 2s);
  EXPECT_EQ(b.next(), 2s);
  EXPECT_EQ(b.next(), 4s);
  EXPECT_EQ(b.next(), 8s);
  EXPECT_EQ(b.next(), 16s);
  EXPECT_EQ(b.next(), 32s);
  EXPECT_EQ(b.next(), 60s);  // capped
  EXPECT_EQ(b.next(), 60s);
  EXPECT_EQ(b.attempts(), 8U);
}

TEST(backoff, RandomZeroStaysAtMin) {
  Backoff b(250ms, 10s, [] { return 0.0; });
  for (int i = 0; i < 20; ++i) EXPECT_EQ(b.next(), 250ms);
}

TEST(backoff, JitterSpreadsOverTheWholeRange) {
  double r = 0.5;
  Backoff b(1s, 100s, [&r] { return r; });
  (void)b.next();
  (void)b.next();
  (void)b.next();  // the ceiling is now 8 s
  EXPECT_EQ(b.ceiling(), 8s);
  r = 0.5;
  EXPECT_EQ(b.next(), 4500ms);  // 1 s + 0.5 * (7 s + 1 ms), floored
  r = 0.25;
  EXPECT_EQ(b.next(), 1s + std::chrono::milliseconds(3750));  // ceiling 16 s: 1 s + 0.25 * 15.001 s
}

TEST(backoff, BadRandomValuesAreClamped) {
  double r = 7.0;
  Backoff b(1s, 4s, [&r] { return r; });
  (void)b.next();
  EXPECT_EQ(b.next(), 2s);  // clamped just below 1: the top of [1s, 2s]
  r = -3.0;
  EXPECT_EQ(b.next(), 1s);
  r = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(b.next(), 1s);
}

TEST(backoff, ResetStartsOverAndBoundsHoldForARealEngine) {
  Backoff b(100ms, 3s);  // the default, random engine
  for (int round = 0; round < 3; ++round) {
    std::chrono::milliseconds ceiling = 100ms;
    for (int i = 0; i < 12; ++i) {
      const auto wait = b.next();
      EXPECT_GE(wait, 100ms);
      EXPECT_LE(wait, ceiling);
      ceiling = std::min<std::chrono::milliseconds>(ceiling * 2, 3s);
    }
    b.reset();
    EXPECT_EQ(b.attempts(), 0U);
    EXPECT_EQ(b.ceiling(), 100ms);
  }
}

TEST(backoff, InconsistentBoundsAreCorrected) {
  Backoff b(5s, 1s, [] { return 0.9; });
  EXPECT_EQ(b.max(), 5s);
  EXPECT_EQ(b.next(), 5s);
  Backoff zero(0ms, 0ms, [] { return 0.9; });
  EXPECT_EQ(zero.next(), 1ms);
}

// ---------------------------------------------------------------- registration plan

Link link(std::string target, std::vector<LinkAttribute> attributes = {}) { return {std::move(target), std::move(attributes)}; }

NodeRecord node(std::string id, std::vector<Link> resources) {
  NodeRecord n;
  n.id = std::move(id);
  n.resources = std::move(resources);
  return n;
}

std::vector<const NodeRecord*> pointers(const std::vector<NodeRecord>& nodes) {
  std::vector<const NodeRecord*> out;
  for (const auto& n : nodes) out.push_back(&n);
  return out;
}

const std::vector<NodeRecord> kNodes{
    node("lamp-1", {link("/light", {{"rt", "core.light", true}, {"obs", std::nullopt, false}}),
                    link("dim", {{"if", "core.a", false}, {"ct", "0", false}})}),
    node("temp.2", {link("/sensors/temp", {{"rt", "temperature c", true}, {"anchor", "/sensors", true}}),
                    link("coap://192.0.2.9/elsewhere")}),
    node("empty", {}),
};

TEST(rdPlan, PerNodeOneEndpointPerNodeWithGatewayAnchoredLinks) {
  RdPlanOptions options;
  options.gateway_name = "gw-01";
  options.lifetime = 3600s;
  const auto plan = planRdRegistrations(pointers(kNodes), options);
  ASSERT_EQ(plan.size(), 3U);
  EXPECT_EQ(plan[0].ep, "lamp-1");
  EXPECT_EQ(plan[0].query, "ep=lamp-1&lt=3600");
  EXPECT_EQ(plan[0].update_query, "lt=3600");
  EXPECT_EQ(plan[0].payload, "</nodes/lamp-1/light>;rt=\"core.light\";obs,</nodes/lamp-1/dim>;if=core.a;ct=0");
  EXPECT_EQ(plan[0].links, 2U);
  // The absolute target is not reachable through the gateway; anchor would resolve wrongly.
  EXPECT_EQ(plan[1].payload, "</nodes/temp.2/sensors/temp>;rt=\"temperature c\"");
  EXPECT_EQ(plan[1].skipped, 1U);
  EXPECT_EQ(plan[2].payload, "");
  EXPECT_EQ(plan[2].query, "ep=empty&lt=3600");
  for (const auto& r : plan) EXPECT_EQ(r.query.find("base="), std::string::npos);  // see upstream_rd.h
}

TEST(rdPlan, PayloadsParseBackWithEveryResource) {
  for (const RdMode mode : {RdMode::per_node, RdMode::gateway}) {
    RdPlanOptions options;
    options.mode = mode;
    options.gateway_name = "gw-01";
    const auto plan = planRdRegistrations(pointers(kNodes), options);
    std::set<std::string> targets;
    for (const auto& r : plan) {
      const auto parsed = discovery::parseLinkFormat(r.payload);
      ASSERT_TRUE(parsed.ok()) << parsed.error->message;
      EXPECT_EQ(parsed.links.size(), r.links);
      for (const auto& l : parsed.links) {
        targets.insert(l.target);
        EXPECT_FALSE(l.has("anchor"));
      }
    }
    EXPECT_EQ(targets, (std::set<std::string>{"/nodes/lamp-1/light", "/nodes/lamp-1/dim",
                                              "/nodes/temp.2/sensors/temp"}));
    if (mode == RdMode::gateway) {
      ASSERT_EQ(plan.size(), 1U);
      EXPECT_EQ(plan[0].ep, "gw-01");
      EXPECT_EQ(plan[0].query, "ep=gw-01&lt=3600");
      EXPECT_EQ(plan[0].skipped, 1U);
      const auto parsed = discovery::parseLinkFormat(plan[0].payload);
      EXPECT_EQ(parsed.links[0].attribute("rt"), "core.light");
      EXPECT_TRUE(parsed.links[0].has("obs"));
      EXPECT_EQ(parsed.links[2].values("rt"), (std::vector<std::string_view>{"temperature", "c"}));
    }
  }
}

TEST(rdPlan, GatewayModeWithoutNodesStillRegistersTheGateway) {
  RdPlanOptions options;
  options.mode = RdMode::gateway;
  options.gateway_name = "gw";
  const auto plan = planRdRegistrations({}, options);
  ASSERT_EQ(plan.size(), 1U);
  EXPECT_EQ(plan[0].payload, "");
  EXPECT_TRUE(planRdRegistrations({}, RdPlanOptions{}).empty());
}

TEST(rdPlan, PayloadBoundSkipsAndCountsLinks) {
  std::vector<Link> many;
  for (int i = 0; i < 100; ++i) many.push_back(link("/r" + std::to_string(i)));
  const std::vector<NodeRecord> nodes{node("n", many)};
  RdPlanOptions options;
  options.max_payload_bytes = 100;
  const auto plan = planRdRegistrations(pointers(nodes), options);
  ASSERT_EQ(plan.size(), 1U);
  EXPECT_LE(plan[0].payload.size(), 100U);
  EXPECT_EQ(plan[0].links + plan[0].skipped, 100U);
  EXPECT_GT(plan[0].skipped, 0U);
  EXPECT_EQ(discovery::parseLinkFormat(plan[0].payload).links.size(), plan[0].links);
}

TEST(rdPlan, QueryEscaping) {
  EXPECT_EQ(rdQueryEscape("lamp-1._~"), "lamp-1._~");
  EXPECT_EQ(rdQueryEscape("a&b=c d/é"), "a%26b%3Dc%20d%2F%C3%A9");
  RdPlanOptions options;
  options.mode = RdMode::gateway;
  options.gateway_name = "gw&lt=1";
  options.lifetime = 90000s;
  options.base = "coaps://[2001:db8::1]:5684";
  const auto plan = planRdRegistrations({}, options);
  EXPECT_EQ(plan[0].query, "ep=gw%26lt%3D1&lt=90000&base=coaps%3A%2F%2F%5B2001%3Adb8%3A%3A1%5D%3A5684");
  EXPECT_EQ(plan[0].update_query, "lt=90000&base=coaps%3A%2F%2F%5B2001%3Adb8%3A%3A1%5D%3A5684");
}

TEST(rdPlan, GatewayTargets) {
  EXPECT_EQ(gatewayTarget("n", "/a/b"), "/nodes/n/a/b");
  EXPECT_EQ(gatewayTarget("n", "a/b?x=1"), "/nodes/n/a/b?x=1");
  EXPECT_EQ(gatewayTarget("n", ""), "/nodes/n/");
  EXPECT_EQ(gatewayTarget("n", "/a:b"), "/nodes/n/a:b");  // a ':' after '/' is not a scheme
  EXPECT_FALSE(gatewayTarget("n", "coaps://h/x"));
  EXPECT_FALSE(gatewayTarget("n", "urn:x"));
  EXPECT_FALSE(gatewayTarget("n", "//other.host/x"));
}

// ---------------------------------------------------------------- refresh schedule and changes

TEST(rdRefresh, ThreeQuartersOrAMinuteBeforeWhicheverIsEarlier) {
  EXPECT_EQ(rdRefreshAfter(3600s), 2700s);      // 3/4
  EXPECT_EQ(rdRefreshAfter(90000s), 67500s);
  EXPECT_EQ(rdRefreshAfter(120s), 60s);         // lt - 60 s is earlier
  EXPECT_EQ(rdRefreshAfter(240s), 180s);        // equal
  EXPECT_EQ(rdRefreshAfter(60s), 45s);          // lt - 60 s would be 0
  EXPECT_EQ(rdRefreshAfter(1s), 1s);            // never 0
}

TEST(rdState, CreateRefreshUpdateLoseAndStale) {
  RdPlanOptions options;
  options.lifetime = 3600s;
  std::vector<NodeRecord> nodes = kNodes;
  auto plan = planRdRegistrations(pointers(nodes), options);
  RdRegistrationState state;
  const Clock::time_point t0{};
  EXPECT_EQ(state.action(plan[0], t0), RdRegistrationState::Action::create);
  EXPECT_FALSE(state.nextRefresh());

  state.registered(plan[0], "/rd/4521", options.lifetime, t0);
  state.registered(plan[1], "/rd/4522", options.lifetime, t0 + 10s);
  ASSERT_NE(state.find("lamp-1"), nullptr);
  EXPECT_EQ(state.find("lamp-1")->location, "/rd/4521");
  EXPECT_EQ(state.find("lamp-1")->refresh_at, t0 + 2700s);
  EXPECT_EQ(state.nextRefresh(), t0 + 2700s);
  EXPECT_EQ(state.action(plan[0], t0 + 2699s), RdRegistrationState::Action::none);
  EXPECT_EQ(state.action(plan[0], t0 + 2700s), RdRegistrationState::Action::refresh);
  state.refreshed("lamp-1", t0 + 2700s);
  EXPECT_EQ(state.action(plan[0], t0 + 2701s), RdRegistrationState::Action::none);
  EXPECT_EQ(state.nextRefresh(), t0 + 2710s);  // temp.2's

  // A changed resource list is an update, before any refresh is due.
  nodes[0].resources.push_back(link("/new"));
  plan = planRdRegistrations(pointers(nodes), options);
  EXPECT_EQ(state.action(plan[0], t0 + 2800s), RdRegistrationState::Action::update);
  EXPECT_EQ(state.action(plan[1], t0 + 2800s), RdRegistrationState::Action::refresh);  // unchanged, due
  state.registered(plan[0], "/rd/4521", options.lifetime, t0 + 2800s);
  EXPECT_EQ(state.action(plan[0], t0 + 2801s), RdRegistrationState::Action::none);
  // A new lifetime changes the query: also an update.
  options.lifetime = 7200s;
  EXPECT_EQ(state.action(planRdRegistrations(pointers(nodes), options)[0], t0 + 2801s),
            RdRegistrationState::Action::update);

  // The RD forgot the endpoint (4.04 to a refresh): create it again.
  state.lost("temp.2");
  EXPECT_EQ(state.action(plan[1], t0 + 2900s), RdRegistrationState::Action::create);

  // A node gone from the plan: its registration is stale and should be deleted.
  nodes.erase(nodes.begin());
  plan = planRdRegistrations(pointers(nodes), options);
  EXPECT_EQ(state.stale(plan), (std::vector<std::string>{"lamp-1"}));
  state.removed("lamp-1");
  EXPECT_EQ(state.size(), 0U);
  state.refreshed("unknown", t0);  // ignored
  EXPECT_EQ(state.size(), 0U);
}

TEST(rdState, ContentHashSeesQueryAndPayloadApart) {
  RdRegistration a{"e", "ep=e&lt=1", "", "</a>", 1, 0};
  RdRegistration b{"e", "ep=e&lt=1<", "", "/a>", 1, 0};
  EXPECT_NE(RdRegistrationState::contentHash(a), RdRegistrationState::contentHash(b));
  RdRegistration c = a;
  EXPECT_EQ(RdRegistrationState::contentHash(a), RdRegistrationState::contentHash(c));
  c.payload = "</b>";
  EXPECT_NE(RdRegistrationState::contentHash(a), RdRegistrationState::contentHash(c));
}

}  // namespace
}  // namespace coap_edge::relay
