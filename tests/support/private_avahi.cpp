#include "private_avahi.h"

#include "harness.h"

#include <csignal>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

bool waitForText(const std::filesystem::path& file, const std::string& needle, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (readFile(file).find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

}  // namespace

bool PrivateAvahi::available(std::string& why) {
  for (const char* bin : {"/usr/bin/dbus-daemon", "/usr/sbin/avahi-daemon", "/usr/bin/unshare"}) {
    if (!std::filesystem::exists(bin)) {
      why = std::string(bin) + " is missing (Debian packages dbus, avahi-daemon, util-linux)";
      return false;
    }
  }
  return true;
}

PrivateAvahi::PrivateAvahi(const NetnsLab& lab, const std::string& host, const std::filesystem::path& dir)
    : dir_(dir) {
  std::filesystem::create_directories(dir_);
  const auto socket = dir_ / "system_bus";
  // Anyone may own any name and call anything: this bus carries only the test's traffic.
  writeFile(dir_ / "bus.conf",
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
            " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
            "<busconfig><type>system</type><listen>unix:path=" +
                socket.string() +
                "</listen><auth>EXTERNAL</auth>\n"
                "<policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/><allow send_type=\"method_call\"/>"
                "<allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy></busconfig>\n");
  writeFile(dir_ / "avahi.conf",
            "[server]\nuse-ipv4=yes\nuse-ipv6=yes\nallow-interfaces=eth0\nenable-dbus=yes\nratelimit-burst=1000\n"
            "[publish]\npublish-hinfo=no\npublish-workstation=no\n");
  bus_ = std::make_unique<Child>(
      lab.inHost(host, {"dbus-daemon", "--config-file=" + (dir_ / "bus.conf").string(), "--nofork", "--nopidfile"}),
      std::map<std::string, std::string>{}, (dir_ / "dbus.log").string());
  for (int i = 0; i < 100 && !std::filesystem::exists(socket); ++i) std::this_thread::sleep_for(20ms);
  // avahi-daemon keeps its pid file and socket in /run/avahi-daemon: a tmpfs of its own there.
  std::filesystem::create_directories("/run/avahi-daemon");
  const std::string script = "mount -t tmpfs tmpfs /run/avahi-daemon && exec avahi-daemon -f " +
                             (dir_ / "avahi.conf").string() + " --no-drop-root --no-chroot --no-rlimits";
  avahi_ = std::make_unique<Child>(lab.inHost(host, {"unshare", "--mount", "--propagation", "private", "sh", "-c", script}),
                                   env(), (dir_ / "avahi.log").string());
  ready_ = waitForText(dir_ / "avahi.log", "Server startup complete", 10s);
}

PrivateAvahi::~PrivateAvahi() {
  for (auto* c : {avahi_.get(), bus_.get()}) {
    if (c != nullptr && c->running()) {
      c->signal(SIGTERM);
      c->wait(5s);
    }
  }
}

std::map<std::string, std::string> PrivateAvahi::env() const {
  return {{"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (dir_ / "system_bus").string()}};
}

std::string PrivateAvahi::log() const { return readFile(dir_ / "avahi.log"); }

}  // namespace coap_edge::test
