#include "avahi_sandbox.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kRequiredPrograms[] = {"ip",           "unshare",      "nsenter",       "dbus-daemon",
                                             "dbus-send",    "avahi-daemon", "avahi-publish", "avahi-browse"};

std::string busConfig(const std::filesystem::path& socket) {
  // Everything allowed: the bus is private to the test and reachable only by root (0700 dir).
  return "<busconfig>\n"
         "  <listen>unix:path=" +
         socket.string() +
         "</listen>\n"
         "  <auth>EXTERNAL</auth>\n"
         "  <policy context=\"default\">\n"
         "    <allow user=\"*\"/>\n"
         "    <allow own=\"*\"/>\n"
         "    <allow send_type=\"method_call\"/>\n"
         "    <allow send_destination=\"*\"/>\n"
         "    <allow receive_sender=\"*\"/>\n"
         "  </policy>\n"
         "</busconfig>\n";
}

std::string avahiConfig(const AvahiSandboxOptions& o) {
  std::ostringstream out;
  out << "[server]\n"
      << "host-name=" << o.host_name << "\n"
      << "use-ipv4=yes\nuse-ipv6=yes\nenable-dbus=yes\n";
  if (!o.allow_interfaces.empty()) {
    out << "allow-interfaces=";
    for (std::size_t i = 0; i < o.allow_interfaces.size(); ++i) out << (i ? "," : "") << o.allow_interfaces[i];
    out << "\n";
  }
  out << "[wide-area]\nenable-wide-area=no\n"
      << "[publish]\npublish-hinfo=no\npublish-workstation=no\n"
      << "[reflector]\nenable-reflector=no\n";
  return out.str();
}

bool waitExit(Child& child, std::chrono::milliseconds limit) {
  if (!child.running()) return true;
  child.signal(SIGTERM);
  if (child.wait(limit)) return true;
  child.signal(SIGKILL);
  return child.wait(5s).has_value();
}

}  // namespace

std::string AvahiSandbox::findProgram(const std::string& program) {
  std::string dirs = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin";
  std::istringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

std::string AvahiSandbox::unavailableReason() {
  if (geteuid() != 0) return "needs root (network and mount namespaces, avahi-daemon)";
  for (const char* program : kRequiredPrograms)
    if (findProgram(program).empty()) return std::string(program) + " is not installed";
  return {};
}

AvahiSandbox::AvahiSandbox(AvahiSandboxOptions options) : options_(std::move(options)) {
  if (options_.host_name.empty()) options_.host_name = "sandbox-" + std::to_string(getpid());
  writeFile(dir_ / "bus.conf", busConfig(dir_ / "bus"));
  writeFile(dir_ / "avahi-daemon.conf", avahiConfig(options_));

  std::vector<std::string> argv;
  if (!options_.netns.empty()) argv = {findProgram("ip"), "netns", "exec", options_.netns};
  // One process (exec all the way down) holds the namespaces; avahi-daemon joins them later,
  // so it can be stopped and started again without losing them.
  const std::string script = "mount -t tmpfs -o mode=0755 coap-edge-test /run && mkdir -p /run/avahi-daemon && exec " +
                             findProgram("dbus-daemon") + " --nofork --nopidfile --nosyslog --config-file=" +
                             (dir_ / "bus.conf").string();
  for (const std::string& a : {findProgram("unshare"), std::string("--mount"), std::string("--propagation"),
                               std::string("private"), std::string("--"), std::string("/bin/sh"), std::string("-c"),
                               script})
    argv.push_back(a);
  bus_ = std::make_unique<Child>(argv, std::map<std::string, std::string>{}, (dir_ / "bus.log").string());

  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!busAnswers()) {
    if (!bus_->running() || std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("private D-Bus did not come up: " + logs());
    std::this_thread::sleep_for(20ms);
  }
  if (options_.start_daemon) startDaemon();
}

AvahiSandbox::~AvahiSandbox() {
  if (daemon_) waitExit(*daemon_, 5s);
  if (bus_) waitExit(*bus_, 5s);
}

std::string AvahiSandbox::busAddress() const { return "unix:path=" + (dir_ / "bus").string(); }

std::map<std::string, std::string> AvahiSandbox::clientEnv() const {
  return {{"DBUS_SYSTEM_BUS_ADDRESS", busAddress()}};
}

bool AvahiSandbox::busAnswers() {
  if (!std::filesystem::exists(dir_ / "bus")) return false;
  const auto r = run({findProgram("dbus-send"), "--bus=" + busAddress(), "--print-reply", "--dest=org.freedesktop.DBus",
                      "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId"},
                     5s);
  return r.exit_code == 0;
}

void AvahiSandbox::startDaemon() {
  if (daemon_ && daemon_->running()) return;
  daemon_.reset();
  const std::string log = (dir_ / ("avahi-daemon." + std::to_string(++daemon_runs_) + ".log")).string();
  daemon_ = std::make_unique<Child>(
      std::vector<std::string>{findProgram("nsenter"), "--target", std::to_string(bus_->pid()), "--mount", "--net",
                               "--", findProgram("avahi-daemon"), "--no-drop-root", "--no-chroot", "--no-rlimits",
                               "-f", (dir_ / "avahi-daemon.conf").string()},
      clientEnv(), log);
}

void AvahiSandbox::stopDaemon() {
  if (!daemon_) return;
  waitExit(*daemon_, 10s);
  daemon_.reset();
}

bool AvahiSandbox::waitRunning(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    // AVAHI_SERVER_RUNNING == 2: host name established, ready to browse and publish.
    const auto r = run({findProgram("dbus-send"), "--bus=" + busAddress(), "--print-reply",
                        "--dest=org.freedesktop.Avahi", "/", "org.freedesktop.Avahi.Server.GetState"},
                       5s);
    if (r.exit_code == 0 && r.out.find("int32 2") != std::string::npos) return true;
    if (!daemon_ || !daemon_->running()) return false;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

std::string AvahiSandbox::logs() const {
  std::string out;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    if (entry.path().extension() != ".log") continue;
    out += "--- " + entry.path().filename().string() + "\n" + readFile(entry.path());
  }
  return out;
}

}  // namespace coap_edge::test
