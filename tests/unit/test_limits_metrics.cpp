// The daemon's rate filter (per identity on requests, per address at handshakes) with a fake
// clock, /status in CBOR, and the Prometheus text file.

#include "config/config.h"
#include "daemon/metrics.h"
#include "daemon/rate_filter.h"
#include "daemon/status_resource.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace coap_edge::daemon {
namespace {

using namespace std::chrono_literals;

constexpr policy::Nanos kSecond = policy::kNanosPerSecond;

struct FakeClock {
  policy::Nanos now = 1000 * kSecond;
  RateFilter::Clock fn() {
    return [this] { return now; };
  }
};

config::LimitsSection limitsFrom(const std::string& toml) {
  auto loaded = config::parse(toml, "t.toml");
  EXPECT_TRUE(loaded.ok()) << (loaded.error ? loaded.error->str() : "");
  return loaded.ok() ? loaded.config->limits : config::LimitsSection{};
}

coap::Request request(const coap::PeerIdentity& peer, bool confirmable = true) {
  coap::Request r;
  r.path = "status";
  r.peer = &peer;
  r.confirmable = confirmable;
  return r;
}

TEST(RateFilter, ConGets429WithMaxAgeNonIsDroppedOthersAreUnaffected) {
  FakeClock clock;
  RateFilter filter(clock.fn());
  filter.setLimits(limitsFrom("[limits]\nper_identity = { rate = 0.5, burst = 2 }\n"));
  const coap::PeerIdentity flood{coap::AuthKind::psk, "flood", "127.0.0.1:1", {}, 0};
  const coap::PeerIdentity calm{coap::AuthKind::x509, "calm", "127.0.0.1:2", {}, 0};
  EXPECT_FALSE(filter(request(flood)));
  EXPECT_FALSE(filter(request(flood)));
  const auto refused = filter(request(flood));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, coap::Code::too_many_requests);
  EXPECT_EQ(refused->max_age, 2U);  // one token per 2 s
  clock.now += 1500 * 1000000;      // 1.5 s later: 0.5 s to go, rounded up to 1
  EXPECT_EQ(filter(request(flood))->max_age, 1U);
  const auto dropped = filter(request(flood, false));
  ASSERT_TRUE(dropped);
  EXPECT_EQ(dropped->code, coap::Code::none);
  EXPECT_FALSE(filter(request(calm)));  // its own bucket
  clock.now += kSecond / 2;
  EXPECT_FALSE(filter(request(flood)));  // a token again
  const auto c = filter.counts();
  EXPECT_EQ(c.per_identity_rejected, 2U);
  EXPECT_EQ(c.per_identity_dropped, 1U);
  EXPECT_EQ(c.identity_buckets, 2U);
  // Peers without identity are not limited here (the ACL answers them 4.01).
  const coap::PeerIdentity anonymous{};
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(filter(request(anonymous)));
}

TEST(RateFilter, ReloadChangesRatesButKeepsBucketState) {
  FakeClock clock;
  RateFilter filter(clock.fn());
  filter.setLimits(limitsFrom("[limits]\nper_identity = { rate = 1.0, burst = 1 }\n"));
  const coap::PeerIdentity up{coap::AuthKind::psk, "upstream", "a", {}, 0};
  EXPECT_FALSE(filter(request(up)));
  EXPECT_TRUE(filter(request(up)));
  // The override gives upstream more; its bucket (empty, 1 s owed) is the same one.
  filter.setLimits(limitsFrom("[limits]\nper_identity = { rate = 1.0, burst = 1 }\n[[limits.override]]\n"
                              "identity = \"upstream\"\nper_identity = { rate = 1.0, burst = 3 }\n"));
  EXPECT_FALSE(filter(request(up)));
  EXPECT_FALSE(filter(request(up)));
  EXPECT_TRUE(filter(request(up)));
  // Without any limit nothing is refused.
  filter.setLimits(limitsFrom("[limits]\n"));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(filter(request(up)));
}

TEST(RateFilter, HandshakesPerAddress) {
  FakeClock clock;
  RateFilter filter(clock.fn());
  EXPECT_TRUE(filter.admitHandshake("10.0.0.1"));  // no limit configured
  filter.setLimits(limitsFrom("[limits]\nhandshakes_per_address = { rate = 1.0, burst = 2 }\n"));
  EXPECT_TRUE(filter.admitHandshake("10.0.0.1"));
  EXPECT_TRUE(filter.admitHandshake("10.0.0.1"));
  EXPECT_FALSE(filter.admitHandshake("10.0.0.1"));
  EXPECT_TRUE(filter.admitHandshake("10.0.0.2"));
  clock.now += kSecond;
  EXPECT_TRUE(filter.admitHandshake("10.0.0.1"));
  EXPECT_EQ(filter.counts().handshakes_refused, 1U);
  EXPECT_EQ(filter.counts().address_buckets, 2U);
  clock.now += 10 * kSecond;
  filter.sweep();
  EXPECT_EQ(filter.counts().address_buckets, 0U);
}

StatusSnapshot sample() {
  StatusSnapshot s;
  s.agent_name = "gw-1";
  s.uptime = 12s;
  s.sessions.established = 3;
  s.sessions.psk = 2;
  s.sessions.x509 = 1;
  s.acl.allowed = 7;
  s.acl.forbidden = 2;
  s.acl_rules = 4;
  s.server.handshakes_ok = 5;
  s.server.handshakes_unknown_identity = 1;
  s.server.handshakes_bad_key = 6;
  s.server.handshakes_bad_certificate = 2;
  s.server.handshakes_timeout = 11;
  s.server.handshakes_dtls_error = 13;
  s.server.requests[0][0] = 40;  // GET 2xx
  s.server.requests[0][1] = 9;   // GET 4xx
  s.server.requests[2][3] = 1;   // PUT none
  s.server.duplicates = 14;
  s.server.dtls_records_invalid = 15;
  s.server.dtls_records_replayed = 16;
  s.duplicate_memory_bytes = 512;
  s.duplicate_memory_limit = 4096;
  s.duplicates_not_kept = 17;
  s.limits.per_identity_rejected = 8;
  s.limits.per_identity_dropped = 1;
  s.limits.handshakes_refused = 3;
  s.limits.identity_buckets = 2;
  return s;
}

TEST(Status, CarriesHandshakesRequestsAndLimits) {
  const auto doc = nlohmann::json::parse(statusJson(sample()));
  EXPECT_EQ(doc["handshakes"]["ok"], 5);
  EXPECT_EQ(doc["handshakes"]["unknown_identity"], 1);
  EXPECT_EQ(doc["handshakes"]["bad_key"], 6);
  EXPECT_EQ(doc["handshakes"]["bad_certificate"], 2);
  EXPECT_EQ(doc["handshakes"]["timeout"], 11);
  EXPECT_EQ(doc["handshakes"]["dtls_error"], 13);
  EXPECT_EQ(doc["requests"]["GET"]["2xx"], 40);
  EXPECT_EQ(doc["requests"]["GET"]["4xx"], 9);
  EXPECT_EQ(doc["requests"]["PUT"]["none"], 1);
  EXPECT_FALSE(doc["requests"].contains("POST"));  // methods never used are left out
  EXPECT_EQ(doc["duplicates"]["answered"], 14);
  EXPECT_EQ(doc["packets"]["dtls_invalid"], 15);
  EXPECT_EQ(doc["packets"]["dtls_replayed"], 16);
  EXPECT_EQ(doc["duplicates"]["memory_bytes"], 512);
  EXPECT_EQ(doc["duplicates"]["memory_limit"], 4096);
  EXPECT_EQ(doc["duplicates"]["not_kept"], 17);
  EXPECT_EQ(doc["limits"]["per_identity"]["rejected"], 8);
  EXPECT_EQ(doc["limits"]["per_identity"]["dropped"], 1);
  EXPECT_EQ(doc["limits"]["handshakes_per_address"]["refused"], 3);
}

TEST(Status, CborOnAccept60IsTheSameDocument) {
  coap::Request req;
  req.accept = coap::content_format::cbor;
  const auto res = statusResponse(req, sample());
  EXPECT_EQ(res.code, coap::Code::content);
  EXPECT_EQ(res.content_format, coap::content_format::cbor);
  const std::vector<std::uint8_t> bytes(res.payload.begin(), res.payload.end());
  EXPECT_EQ(nlohmann::json::from_cbor(bytes), nlohmann::json::parse(statusJson(sample())));
}

TEST(Metrics, PrometheusTextHasConventionalNamesAndTheSnapshotsNumbers) {
  const std::string text = prometheusText(sample());
  for (const char* line : {
           "# TYPE coap_edge_sessions gauge\n",
           "coap_edge_sessions{auth=\"psk\"} 2\n",
           "coap_edge_sessions{auth=\"x509\"} 1\n",
           "# TYPE coap_edge_requests_total counter\n",
           "coap_edge_requests_total{method=\"GET\",class=\"2xx\"} 40\n",
           "coap_edge_requests_total{method=\"GET\",class=\"4xx\"} 9\n",
           "coap_edge_requests_total{method=\"PUT\",class=\"none\"} 1\n",
           "coap_edge_handshakes_total{result=\"ok\"} 5\n",
           "coap_edge_handshakes_total{result=\"unknown_identity\"} 1\n",
           "coap_edge_handshakes_total{result=\"bad_key\"} 6\n",
           "coap_edge_handshakes_total{result=\"bad_certificate\"} 2\n",
           "coap_edge_handshakes_total{result=\"timeout\"} 11\n",
           "coap_edge_handshakes_total{result=\"dtls_error\"} 13\n",
           "coap_edge_limited_total{limit=\"per_identity\",action=\"rejected\"} 8\n",
           "coap_edge_limited_total{limit=\"per_identity\",action=\"dropped\"} 1\n",
           "coap_edge_limited_total{limit=\"handshakes_per_address\",action=\"refused\"} 3\n",
           "coap_edge_acl_decisions_total{decision=\"allowed\"} 7\n",
           "coap_edge_acl_rules 4\n",
           "# TYPE coap_edge_duplicate_requests_total counter\n",
           "coap_edge_duplicate_requests_total 14\n",
           "coap_edge_duplicate_memory_bytes 512\n",
           "coap_edge_duplicate_not_kept_total 17\n",
           "# TYPE coap_edge_dtls_records_dropped_total counter\n",
           "coap_edge_dtls_records_dropped_total{reason=\"invalid\"} 15\n",
           "coap_edge_dtls_records_dropped_total{reason=\"replayed\"} 16\n",
           "coap_edge_uptime_seconds 12\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
  EXPECT_EQ(text.back(), '\n');
}

TEST(Metrics, FileIsReplacedAtomically) {
  char tmpl[] = "/tmp/coap-edge-metrics-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  const auto file = dir / "coap-edge.prom";
  ASSERT_FALSE(writeFileAtomically(file, "a 1\n"));
  ASSERT_FALSE(writeFileAtomically(file, "a 2\n"));
  std::ifstream in(file);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_EQ(content.str(), "a 2\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "coap-edge.prom.tmp"));
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::others_read);
  const auto error = writeFileAtomically(dir / "missing" / "x.prom", "a 1\n");
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("missing"), std::string::npos) << *error;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace coap_edge::daemon
