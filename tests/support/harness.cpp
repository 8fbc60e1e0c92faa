#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace coap_edge::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "coap-edge-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::uint16_t freeUdpPort() {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) throw std::runtime_error("bind");
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool udpPortFree(const std::string& host, std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

void writeFile(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

std::string readFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t countOf(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string hexOf(const std::string& text) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string agentBinary() { return COAP_EDGE_AGENT_PATH; }
std::string ctlBinary() { return COAP_EDGE_CTL_PATH; }
std::string simnodeBinary() { return COAP_EDGE_SIMNODE_PATH; }
std::string testpeerBinary() { return COAP_EDGE_TESTPEER_PATH; }

namespace {

void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run(argv, std::chrono::seconds(30));
  if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
}

void ecKey(const std::filesystem::path& key) {
  openssl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.string()});
}

// Signs a CSR for `cn` with the given CA through `openssl ca`, which (unlike `openssl x509`)
// takes explicit start and end dates, so an expired certificate can be made without faking time.
void caSign(const std::filesystem::path& dir, const std::filesystem::path& ca_crt, const std::filesystem::path& ca_key,
            const std::string& cn, const std::filesystem::path& key, const std::filesystem::path& crt,
            const std::string& start, const std::string& end, const std::string& ext) {
  const auto db = dir / "ca-db";
  std::filesystem::create_directories(db);
  writeFile(db / "index.txt", "");
  const auto conf = dir / "ca.cnf";
  writeFile(conf,
            "[ca]\ndefault_ca = test\n[test]\ndir = " + db.string() +
                "\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\nserial = $dir/serial\n"
                "default_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = none\n"
                "[any]\ncommonName = supplied\n"
                "[device]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = clientAuth\n"
                "[gateway]\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n"
                "subjectAltName = IP:127.0.0.1, DNS:localhost\n");
  std::srand(static_cast<unsigned>(std::hash<std::string>{}(crt.string())));
  writeFile(db / "serial", std::to_string(1000 + std::rand() % 8000) + "\n");
  const auto csr = dir / (cn + ".csr");
  ecKey(key);
  openssl({"req", "-new", "-key", key.string(), "-subj", "/CN=" + cn, "-out", csr.string()});
  openssl({"ca", "-batch", "-config", conf.string(), "-cert", ca_crt.string(), "-keyfile", ca_key.string(),
           "-startdate", start, "-enddate", end, "-extensions", ext, "-notext", "-in", csr.string(), "-out",
           crt.string()});
}

void makeCa(const std::filesystem::path& key, const std::filesystem::path& crt, const std::string& cn) {
  ecKey(key);
  openssl({"req", "-x509", "-new", "-key", key.string(), "-subj", "/CN=" + cn, "-days", "30", "-addext",
           "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out",
           crt.string()});
}

}  // namespace

TestPki makeTestPki(const std::filesystem::path& dir) {
  TestPki p;
  const std::string now = "20250101000000Z";
  const std::string later = "20991231000000Z";
  p.ca_key = dir / "ca.key";
  p.ca_crt = dir / "ca.crt";
  makeCa(p.ca_key, p.ca_crt, "coap-edge test CA");
  p.gw_key = dir / "gw.key";
  p.gw_crt = dir / "gw.crt";
  caSign(dir / "ca-our", p.ca_crt, p.ca_key, "gw-test", p.gw_key, p.gw_crt, now, later, "gateway");
  p.dev_key = dir / "dev-1.key";
  p.dev_crt = dir / "dev-1.crt";
  caSign(dir / "ca-our", p.ca_crt, p.ca_key, "dev-1", p.dev_key, p.dev_crt, now, later, "device");
  p.expired_key = dir / "dev-old.key";
  p.expired_crt = dir / "dev-old.crt";
  caSign(dir / "ca-our", p.ca_crt, p.ca_key, "dev-old", p.expired_key, p.expired_crt, "20200101000000Z",
         "20210101000000Z", "device");
  const auto other_key = dir / "other-ca.key";
  const auto other_crt = dir / "other-ca.crt";
  makeCa(other_key, other_crt, "some other CA");
  p.foreign_key = dir / "foreign.key";
  p.foreign_crt = dir / "foreign.crt";
  caSign(dir / "ca-other", other_crt, other_key, "dev-1", p.foreign_key, p.foreign_crt, now, later, "device");
  p.self_key = dir / "dev-self.key";
  p.self_crt = dir / "dev-self.crt";
  ecKey(p.self_key);
  openssl({"req", "-x509", "-new", "-key", p.self_key.string(), "-subj", "/CN=dev-self", "-days", "30", "-out",
           p.self_crt.string()});
  return p;
}

AgentUnderTest::AgentUnderTest(const TempDir& dir, const std::string& config_text,
                               const std::map<std::string, std::string>& extra_env, const std::string& netns) {
  config_ = dir / "agent.toml";
  log_ = dir / "agent.log";
  notify_path_ = dir / "notify.sock";
  writeFile(config_, config_text);

  std::filesystem::remove(notify_path_);  // left over by an earlier agent in the same directory
  notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, notify_path_.c_str(), sizeof(addr.sun_path) - 1);
  if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    throw std::runtime_error("bind notify socket");
  }
  std::map<std::string, std::string> env = extra_env;
  env["NOTIFY_SOCKET"] = notify_path_.string();
  std::vector<std::string> argv{agentBinary(), "--config", config_.string()};
  if (!netns.empty()) argv.insert(argv.begin(), {"ip", "netns", "exec", netns});
  child_ = std::make_unique<Child>(argv, env, log_.string());
  ready_ = waitNotify("READY=1", std::chrono::seconds(15));
}

AgentUnderTest::~AgentUnderTest() {
  if (child_ && child_->running()) stop(std::chrono::seconds(5));
  if (notify_fd_ >= 0) close(notify_fd_);
  std::error_code ec;
  std::filesystem::remove(notify_path_, ec);
}

std::string AgentUnderTest::log() const { return readFile(log_); }

bool AgentUnderTest::waitNotify(const std::string& what, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !child_->running()) return false;
    pollfd pfd{notify_fd_, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(std::min<long>(left.count(), 100))) <= 0) continue;
    const ssize_t n = recv(notify_fd_, buf, sizeof(buf), 0);
    if (n > 0 && std::string(buf, static_cast<size_t>(n)).find(what) != std::string::npos) return true;
  }
}

bool AgentUnderTest::waitForLog(const std::string& needle, std::chrono::milliseconds limit) const {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (log().find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::optional<int> AgentUnderTest::stop(std::chrono::milliseconds limit) {
  child_->signal(SIGTERM);
  return child_->wait(limit);
}

}  // namespace coap_edge::test
