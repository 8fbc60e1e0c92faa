// Datagrams from the network to the agent's DTLS server (issue 7), in the spirit of Mbed TLS's
// programs/fuzz/fuzz_dtlsserver.c but through our whole build: coap::Server (our callbacks, the
// session table, duplicate detection, the request filter) on libcoap 4.3.5 with our patches
// (0002 stateless cookies, 0003 CID rebinding, 0012 dropped-record events) and Mbed TLS. Each
// input gets a fresh server on a loopback port and a fresh client socket, so no state leaks from
// one input to the next. Invariants: no crash, no sanitizer report, and afterwards the server
// still answers a new peer's ClientHello with a HelloVerifyRequest.
//
// Input: byte 0 picks how far the harness gets before the fuzzed bytes go out:
//   0  nowhere: the datagrams come from an unknown address (the stateless cookie path,
//      record parsing before any session exists);
//   1  the cookie exchange done for a valid PSK ClientHello: the datagrams go to a session in
//      handshake (Mbed TLS's handshake parsing);
//   2  a whole PSK handshake done (Mbed TLS client, Connection ID on): each datagram is sent as
//      application data, so its bytes reach libcoap's CoAP parser and our request handling as
//      identity "dev-1", then once more as a raw record carrying the session's CID.
// Then datagrams: a 2-byte big-endian length and that many bytes, at most kMaxDatagrams.
// Loopback only; every wait is bounded.

#include "coap/runtime.h"
#include "coap/server.h"
#include "dtls_records.h"
#include "mbedtls_dtls_client.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

namespace {

using namespace coap_edge;
using test::dtls::Bytes;
using test::dtls::UdpPeer;

constexpr std::size_t kMaxDatagrams = 8;
constexpr std::size_t kMaxDatagram = 1500;
constexpr const char* kIdentity = "dev-1";
constexpr const char* kKey = "dev1-secret-key-0001";

class OneKey : public coap::CredentialSource {
 public:
  std::optional<coap::PskChoice> pskFor(std::string_view identity) noexcept override {
    if (identity != kIdentity) return std::nullopt;
    try {
      const std::string_view key(kKey);
      return coap::PskChoice{tls::SecretBytes({reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}), 1};
    } catch (...) {
      return std::nullopt;
    }
  }
  void handshakeResult(std::string_view, std::uint32_t, bool) noexcept override {}
  bool isRevoked(std::string_view) noexcept override { return false; }
  bool isCertificateRevoked(std::string_view) noexcept override { return false; }
};

std::uint16_t freeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) std::abort();
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::abort();
  }
  close(fd);
  return ntohs(a.sin_port);
}

std::unique_ptr<coap::Server> newServer(OneKey& keys, std::uint16_t port) {
  coap::ServerSettings settings;
  settings.listen.push_back({"127.0.0.1", port, true, false});
  settings.psk = true;
  settings.max_sessions = 16;
  // LAN timers: a handshake flight the fuzzer never answers is not retransmitted during a run.
  settings.dtls_retransmit_min = std::chrono::milliseconds(1000);
  settings.dtls_retransmit_max = std::chrono::milliseconds(2000);
  auto server = std::make_unique<coap::Server>(settings, keys);
  server->setRequestFilter([](const coap::Request&) { return std::optional<coap::Response>{}; });
  coap::ResourceSpec echo;
  echo.path = "echo";
  echo.methods = {coap::Method::get, coap::Method::post, coap::Method::put};
  echo.handler = [](const coap::Request& req) {
    coap::Response res;
    res.code = coap::Code::content;
    res.payload.assign(req.payload.begin(), req.payload.end());
    return res;
  };
  server->addResource(std::move(echo));
  return server;
}

// libcoap reads one datagram per endpoint and pass: a few passes drain what loopback delivered.
void pump(coap::Server& server) {
  for (int i = 0; i < 4; ++i) server.process();
}

void drain(const UdpPeer& peer) {
  for (int i = 0; i < 64 && peer.tryReceive(); ++i) {
  }
}

// The harness's own valid ClientHello and its cookie exchange, so that a session exists.
bool openHandshake(coap::Server& server, const UdpPeer& peer) {
  if (!peer.send(test::dtls::clientHello(test::dtls::kOurSuites))) return false;
  pump(server);
  const auto hvr = peer.receive(std::chrono::milliseconds(500));
  if (!hvr) return false;
  const auto cookie = test::dtls::helloVerifyCookie(*hvr);
  if (!cookie) return false;
  if (!peer.send(test::dtls::clientHello(test::dtls::kOurSuites, *cookie, 1, 1))) return false;
  pump(server);
  drain(peer);
  return true;
}

// A whole handshake: the server runs on its own thread meanwhile (only one thread uses it at a
// time: the join orders the two).
bool completeHandshake(coap::Server& server, test::dtls::MbedDtlsClient& client) {
  std::atomic<bool> done{false};
  std::thread pumper([&] {
    for (int i = 0; i < 2000 && !done.load(); ++i) {
      server.process();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  const bool ok = client.handshake(std::chrono::milliseconds(2000));
  done = true;
  pumper.join();
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static coap::Runtime* runtime = new coap::Runtime(log::Level::error);  // for the process
  (void)runtime;
  if (size < 1) return 0;
  const int mode = data[0] % 3;
  std::vector<Bytes> datagrams;
  for (std::size_t at = 1; at + 2 <= size && datagrams.size() < kMaxDatagrams;) {
    const std::size_t len = std::min<std::size_t>(static_cast<std::size_t>(data[at] << 8 | data[at + 1]), kMaxDatagram);
    at += 2;
    const std::size_t take = std::min(len, size - at);
    datagrams.emplace_back(data + at, data + at + take);
    at += take;
  }

  OneKey keys;
  const std::uint16_t port = freeLoopbackPort();
  std::unique_ptr<coap::Server> server;
  try {
    server = newServer(keys, port);
  } catch (const coap::StartupError&) {
    return 0;  // the port was taken in between: not the input's fault
  }
  UdpPeer peer(port);
  std::optional<test::dtls::MbedDtlsClient> client;
  Bytes cid;
  if (mode == 1 && !openHandshake(*server, peer)) std::abort();
  if (mode == 2) {
    client.emplace(peer, kIdentity, kKey, /*connection_id=*/true);
    if (!completeHandshake(*server, *client)) std::abort();
    cid = client->peerCid();
  }
  for (const Bytes& d : datagrams) {
    if (mode == 2) {
      (void)client->sendApplicationData(d);
      pump(*server);
      if (!cid.empty()) (void)peer.send(test::dtls::cidRecord(cid, 1, 1000 + d.size(), d));
    } else {
      (void)peer.send(d);
    }
    pump(*server);
    drain(peer);
  }
  // Whatever came before, the server still answers a new peer's ClientHello.
  const UdpPeer fresh(port);
  if (!fresh.send(test::dtls::clientHello(test::dtls::kOurSuites))) std::abort();
  pump(*server);
  const auto hvr = fresh.receive(std::chrono::milliseconds(500));
  if (!hvr || !test::dtls::helloVerifyCookie(*hvr)) std::abort();
  return 0;
}
