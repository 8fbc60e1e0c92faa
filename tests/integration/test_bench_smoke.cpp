// The benchmark harness itself (bench/): its side-by-side scripts, run with tiny loads, start the
// servers (for the relay also the node), drive them with coap-edge-loadgen and report numbers for
// each. Nothing here looks at how fast anything is: this machine is shared, and speed is read from
// bench/README.md runs.

#include "harness.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

RunResult runScript(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"bash", std::string(COAP_EDGE_SOURCE_DIR) + "/bench/" + script, "--build-dir",
                                COAP_EDGE_BUILD_DIR};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 120s);
}

TEST(BenchSmoke, TerminationReportsRequestsFromBothServers) {
  TempDir dir;
  const auto out = dir / "termination.json";
  const auto r = runScript("run-termination.sh", {"--sessions", "4", "--duration", "1", "--json-out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  for (const char* side : {"coap_edge", "peer"}) {
    SCOPED_TRACE(side);
    const auto& report = summary.at(side);
    EXPECT_EQ(report.at("sessions_established").get<int>(), 4) << report.dump(2);
    EXPECT_GT(report.at("requests_completed").get<std::uint64_t>(), 0U) << report.dump(2);
    EXPECT_GT(report.at("latency_us").at("p50").get<std::uint64_t>(), 0U) << report.dump(2);
  }
  EXPECT_TRUE(summary.at("ratios_coap_edge_over_peer").at("requests_per_second").is_number()) << summary.dump(2);
  // The same numbers are printed for a person reading the run.
  EXPECT_NE(r.err.find("requests/s"), std::string::npos) << r.err;
}

TEST(BenchSmoke, X509TerminationNegotiatesEcdheEcdsaWithBothServers) {
  TempDir dir;
  const auto out = dir / "termination-x509.json";
  const auto r = runScript("run-termination.sh",
                           {"--x509", "--sessions", "2", "--duration", "1", "--json-out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  for (const char* side : {"coap_edge", "peer"}) {
    SCOPED_TRACE(side);
    const auto& report = summary.at(side);
    EXPECT_EQ(report.at("cipher_suite").get<std::string>(), "TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8") << report.dump(2);
    EXPECT_EQ(report.at("sessions_established").get<int>(), 2) << report.dump(2);
    EXPECT_GT(report.at("requests_completed").get<std::uint64_t>(), 0U) << report.dump(2);
  }
}

TEST(BenchSmoke, HandshakesReportsRateAndServerCpuForBothServers) {
  // PSK only: with --x509 the script first runs Mbed TLS's benchmark over every curve (~100 s).
  TempDir dir;
  const auto out = dir / "handshakes.json";
  const auto r = runScript("run-handshakes.sh", {"--sessions", "20", "--json-out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  for (const char* side : {"coap_edge", "peer"}) {
    SCOPED_TRACE(side);
    const auto& report = summary.at(side).at(0);
    EXPECT_EQ(report.at("sessions_established").get<int>(), 20) << report.dump(2);
    EXPECT_GT(report.at("handshakes_per_second").get<double>(), 0.0) << report.dump(2);
    EXPECT_EQ(report.at("handshake_failures").get<int>(), 0) << report.dump(2);
  }
  EXPECT_NE(r.err.find("server CPU us/handshake"), std::string::npos) << r.err;
}

TEST(BenchSmoke, MemoryReportsGrowthPerSessionForBothServers) {
  TempDir dir;
  const auto out = dir / "memory.json";
  const auto r = runScript("run-memory.sh", {"--sessions", "8", "--hold", "1", "--json-out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  for (const char* side : {"coap_edge", "peer"}) {
    SCOPED_TRACE(side);
    const auto& report = summary.at(side);
    EXPECT_EQ(report.at("sessions_established").get<int>(), 8) << report.dump(2);
    EXPECT_GT(report.at("rss_before_kb").get<int>(), 0) << report.dump(2);
    EXPECT_TRUE(report.at("per_session_kb").is_number()) << report.dump(2);
    EXPECT_TRUE(report.at("first_requests_answered").is_null()) << report.dump(2);  // sessions never used
  }
}

TEST(BenchSmoke, MemoryAfterAFirstRequestHasEachSessionsRequestAnswered) {
  TempDir dir;
  const auto out = dir / "memory.json";
  const auto r = runScript("run-memory.sh", {"--sessions", "8", "--hold", "1", "--first-request", "--json-out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  EXPECT_TRUE(summary.at("after_first_request").get<bool>()) << summary.dump(2);
  for (const char* side : {"coap_edge", "peer"}) {
    SCOPED_TRACE(side);
    const auto& report = summary.at(side);
    EXPECT_EQ(report.at("sessions_established").get<int>(), 8) << report.dump(2);
    EXPECT_EQ(report.at("first_requests_answered").get<int>(), 8) << report.dump(2);
  }
}

TEST(BenchSmoke, ScalingKeepsIdleSessionsEstablishedAndLoadsOnlyTheActiveOnes) {
  TempDir dir;
  const auto out = dir / "scaling.json";
  const auto r = runScript("run-scaling.sh",
                           {"--levels", "4 8", "--active", "2", "--duration", "1", "--json-out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  for (const int level : {4, 8}) {
    for (const char* side : {"coap_edge", "peer"}) {
      SCOPED_TRACE(std::to_string(level) + " " + side);
      const auto& report = summary.at("levels").at(std::to_string(level)).at(side);
      EXPECT_EQ(report.at("sessions_established").get<int>(), level) << report.dump(2);
      EXPECT_EQ(report.at("active_sessions").get<int>(), 2) << report.dump(2);
      EXPECT_GT(report.at("requests_completed").get<std::uint64_t>(), 0U) << report.dump(2);
    }
  }
  EXPECT_TRUE(summary.at("throughput_at_max_over_min").at("coap_edge").is_number()) << summary.dump(2);
}

TEST(BenchSmoke, RelayServesRequestsThroughBothRelaysAndDirect) {
  TempDir dir;
  const auto out = dir / "relay.json";
  const auto r = runScript("run-relay.sh", {"--sessions", "2", "--outstanding", "2", "--duration", "1", "--json-out",
                                            out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = nlohmann::json::parse(readFile(out));
  for (const char* variant : {"uncached", "cached"}) {
    const auto& v = summary.at("variants").at(variant);
    for (const char* side : {"coap_edge", "libcoap_proxy", "direct"}) {
      SCOPED_TRACE(std::string(variant) + " " + side);
      const auto& report = v.at(side);
      EXPECT_EQ(report.at("sessions_established").get<int>(), 2) << report.dump(2);
      EXPECT_GT(report.at("requests_completed").get<std::uint64_t>(), 0U) << report.dump(2);
      EXPECT_EQ(report.at("errors").at("client_errors_4xx").get<std::uint64_t>(), 0U) << report.dump(2);
    }
    EXPECT_TRUE(v.at("ratios").at("coap_edge_over_libcoap_proxy").at("requests_per_second").is_number()) << v.dump(2);
  }
  // Uncached: every request the agent answered went to the node (the count includes requests
  // still in flight when the run ended); cached: the agent's cache answered.
  const auto& uncached = summary.at("variants").at("uncached");
  EXPECT_GE(uncached.at("coap_edge_node_exchanges_per_request").get<double>(), 1.0) << uncached.dump(2);
  EXPECT_TRUE(uncached.at("coap_edge").at("unique_query").get<bool>());
  EXPECT_FALSE(uncached.at("libcoap_proxy").at("proxy_uri").get<std::string>().empty());
  const auto& cached = summary.at("variants").at("cached").at("coap_edge");
  EXPECT_GT(cached.at("coap_edge_relay").at("cache").at("hits").get<std::uint64_t>(), 0U) << cached.dump(2);
  EXPECT_NE(r.err.find("requests/s"), std::string::npos) << r.err;
}

TEST(BenchSmoke, LoadGeneratorSaysWhyWhenNoServerAnswers) {
  const auto port = freeUdpPort();
  const auto r = run({COAP_EDGE_LOADGEN_PATH, "--port", std::to_string(port), "--psk-identity", "x", "--psk-hex",
                      "00112233", "--sessions", "2", "--handshake-timeout", "2"},
                     60s);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no DTLS session established"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace coap_edge::test
