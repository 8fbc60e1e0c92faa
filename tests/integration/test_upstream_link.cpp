// The upstream side of the relay end to end (issue #5): in a network-namespace lab the agent
// (host gw) finds a coap-edge-simnode (host n1) by multicast and opens its DTLS session to an
// upstream in host "up": Debian's coap-rd-openssl (an independent DTLS stack) as the Resource
// Directory, or our coap-edge-testpeer (libcoap 4.3.5) as a service that takes telemetry and
// sends requests back over the gateway's session, and as an RD that answers refreshes (--rd).
// Root only.

#include "coap_clients.h"
#include "harness.h"
#include "netns_lab.h"
#include "udp_impairment.h"
#include "relay/senml.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTester = "tester";
constexpr const char* kTesterKey = "tester-secret-key-1";
constexpr const char* kGatewayIdentity = "gw-lab";
constexpr const char* kUpstreamKey = "upstream-secret-key-1";
constexpr int kBigSize = 5000;

std::string fromHex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// The temperature values (tenths: 20.3 -> 203) the upstream received for sensors/temp, in order
// of arrival, from the testpeer's telemetry log (one JSON line per POST, SenML inside).
std::vector<int> receivedTemperatures(const std::string& log, std::size_t* posts = nullptr) {
  std::vector<int> out;
  std::istringstream lines(log);
  std::size_t n = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto doc = nlohmann::json::parse(line, nullptr, false);
    if (!doc.is_object()) continue;
    ++n;
    const auto format = doc["cf"] == 112 ? relay::SenmlFormat::cbor : relay::SenmlFormat::json;
    const auto pack = relay::decodePack(fromHex(doc["payload_hex"].get<std::string>()), format);
    if (!pack) continue;
    for (const auto& r : *pack) {
      if (r.name.size() >= 12 && r.name.compare(r.name.size() - 12, 12, "sensors/temp") == 0 &&
          r.kind == relay::DecodedRecord::Kind::number) {
        out.push_back(static_cast<int>(r.number * 10 + 0.5));
      }
    }
  }
  if (posts != nullptr) *posts = n;
  return out;
}

class UpstreamLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsLab::available()) GTEST_SKIP() << NetnsLab::unavailableReason();
    lab_ = std::make_unique<NetnsLab>();
    lab_->addHost("gw");
    lab_->addHost("n1");
    lab_->addHost("up");
    node_ = std::make_unique<Child>(
        lab_->inHost("n1", {simnodeBinary(), "--name", "n1", "--join", "eth0", "--leisure", "1", "--temp-period", "1",
                            "--big-size", std::to_string(kBigSize)}),
        std::map<std::string, std::string>{}, (dir_ / "n1.log").string());
    writeFile(dir_ / "upstream.key", hexOf(kUpstreamKey) + "\n");
    std::filesystem::permissions(dir_ / "upstream.key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    const auto imported =
        ctl(writeConfig(""), {"keys", "import", "-"}, std::string(kTester) + "," + hexOf(kTesterKey) + "\n");
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }

  std::filesystem::path writeConfig(const std::string& upstream_extra) {
    const std::string config =
        "[agent]\nname = \"gw-lab\"\nstate_dir = \"" + (dir_ / "state").string() +
        "\"\nlog_level = \"debug\"\n[downstream]\nlisten = [\"" + lab_->ipv4("gw") + ":5684\"]\n" +
        "[discovery]\ninterfaces = [\"eth0\"]\nmulticast = true\ninterval = \"5s\"\nleisure = \"2s\"\n"
        "node_ttl = \"60s\"\ndns_sd = false\n"
        "[upstream]\nuri = \"coaps://" + lab_->ipv4("up") + ":5684\"\npsk_identity = \"" + kGatewayIdentity +
        "\"\npsk_key_file = \"" + (dir_ / "upstream.key").string() +
        "\"\nreconnect_min = \"1s\"\nreconnect_max = \"2s\"\nkeepalive = \"5s\"\nlifetime = \"" + lifetime_ +
        "\"\n" + upstream_extra +
        "[[acl]]\nidentity = \"" + kTester + "\"\nallow = [\"GET /nodes\", \"GET /nodes/**\", \"GET /status\", "
        "\"PUT /nodes/*/actuators/**\"]\n"
        "[[acl]]\nidentity = \"upstream\"\nallow = [\"GET /nodes/**\", \"PUT /nodes/*/actuators/**\"]\n";
    writeFile(dir_ / "agent.toml", config);
    return dir_ / "agent.toml";
  }

  void startAgent(const std::string& upstream_extra) {
    const auto file = writeConfig(upstream_extra);
    agent_ = std::make_unique<AgentUnderTest>(dir_, readFile(file), std::map<std::string, std::string>{}, lab_->netns("gw"));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }

  RunResult coaps(const std::vector<std::string>& args, std::chrono::seconds limit = 20s) {
    std::vector<std::string> argv{kGnutlsClient, "-B", "8", "-u", kTester, "-k", kTesterKey};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = run(lab_->inHost("gw", argv), limit);
    if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r;
  }
  std::string agentUri(const std::string& path) { return "coaps://" + lab_->ipv4("gw") + ":5684/" + path; }
  nlohmann::json status() { return nlohmann::json::parse(coaps({agentUri("status")}).out, nullptr, false); }

  // The node's id once /nodes lists it (one node, addresses merged) with its resources known.
  std::string waitForNode(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    const std::regex link("</nodes/([^>]+)>");
    for (int i = 0; i < 100 && std::chrono::steady_clock::now() < deadline; ++i) {
      const std::string body = coaps({agentUri("nodes")}).out;
      std::smatch m;
      if (countOf(body, "</nodes/") == 1 && body.find(lab_->ipv4("n1")) != std::string::npos &&
          std::regex_search(body, m, link)) {
        const std::string id = m[1];
        if (coaps({agentUri("nodes/" + id)}).out.find("sensors/temp") != std::string::npos) return id;
      }
      std::this_thread::sleep_for(1s);
    }
    return {};
  }

  // Polls /status until `pred` holds (bounded).
  bool waitForStatus(const std::function<bool(const nlohmann::json&)>& pred, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (int i = 0; i < 200 && std::chrono::steady_clock::now() < deadline; ++i) {
      const auto s = status();
      if (s.is_object() && pred(s)) return true;
      std::this_thread::sleep_for(500ms);
    }
    return false;
  }

  std::unique_ptr<Child> testpeerUpstream(const std::vector<std::string>& extra, const std::string& name) {
    std::vector<std::string> argv{testpeerBinary(), "upstream", "--listen", lab_->ipv4("up") + ":5684", "--psk-identity",
                                  kGatewayIdentity, "--psk-key", kUpstreamKey, "--exit-after", "100"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(lab_->inHost("up", argv), std::map<std::string, std::string>{},
                                   (dir_ / (name + ".log")).string());
  }

  // The newest temperature the node has reached (tenths), from its debug log.
  int nodeTemperature() const {
    const std::string log = readFile(dir_ / "n1.log");
    const std::regex value("temperature ([0-9]+)\\.([0-9])");
    int last = 200;
    for (std::sregex_iterator it(log.begin(), log.end(), value), end; it != end; ++it) {
      last = std::stoi((*it)[1]) * 10 + std::stoi((*it)[2]);
    }
    return last;
  }

  std::string lifetime_ = "60s";  ///< [upstream] lifetime
  TempDir dir_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<Child> node_;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(UpstreamLab, NodesAreRegisteredAtDebiansResourceDirectory) {
  startAgent("");
  const std::string id = waitForNode(30s);
  ASSERT_FALSE(id.empty()) << agent_->log();
  // The RD starts once the node's id has settled: Debian's coap-rd 4.3.1 crashes (double free)
  // on the DELETE with which the gateway withdraws the registration of an id that changed.
  Child rd(lab_->inHost("up", {"coap-rd-openssl", "-v", "7", "-A", lab_->ipv4("up"), "-p", "5683", "-k", kUpstreamKey}),
           std::map<std::string, std::string>{}, (dir_ / "rd.log").string(), (dir_ / "rd.out").string());
  // coap-rd lists its registrations in /.well-known/core; each one's links are the node's
  // resources, anchored under /nodes/{id}/ so that they route through the gateway.
  const auto upstream = [&](const std::string& path) {
    return run(lab_->inHost("up", {kOpensslClient, "-B", "5", "-u", "reader", "-k", kUpstreamKey,
                                   "coaps://" + lab_->ipv4("up") + ":5684/" + path}),
               15s);
  };
  std::string links;
  std::string wkc;
  for (int i = 0; i < 30 && links.find("/nodes/" + id + "/sensors/temp") == std::string::npos; ++i) {
    const auto listing = upstream(".well-known/core");
    wkc = listing.out + listing.err;
    links.clear();
    const std::regex registration("</(rd/[^>]+)>");
    for (std::sregex_iterator it(wkc.begin(), wkc.end(), registration), end; it != end; ++it) {
      links += upstream((*it)[1]).out + "\n";
    }
    if (links.find("/nodes/" + id + "/sensors/temp") == std::string::npos) std::this_thread::sleep_for(1s);
  }
  for (const char* resource : {"sensors/temp", "actuators/led", "big"}) {
    EXPECT_NE(links.find("</nodes/" + id + "/" + std::string(resource) + ">"), std::string::npos)
        << resource << "\n" << links << "\n" << wkc << "\nrd log:\n" << readFile(dir_ / "rd.log") << readFile(dir_ / "rd.out");
  }
  EXPECT_NE(links.find("rt=\"temperature\""), std::string::npos) << links;
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["upstream"]["state"], "up") << s.dump();
  EXPECT_EQ(s["upstream"]["rd"]["registrations"], 1) << s.dump();
}

TEST_F(UpstreamLab, GatewayModeRegistersOneEndpointWithEveryNodesLinks) {
  startAgent("registration = \"gateway\"\n");
  const std::string id = waitForNode(30s);
  ASSERT_FALSE(id.empty()) << agent_->log();
  Child rd(lab_->inHost("up", {"coap-rd-openssl", "-A", lab_->ipv4("up"), "-p", "5683", "-k", kUpstreamKey}),
           std::map<std::string, std::string>{}, (dir_ / "rd.log").string());
  const auto upstream = [&](const std::string& path) {
    return run(lab_->inHost("up", {kOpensslClient, "-B", "5", "-u", "reader", "-k", kUpstreamKey,
                                   "coaps://" + lab_->ipv4("up") + ":5684/" + path}),
               15s);
  };
  std::string wkc;
  std::string links;
  for (int i = 0; i < 30 && links.find("/nodes/" + id + "/sensors/temp") == std::string::npos; ++i) {
    std::this_thread::sleep_for(1s);
    wkc = upstream(".well-known/core").out;
    links.clear();
    const std::regex registration("</(rd/[^>]+)>");
    for (std::sregex_iterator it(wkc.begin(), wkc.end(), registration), end; it != end; ++it) {
      links += upstream((*it)[1]).out + "\n";
    }
  }
  // One endpoint (the gateway's), holding the node's links under /nodes/{id}/.
  EXPECT_EQ(countOf(wkc, "</rd/"), 1u) << wkc;
  for (const char* resource : {"sensors/temp", "actuators/led", "big"}) {
    EXPECT_NE(links.find("</nodes/" + id + "/" + std::string(resource) + ">"), std::string::npos) << links;
  }
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["upstream"]["rd"]["registrations"], 1) << s.dump();
}

// The refresh (RFC 9176 §5.3.1) against an RD that keeps lifetimes (testpeer --rd drops a
// registration whose lt ran out, and answers a late refresh 4.04): with lifetime = 10 s the
// gateway refreshes the same location with an empty POST (at 3/4 of lt, 7 s), in time, again
// and again, and never has to register a second time.
TEST_F(UpstreamLab, RegistrationsAreRefreshedBeforeTheirLifetimeEnds) {
  lifetime_ = "10s";
  startAgent("");
  const std::string id = waitForNode(30s);
  ASSERT_FALSE(id.empty()) << agent_->log();
  // No upstream yet: nothing registered.
  const auto before = status();
  ASSERT_TRUE(before.is_object());
  EXPECT_EQ(before["upstream"]["rd"]["registrations"], 0) << before.dump();
  // The RD comes once the node's id has settled (as above): one ep from the start.
  auto peer = testpeerUpstream({"--rd"}, "peer");
  const auto peerLog = [this] { return readFile(dir_ / "peer.log"); };
  // The registration, and when the RD logged it (polled every 100 ms).
  const std::regex registered("rd register ep=(\\S+) lt=([0-9]+) location=(rd/[0-9]+)");
  std::smatch m;
  std::string log;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline && !std::regex_search(log, m, registered)) {
    std::this_thread::sleep_for(100ms);
    log = peerLog();
  }
  ASSERT_TRUE(std::regex_search(log, m, registered)) << log << agent_->log();
  const auto registered_at = std::chrono::steady_clock::now();
  EXPECT_EQ(m[1].str(), id) << log;
  EXPECT_EQ(m[2].str(), "10") << log;
  const std::string location = m[3];
  // Two refreshes of that location: at ~7 s and ~14 s, so the registration outlives its first
  // lifetime. 20 s bounds the wait (the second is due at 14 s plus the agent's tick).
  const std::string refresh = "rd refresh location=" + location + " lt=10";
  std::optional<std::chrono::steady_clock::duration> first_refresh;
  deadline = registered_at + 20s;
  while (std::chrono::steady_clock::now() < deadline && countOf(log, refresh) < 2) {
    std::this_thread::sleep_for(100ms);
    log = peerLog();
    if (!first_refresh && countOf(log, refresh) >= 1) first_refresh = std::chrono::steady_clock::now() - registered_at;
  }
  const auto waited = std::chrono::steady_clock::now() - registered_at;
  EXPECT_GE(countOf(log, refresh), 2u) << log << agent_->log();
  ASSERT_TRUE(first_refresh.has_value()) << log << agent_->log();
  // Before lt ran out (the poll adds up to 100 ms), and not right away either.
  EXPECT_LT(*first_refresh, 10s) << log;
  EXPECT_GT(*first_refresh, 5s) << log;
  // The RD never lost it: no expiry, no 4.04, no second registration, no update (nothing
  // changed: a refresh carries no payload, RFC 9176 §5.3.1).
  EXPECT_EQ(countOf(log, "rd register "), 1u) << log;
  EXPECT_EQ(countOf(log, "rd expired"), 0u) << log;
  EXPECT_EQ(countOf(log, "4.04 unknown"), 0u) << log;
  EXPECT_EQ(countOf(log, "rd update"), 0u) << log;
  EXPECT_EQ(countOf(agent_->log(), "registering it again"), 0u) << agent_->log();
  // /status: one registration held all along, no failure.
  const auto after = status();
  ASSERT_TRUE(after.is_object());
  EXPECT_EQ(after["upstream"]["state"], "up") << after.dump();
  EXPECT_EQ(after["upstream"]["rd"]["registrations"], 1) << after.dump();
  EXPECT_EQ(after["upstream"]["rd"]["failures"], 0) << after.dump();
  EXPECT_EQ(after["upstream"]["established"], 1) << after.dump();
  std::cout << "first refresh after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(*first_refresh).count() << " ms, "
            << countOf(log, refresh) << " refreshes in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count() << " ms\n";
}

TEST_F(UpstreamLab, TheUpstreamUsesTheSessionTheGatewayOpened) {
  startAgent("");
  const std::string id = waitForNode(30s);
  ASSERT_FALSE(id.empty()) << agent_->log();
  const std::string base = "/nodes/" + id + "/";
  auto peer = testpeerUpstream({"--request", "GET " + base + "sensors/temp", "--request", "PUT " + base + "actuators/led blue",
                                "--request", "GET " + base + "actuators/led", "--request", "GET " + base + "big",
                                "--request", "GET /status", "--observe", base + "sensors/temp", "--observe-seconds", "6",
                                "--out", (dir_ / "peer.out").string()},
                               "peer");
  std::string out;
  for (int i = 0; i < 60 && out.find("done (") == std::string::npos; ++i) {
    std::this_thread::sleep_for(500ms);
    out = readFile(dir_ / "peer.out");
  }
  EXPECT_TRUE(std::regex_search(out, std::regex("REQ GET " + base + "sensors/temp -> 2.05 4 2[0-9]\\.[0-9]"))) << out;
  EXPECT_NE(out.find("REQ PUT " + base + "actuators/led -> 2.04"), std::string::npos) << out;
  EXPECT_NE(out.find("REQ GET " + base + "actuators/led -> 2.05 4 blue"), std::string::npos) << out;
  // 5000 bytes through the gateway: Block2 from the node, and again to the upstream.
  EXPECT_NE(out.find("REQ GET " + base + "big -> 2.05 " + std::to_string(kBigSize) + " "), std::string::npos) << out;
  // The upstream is the ACL identity "upstream": /status is not among its rules.
  EXPECT_NE(out.find("REQ GET /status -> 4.03"), std::string::npos) << out;
  // Observe over the same session: the node's value changes every second.
  EXPECT_GE(countOf(out, "NOTIFY 2"), 4u) << out;
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["upstream"]["established"], 1) << s.dump();
  EXPECT_GE(s["upstream"]["requests_served"].get<int>(), 5) << s.dump();
  // What an operator sees.
  const auto ctl_status = ctl(dir_ / "agent.toml", {"status"});
  EXPECT_EQ(ctl_status.exit_code, 0) << ctl_status.err;
  EXPECT_NE(ctl_status.out.find("upstream: up to " + lab_->ipv4("up")), std::string::npos) << ctl_status.out;
  EXPECT_NE(ctl_status.out.find("relay: "), std::string::npos) << ctl_status.out;
}

TEST_F(UpstreamLab, TelemetryArrivesInOrderAcrossAnOutageAndAKillOfTheAgent) {
  startAgent("telemetry_path = \"/telemetry/{node}\"\ntelemetry_interval = \"500ms\"\n");
  const std::string id = waitForNode(30s);
  ASSERT_FALSE(id.empty()) << agent_->log();
  const auto log = (dir_ / "telemetry.jsonl").string();
  auto peer = testpeerUpstream({"--telemetry-log", log}, "peer-1");
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) { return s["upstream"]["telemetry"]["posts"].get<int>() >= 2; }, 30s))
      << status().dump() << agent_->log();
  // The upstream goes away: values pile up in the queue.
  peer->signal(SIGKILL);
  (void)peer->wait(5s);
  std::this_thread::sleep_for(4s);
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) { return s["upstream"]["telemetry"]["queue"]["depth"].get<int>() >= 4; }, 20s))
      << status().dump();
  // The agent dies with values queued (kill -9: no chance to flush anything).
  const int queued_until = nodeTemperature();
  agent_->signal(SIGKILL);
  std::this_thread::sleep_for(500ms);
  agent_.reset();
  // Agent and upstream come back: everything queued before the kill arrives.
  peer = testpeerUpstream({"--telemetry-log", log}, "peer-2");
  startAgent("telemetry_path = \"/telemetry/{node}\"\ntelemetry_interval = \"500ms\"\n");
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) {
    return s["upstream"]["state"] == "up" && s["upstream"]["telemetry"]["posts"].get<int>() >= 1 &&
           s["upstream"]["telemetry"]["queue"]["depth"].get<int>() <= 2;
  }, 40s)) << status().dump() << agent_->log();
  std::size_t posts = 0;
  const auto values = receivedTemperatures(readFile(log), &posts);
  ASSERT_FALSE(values.empty()) << readFile(log);
  // In order (per node; there is one), duplicates allowed (at-least-once), and no gap from the
  // first value received up to shortly before the kill: the agent observed every change.
  std::set<int> seen;
  int previous = 0;
  std::size_t duplicates = 0;
  for (int v : values) {
    if (seen.count(v) != 0) {
      ++duplicates;  // sent again after an acknowledgement was lost with the agent
      continue;
    }
    EXPECT_GT(v, previous) << "value " << v << " out of order";
    previous = v;
    seen.insert(v);
  }
  for (int v = values.front(); v < queued_until - 1; ++v) {
    EXPECT_TRUE(seen.count(v) != 0) << "value " << v / 10 << "." << v % 10 << " lost (queued until "
                                     << queued_until / 10 << "." << queued_until % 10 << ")";
  }
  std::cout << values.size() << " values (" << duplicates << " duplicates) in " << posts << " POSTs\n";
}

// The queue's bound (queue_max_bytes, drop_oldest): with the upstream away, 150 values of the
// node's LED (set through the relay, so that the test knows every value) overflow a 4 KiB queue;
// when the upstream comes, it gets an unbroken run of the newest ones, and the oldest were
// dropped and counted.
TEST_F(UpstreamLab, AFullQueueDropsTheOldestValuesAndCountsThem) {
  startAgent("telemetry_path = \"/telemetry/{node}\"\ntelemetry_format = \"senml+json\"\n"
             "queue_max_bytes = 4096\nqueue_when_full = \"drop_oldest\"\n");
  const std::string id = waitForNode(30s);
  ASSERT_FALSE(id.empty()) << agent_->log();
  // Both of the node's observable resources are observed (telemetry) before the first PUT.
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) { return s["relay"]["observe"]["relations"].get<int>() >= 2; }, 15s))
      << status().dump();
  constexpr int kValues = 150;
  for (int i = 0; i < kValues; ++i) {
    char value[8];
    std::snprintf(value, sizeof(value), "v%03d", i);
    const auto put = run(lab_->inHost("gw", {testpeerBinary(), "client", "--timeout", "10", "--psk-identity", kTester,
                                             "--psk-key", kTesterKey, "-e", value, "put",
                                             agentUri("nodes/" + id + "/actuators/led")}),
                         20s);
    ASSERT_EQ(put.exit_code, 0) << i << ": " << put.err;
  }
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) {
    return s["upstream"]["telemetry"]["queue"]["dropped_full"].get<int>() > 0;
  }, 10s)) << status().dump();
  const auto before = status();
  EXPECT_LE(before["upstream"]["telemetry"]["queue"]["bytes"].get<int>(), 4096) << before.dump();
  const auto log = (dir_ / "telemetry.jsonl").string();
  auto peer = testpeerUpstream({"--telemetry-log", log}, "peer");
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) {
    return s["upstream"]["state"] == "up" && s["upstream"]["telemetry"]["queue"]["depth"].get<int>() <= 1;
  }, 40s)) << status().dump() << agent_->log();
  // The LED values that arrived, in order (SenML JSON: "vs" strings).
  std::vector<int> leds;
  std::istringstream lines(readFile(log));
  for (std::string line; std::getline(lines, line);) {
    const auto doc = nlohmann::json::parse(line, nullptr, false);
    if (!doc.is_object()) continue;
    const auto pack = relay::decodePack(fromHex(doc["payload_hex"].get<std::string>()), relay::SenmlFormat::json);
    if (!pack) continue;
    for (const auto& r : *pack) {
      if (r.kind == relay::DecodedRecord::Kind::string && r.text.size() == 4 && r.text[0] == 'v') {
        const int n = std::stoi(r.text.substr(1));
        if (leds.empty() || n != leds.back()) leds.push_back(n);
      }
    }
  }
  ASSERT_FALSE(leds.empty()) << readFile(log);
  EXPECT_GT(leds.front(), 0) << "the oldest values were kept, not dropped";
  EXPECT_EQ(leds.back(), kValues - 1);
  for (std::size_t i = 1; i < leds.size(); ++i) {
    EXPECT_EQ(leds[i], leds[i - 1] + 1) << "gap or disorder after v" << leds[i - 1];
  }
  // Every LED value that did not arrive was dropped and counted (values kept coming, and being
  // dropped, until the upstream came: count at the end).
  const auto after = status();
  ASSERT_TRUE(after.is_object());
  EXPECT_GE(after["upstream"]["telemetry"]["queue"]["dropped_full"].get<int>(), leds.front()) << after.dump();
  std::cout << "LED values v" << leds.front() << "..v" << leds.back() << " arrived; "
            << after["upstream"]["telemetry"]["queue"]["dropped_full"] << " values dropped when full\n";
}

// A backlog of two nodes' values, interleaved (both report every second while the upstream is
// away), leaves in a few POSTs, each with one node's values in order: not one POST per value and
// telemetry_interval, as a POST that took only the leading run of one node's values made it.
TEST_F(UpstreamLab, ABacklogOfTwoNodesLeavesInAFewPostsInOrderPerNode) {
  lab_->addHost("n2");
  Child node2(lab_->inHost("n2", {simnodeBinary(), "--name", "n2", "--join", "eth0", "--leisure", "1", "--temp-period", "1"}),
              std::map<std::string, std::string>{}, (dir_ / "n2.log").string());
  startAgent("telemetry_path = \"/telemetry/{node}\"\ntelemetry_format = \"senml+json\"\n");
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) {
    return s["nodes"]["count"].get<int>() == 2 && s["relay"]["observe"]["relations"].get<int>() >= 4;
  }, 40s)) << status().dump() << agent_->log();
  ASSERT_TRUE(waitForStatus([](const nlohmann::json& s) {
    return s["upstream"]["telemetry"]["queue"]["depth"].get<int>() >= 30;
  }, 40s)) << status().dump();
  const int backlog = status()["upstream"]["telemetry"]["queue"]["depth"].get<int>();
  const auto log = (dir_ / "telemetry.jsonl").string();
  auto peer = testpeerUpstream({"--telemetry-log", log}, "peer");
  ASSERT_TRUE(waitForStatus([backlog](const nlohmann::json& s) {
    return s["upstream"]["state"] == "up" && s["upstream"]["telemetry"]["values_sent"].get<int>() >= backlog;
  }, 30s)) << status().dump() << agent_->log();

  // The POSTs that carried the backlog, and each node's temperatures in order of arrival.
  std::size_t posts = 0;
  std::size_t values = 0;
  std::map<std::string, std::vector<double>> temperatures;
  std::istringstream lines(readFile(log));
  for (std::string line; std::getline(lines, line) && values < static_cast<std::size_t>(backlog);) {
    const auto doc = nlohmann::json::parse(line, nullptr, false);
    if (!doc.is_object()) continue;
    const auto pack = relay::decodePack(fromHex(doc["payload_hex"].get<std::string>()), relay::SenmlFormat::json);
    ASSERT_TRUE(pack.has_value()) << line;
    ++posts;
    values += pack->size();
    const std::string node = doc["path"].get<std::string>();
    for (const auto& r : *pack) {
      if (r.kind == relay::DecodedRecord::Kind::number && r.name.find("sensors/temp") != std::string::npos) {
        temperatures[node].push_back(r.number);
      }
    }
  }
  EXPECT_GE(values, static_cast<std::size_t>(backlog));
  // One POST per node id in the window and a few for the values that came meanwhile (a node's id
  // changes once when its name arrives, so the queue may hold values under more ids than nodes).
  EXPECT_LE(posts, static_cast<std::size_t>(backlog) / 3) << backlog << " values queued left in " << posts << " POSTs";
  std::string paths;
  for (const auto& [node, temps] : temperatures) paths += node + " (" + std::to_string(temps.size()) + ") ";
  EXPECT_GE(temperatures.size(), 2u) << "both nodes' values arrived: " << paths;
  for (const auto& [node, temps] : temperatures) {
    for (std::size_t i = 1; i < temps.size(); ++i) EXPECT_GE(temps[i], temps[i - 1]) << node << " out of order";
  }
  std::cout << backlog << " values of 2 nodes queued, sent in " << posts << " POSTs: " << paths << "\n";
}

// NAT rebinding (RFC 9146): the gateway's source port, as the upstream sees it, changes in the
// middle of the session (a relay on loopback between them moves to a new socket). With the
// DTLS Connection ID both ends negotiated, the upstream moves the session to the new address
// on the first record that authenticates, and the session goes on without a new handshake.
TEST(UpstreamNat, ANewSourcePortKeepsTheSessionThroughItsConnectionId) {
  TempDir dir;
  const std::uint16_t up_port = freeUdpPort();
  const auto out = (dir / "peer.out").string();
  Child peer({testpeerBinary(), "upstream", "--listen", "127.0.0.1:" + std::to_string(up_port), "--psk-identity",
              kGatewayIdentity, "--psk-key", kUpstreamKey, "--observe", "/status", "--observe-seconds", "50", "--out", out,
              "--exit-after", "60"},
             std::map<std::string, std::string>{}, (dir / "peer.log").string());
  ImpairedUdpRelay nat(up_port, Impairment{0.0, 0.0, 0.0, 0ms, {}});
  writeFile(dir / "upstream.key", hexOf(kUpstreamKey) + "\n");
  std::filesystem::permissions(dir / "upstream.key", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::uint16_t port = freeUdpPort();
  const std::string config =
      "[agent]\nname = \"gw-nat\"\nstate_dir = \"" + (dir / "state").string() + "\"\nlog_level = \"debug\"\n"
      "[downstream]\nlisten = [\"127.0.0.1:" + std::to_string(port) + "\"]\n"
      "[upstream]\nuri = \"coaps://127.0.0.1:" + std::to_string(nat.port()) + "\"\npsk_identity = \"" + kGatewayIdentity +
      "\"\npsk_key_file = \"" + (dir / "upstream.key").string() + "\"\nkeepalive = \"5s\"\n"
      "[[acl]]\nidentity = \"upstream\"\nallow = [\"GET /status\"]\n"
      "[[acl]]\nidentity = \"" + std::string(kTester) + "\"\nallow = [\"GET /status\"]\n";
  AgentUnderTest agent(dir, config);
  ASSERT_TRUE(agent.ready()) << agent.log();
  ASSERT_EQ(ctl(agent.configFile(), {"keys", "import", "-"}, std::string(kTester) + "," + hexOf(kTesterKey) + "\n").exit_code, 0);
  const auto statusOf = [&] {
    return nlohmann::json::parse(pskGet(kGnutlsClient, port, kTester, kTesterKey, "status").out, nullptr, false);
  };
  for (int i = 0; i < 40 && readFile(out).find("OBSERVE /status -> 2.05") == std::string::npos; ++i) {
    std::this_thread::sleep_for(250ms);
  }
  ASSERT_NE(readFile(out).find("OBSERVE /status -> 2.05"), std::string::npos) << readFile(out) << agent.log();
  const std::size_t before = countOf(readFile(out), "NOTIFY");
  nat.rebind();
  // A downstream session comes and goes: /status notifies its observer, the upstream, whose
  // notification now leaves through the new port.
  (void)statusOf();
  bool notified = false;
  for (int i = 0; i < 40 && !notified; ++i) {
    std::this_thread::sleep_for(250ms);
    notified = countOf(readFile(out), "NOTIFY") > before;
  }
  EXPECT_TRUE(notified) << readFile(out) << readFile(dir / "peer.log");
  // Two keepalive periods later the session is still the first one: no new handshake.
  std::this_thread::sleep_for(11s);
  const auto s = statusOf();
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["upstream"]["state"], "up") << s.dump();
  EXPECT_EQ(s["upstream"]["established"], 1) << s.dump() << agent.log();
  EXPECT_EQ(s["upstream"]["failures"], 0) << s.dump();
  EXPECT_EQ(countOf(readFile(dir / "peer.log"), "established"), 1u) << readFile(dir / "peer.log");
}

// X.509 to the upstream, on loopback. The upstream has its own PKI, made with coap-edge-ctl (a
// CA, its server certificate for upstream.example, the gateway's client certificate); the
// agent's downstream has another (makeTestPki's, made with openssl). libcoap keeps one context
// for both roles: with our patch 0007 the client session uses the client certificate without
// touching the server's setup, which a device certificate from the downstream CA, presented
// after the upstream session came up, proves.
class UpstreamX509 : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = makeTestPki(dir_.path());
    // The upstream's PKI: a CA in a state directory of its own.
    writeFile(dir_ / "up-ctl.toml", "[agent]\nname = \"up\"\nstate_dir = \"" + (dir_ / "up-state").string() + "\"\n");
    const auto init = ctl(dir_ / "up-ctl.toml", {"ca", "init", "--days", "2"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    const auto server = ctl(dir_ / "up-ctl.toml", {"cert", "issue", "upstream.example", "--out", (dir_ / "up").string(),
                                                   "--days", "2", "--server", "--san", "upstream.example"});
    ASSERT_EQ(server.exit_code, 0) << server.err;
    const auto client = ctl(dir_ / "up-ctl.toml", {"cert", "issue", "gw-x509", "--out", (dir_ / "up").string(), "--days", "2"});
    ASSERT_EQ(client.exit_code, 0) << client.err;
    up_ca_ = dir_ / "up-state" / "ca" / "ca.crt";
    up_port_ = freeUdpPort();
    port_ = freeUdpPort();
  }

  // The upstream (coap-edge-testpeer) with its server certificate; it asks the gateway for
  // /status over the gateway's session once that is up.
  std::unique_ptr<Child> startUpstream() {
    return std::make_unique<Child>(
        std::vector<std::string>{testpeerBinary(), "upstream", "--listen", "127.0.0.1:" + std::to_string(up_port_),
                                 "--certificate", (dir_ / "up" / "upstream.example.crt").string(), "--private-key",
                                 (dir_ / "up" / "upstream.example.key").string(), "--ca", up_ca_.string(),
                                 "--request", "GET /status", "--out", (dir_ / "peer.out").string(), "--exit-after", "30"},
        std::map<std::string, std::string>{}, (dir_ / "peer.log").string());
  }

  // The agent: downstream X.509 (and PSK) with makeTestPki's CA; upstream X.509 with the
  // gateway's client certificate, `ca` and `server_name` as given.
  void startAgent(const std::filesystem::path& ca, const std::string& server_name) {
    const std::string config =
        "[agent]\nname = \"gw-x509\"\nstate_dir = \"" + (dir_ / "state").string() + "\"\nlog_level = \"debug\"\n"
        "[downstream]\nlisten = [\"127.0.0.1:" + std::to_string(port_) + "\"]\ncertificate = \"" + pki_.gw_crt.string() +
        "\"\nprivate_key = \"" + pki_.gw_key.string() + "\"\nca = \"" + pki_.ca_crt.string() + "\"\n"
        "[upstream]\nuri = \"coaps://127.0.0.1:" + std::to_string(up_port_) + "\"\ncertificate = \"" +
        (dir_ / "up" / "gw-x509.crt").string() + "\"\nprivate_key = \"" + (dir_ / "up" / "gw-x509.key").string() +
        "\"\nca = \"" + ca.string() + "\"\nserver_name = \"" + server_name + "\"\nreconnect_min = \"1s\"\n"
        "reconnect_max = \"2s\"\n"
        "[[acl]]\nidentity = \"upstream\"\nallow = [\"GET /status\"]\n"
        "[[acl]]\nidentity = \"dev-1\"\nallow = [\"GET /status\"]\n";
    agent_ = std::make_unique<AgentUnderTest>(dir_, config);
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }

  // The agent's /status over its control socket (no DTLS needed).
  nlohmann::json status() {
    const auto r = ctl(agent_->configFile(), {"status", "--json"});
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  // Waits (bounded) until the upstream link reports a failure containing `what`.
  nlohmann::json waitForUpstreamError(const std::string& what) {
    nlohmann::json s;
    for (int i = 0; i < 40; ++i) {
      s = status();
      if (s.is_object() && s["upstream"]["last_error"].get<std::string>().find(what) != std::string::npos) break;
      std::this_thread::sleep_for(250ms);
    }
    return s;
  }

  TempDir dir_;
  TestPki pki_;
  std::filesystem::path up_ca_;
  std::uint16_t up_port_ = 0;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(UpstreamX509, TheClientCertificateSessionServesTheUpstreamAndDevicesStillHandshake) {
  auto peer = startUpstream();
  startAgent(up_ca_, "upstream.example");
  std::string out;
  for (int i = 0; i < 60 && out.find("REQ GET /status ->") == std::string::npos; ++i) {
    std::this_thread::sleep_for(250ms);
    out = readFile(dir_ / "peer.out");
  }
  // Role reversal over the X.509 session: the upstream (ACL identity "upstream") reads /status.
  EXPECT_NE(out.find("REQ GET /status -> 2.05"), std::string::npos) << out << readFile(dir_ / "peer.log") << agent_->log();
  EXPECT_NE(readFile(dir_ / "peer.log").find("established (identity X.509)"), std::string::npos) << readFile(dir_ / "peer.log");
  // The downstream server still has its own certificate and CA: a device certificate from the
  // downstream CA (which the upstream's CA never signed) is accepted, and the client verifies
  // the gateway's certificate against the downstream CA.
  const auto r = certGet(kOpensslClient, port_, pki_.dev_crt.string(), pki_.dev_key.string(), pki_.ca_crt.string(), "status");
  EXPECT_NE(r.out.find("\"upstream\""), std::string::npos) << r.out << r.err << agent_->log();
  EXPECT_NE(agent_->log().find("session established: 'dev-1' (x509)"), std::string::npos) << agent_->log();
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  EXPECT_EQ(s["upstream"]["state"], "up") << s.dump();
  EXPECT_GE(s["upstream"]["established"].get<int>(), 1) << s.dump();
}

TEST_F(UpstreamX509, AServerCertificateForAnotherNameIsRefused) {
  auto peer = startUpstream();
  startAgent(up_ca_, "other.example");
  const auto s = waitForUpstreamError("not for 'other.example'");
  ASSERT_TRUE(s.is_object());
  EXPECT_NE(s["upstream"]["last_error"].get<std::string>().find("not for 'other.example'"), std::string::npos) << s.dump();
  EXPECT_NE(s["upstream"]["state"], "up") << s.dump();
  EXPECT_EQ(s["upstream"]["established"], 0) << s.dump();
  EXPECT_EQ(readFile(dir_ / "peer.log").find("established"), std::string::npos) << readFile(dir_ / "peer.log");
}

TEST_F(UpstreamX509, AServerCertificateFromAnotherCaIsRefused) {
  auto peer = startUpstream();
  // The downstream's CA did not sign the upstream's certificate.
  startAgent(pki_.ca_crt, "upstream.example");
  const auto s = waitForUpstreamError("not correctly signed by the trusted CA");
  ASSERT_TRUE(s.is_object());
  EXPECT_NE(s["upstream"]["last_error"].get<std::string>().find("not correctly signed by the trusted CA"),
            std::string::npos) << s.dump();
  EXPECT_NE(s["upstream"]["state"], "up") << s.dump();
  EXPECT_EQ(s["upstream"]["established"], 0) << s.dump();
  EXPECT_EQ(readFile(dir_ / "peer.log").find("established"), std::string::npos) << readFile(dir_ / "peer.log");
}

// --check-config reads the upstream's X.509 files: a set that loads passes, an expired client
// certificate names its line (rather than a session that never comes up).
TEST(UpstreamX509Files, CheckConfigAcceptsAValidSetAndNamesAnExpiredCertificatesLine) {
  TempDir dir;
  const TestPki pki = makeTestPki(dir.path());
  const auto check = [&](const std::filesystem::path& crt, const std::filesystem::path& key) {
    writeFile(dir / "agent.toml",
              "[agent]\nname = \"gw-x509\"\nstate_dir = \"" + (dir / "state").string() + "\"\n"
              "[downstream]\nlisten = [\"127.0.0.1:" + std::to_string(freeUdpPort()) + "\"]\n"
              "[upstream]\nuri = \"coaps://127.0.0.1:5684\"\ncertificate = \"" + crt.string() +
              "\"\nprivate_key = \"" + key.string() + "\"\nca = \"" + pki.ca_crt.string() +
              "\"\nserver_name = \"localhost\"\n");
    return run({agentBinary(), "--config", (dir / "agent.toml").string(), "--check-config"}, 20s);
  };
  const auto good = check(pki.dev_crt, pki.dev_key);
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  const auto expired = check(pki.expired_crt, pki.expired_key);
  EXPECT_EQ(expired.exit_code, 78) << expired.out << expired.err;
  EXPECT_NE(expired.err.find("agent.toml:8:15: [upstream] "), std::string::npos) << expired.err;
  EXPECT_NE(expired.err.find("certificate has expired"), std::string::npos) << expired.err;
}

}  // namespace
}  // namespace coap_edge::test
