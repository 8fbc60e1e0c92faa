#pragma once
// The downstream CoAP server: one libcoap context with its coaps (and optional coap) endpoints,
// DTLS credentials (PSK looked up per handshake, X.509 chained to a CA), the table of live
// sessions with the identity each one proved, and the resources the agent serves.
//
// The event loop drives it through fd()/nextTimeout()/processEvents(); all libcoap callbacks land in
// this folder, are turned into plain C++ values, and never let an exception escape into C.

#include "coap/message.h"
#include "coap/session_table.h"
#include "policy/log_throttle.h"
#include "tls/secret.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

struct coap_context_t;
struct epoll_event;
struct coap_session_t;
struct coap_bin_const_t;
struct coap_resource_t;

namespace coap_edge::coap {

/// The key handed to one PSK handshake, and which of the identity's keys it is.
struct PskChoice {
  tls::SecretBytes key;
  std::uint32_t generation = 0;  ///< the key's generation (keystore); echoed in handshakeResult()
};

/// Where device credentials and their revocations come from (the keystore, in the daemon).
/// Called on the event loop thread during handshakes; implementations must not block for long
/// and must not throw.
///
/// Key rotation: during a rotation's grace period an identity has two keys, but a DTLS-PSK
/// server must answer a handshake with exactly one. pskFor() chooses, and the server reports
/// how the handshake with that choice ended (handshakeResult: ok on DTLS_CONNECTED, not ok on
/// a DTLS error after the key was handed out), so the source can offer the other key next time
/// (keystore/grace.h has the rule).
class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  /// The key to use for an active identity; nullopt for unknown or revoked identities.
  [[nodiscard]] virtual std::optional<PskChoice> pskFor(std::string_view identity) noexcept = 0;
  /// How a handshake in which pskFor() returned `generation` for `identity` ended.
  virtual void handshakeResult(std::string_view identity, std::uint32_t generation, bool ok) noexcept = 0;
  /// True if the identity must not hold a session (revoked).
  [[nodiscard]] virtual bool isRevoked(std::string_view identity) noexcept = 0;
  /// True if the certificate with this serial (PeerIdentity::certificate_serial) is revoked.
  [[nodiscard]] virtual bool isCertificateRevoked(std::string_view serial) noexcept = 0;
};

struct ListenAddress {
  std::string host;  ///< numeric IPv4 or IPv6 (no brackets)
  std::uint16_t port = 0;
  bool secure = true;  ///< coaps (DTLS) or plain coap
  /// A built-in default rather than the operator's choice: if it cannot be bound (a host
  /// without IPv6), warn and go on instead of refusing to start.
  bool optional = false;
};

struct PkiFiles {
  std::filesystem::path certificate;  ///< gateway certificate (PEM)
  std::filesystem::path private_key;  ///< its key (PEM)
  std::filesystem::path ca;           ///< CA that device certificates must chain to (PEM)
};

struct ServerSettings {
  std::vector<ListenAddress> listen;
  bool psk = true;
  std::optional<PkiFiles> pki;
  std::chrono::seconds idle_timeout{300};
  std::uint32_t max_sessions = 10000;
  std::uint32_t max_handshakes = 100;  ///< DTLS handshakes in flight at once (libcoap's cap)
  /// DTLS handshake retransmission: first timeout, doubled up to the maximum (RFC 6347 §4.2.4.1).
  std::chrono::milliseconds dtls_retransmit_min{9000};
  std::chrono::milliseconds dtls_retransmit_max{60000};
  /// A session in handshake that heard nothing for this long may make room for a new one.
  std::chrono::seconds dtls_half_open_timeout{120};
  /// What all sessions may keep together to answer duplicate requests (RecentResponsesBudget).
  std::size_t duplicate_max_bytes = RecentResponsesBudget::kDefaultLimit;
  /// SO_RCVBUF of every endpoint's socket; 0 leaves the kernel's default.
  std::uint32_t receive_buffer_bytes = 0;
};

/// A startup failure with a message fit for the operator (turned into exit code 78 or 1).
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// Index into ServerSettings::listen of the endpoint that failed, if any.
  std::optional<std::size_t> listen_index;
};

using Handler = std::function<Response(const Request&)>;

class Server;

/// Answers one deferred request (see AsyncHandler) exactly once. Move-only. Calling it inside
/// the handler answers at once (piggybacked); calling it later, from the event loop thread
/// (never from another thread), sends a separate response (RFC 7252 §5.2.2) after the empty ACK
/// libcoap already sent. One destroyed without answering answers 5.00, so that no client waits
/// for ever and libcoap's record of the request is always released.
class Responder {
 public:
  Responder() = default;
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&& other) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  void operator()(Response response);
  /// False once answered (or moved from).
  [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }

  /// Shared by the Responder and the server's record of the deferred request.
  struct State {
    Server* server = nullptr;       ///< nulled when the server goes away first
    std::uint64_t deferred_id = 0;  ///< 0 while the handler runs
    bool in_handler = false;
    bool answered = false;
    std::optional<Response> answer;  ///< an answer given inside the handler
  };

 private:
  friend struct ServerCallbacks;
  explicit Responder(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

/// A handler that may answer later: for requests that wait on something else (a node behind
/// the relay). It must call the Responder once, now or later.
using AsyncHandler = std::function<void(const Request&, Responder)>;

/// Runs before every handler (see Server::setRequestFilter): nullopt lets the request through,
/// a response answers it instead (e.g. 4.03).
using RequestFilter = std::function<std::optional<Response>(const Request&)>;

struct ResourceSpec {
  std::string path;                                          ///< e.g. "status"
  std::vector<std::pair<std::string, std::string>> attributes;  ///< link-format, e.g. {"rt", "\"core.gw\""}
  std::vector<Method> methods;
  Handler handler;
  bool observable = false;  ///< GET may carry Observe (RFC 7641); see Server::notifyObservers
  /// Used instead of `handler` when set. For an observable resource, the runs libcoap makes for
  /// notifications (Request::notification) must answer inside the handler.
  AsyncHandler async_handler;
};

/// Forward proxying (Proxy-Uri / Proxy-Scheme): maps a proxy request onto a path this server
/// serves (e.g. "nodes/lamp/temp" for "coap://192.0.2.5/temp") by rewriting Request::path, and
/// returns true; false answers 5.05 Proxying Not Supported. The rewritten request then passes
/// the request filter like any other, and goes to the handler of the path it was mapped to.
using ProxyMapper = std::function<bool(Request&)>;

/// A request the agent sends as a client (to a node: /.well-known/core after discovery, RD
/// simple registration). Plain coap only for now; coaps to nodes needs per-node credentials.
/// The DTLS-PSK credential the gateway presents to a node that speaks only coaps
/// ([[relay.credentials]]).
struct ClientPsk {
  std::string identity;
  tls::SecretBytes key;
};

struct OutgoingRequest {
  std::string host;  ///< numeric IPv4 or IPv6, no brackets; IPv6 link-local with "%ifname"
  std::uint16_t port = 5683;
  Method method = Method::get;
  std::string path;   ///< "a/b" (segments joined by '/', no leading '/')
  std::string query;  ///< "rt=x&y=z"
  std::optional<std::uint16_t> content_format;
  std::string payload;
  /// Request::session of a request being handled: send over that session (e.g. back to a node
  /// that asked for simple registration, through its DTLS session) instead of host/port.
  const void* over_session = nullptr;
  /// Bound on the whole exchange (block-wise transfers included); after it the callback gets
  /// ClientOutcome::timeout and a late answer is ignored.
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
  std::optional<std::uint16_t> accept;
  std::vector<std::string> etags;  ///< validators (revalidation, RFC 7252 §5.10.6)
  /// Register an observation (GET with Observe: 0). The first answer goes to the done callback
  /// like any response; every later notification to Server::request's `notify` callback until
  /// cancelObservation() or the node ends it (a notification with a 4.xx/5.xx code, or a RST).
  bool observe = false;
  /// Confirmable (default) or non-confirmable.
  bool confirmable = true;
  /// coaps to host/port with this credential (one DTLS session per host, port and identity,
  /// kept while used); null: plain coap. Ignored with over_session.
  std::shared_ptr<const ClientPsk> psk;
};

/// The upstream service the gateway connects to as a DTLS client (DESIGN.md "Upstream"): one
/// session, opened by us (so the gateway may sit behind NAT), over which we send requests and
/// the upstream sends requests to us (role reversal, served like any other request).
struct UpstreamTarget {
  std::string host;         ///< numeric IPv4 or IPv6 (resolve names before, off the event loop)
  std::uint16_t port = 5684;
  /// SNI (a host name; empty: none). With X.509 also the name the server's certificate must
  /// carry (subjectAltName dNSName, else subject CN), which must then not be empty.
  std::string server_name;
  std::string psk_identity; ///< PSK mode: identity and key
  tls::SecretBytes psk_key;
  /// X.509 mode: our client certificate and key, and the CA the server's certificate must chain
  /// to. libcoap (with our patch 0007) keeps this apart from the downstream server's setup.
  std::optional<PkiFiles> pki;
  /// The ACL identity of requests the upstream sends over this session.
  std::string identity = "upstream";
  bool use_cid = true;  ///< DTLS Connection ID (RFC 9146): NAT rebinding costs no handshake
};

enum class UpstreamEvent : std::uint8_t { connected, failed, closed };
/// How the upstream session went (from process(), never from inside libcoap).
using UpstreamHandler = std::function<void(UpstreamEvent, const std::string& detail)>;

struct UpstreamStats {
  std::uint64_t connects = 0;      ///< sessions started
  std::uint64_t established = 0;   ///< handshakes completed
  std::uint64_t failures = 0;      ///< handshakes or sessions that failed
  std::uint64_t requests = 0;      ///< requests the upstream sent us (role reversal)
  std::uint64_t pings = 0;
};

enum class ClientOutcome : std::uint8_t { response, timeout, reset, failed };

/// Identifies one of our client requests (observations are cancelled by it).
using RequestId = std::uint64_t;

struct ClientResult {
  ClientOutcome outcome = ClientOutcome::failed;
  Response response;  ///< code (class*100+detail), content format, Max-Age, whole body
  std::string error;  ///< for logs when outcome != response
};

using ResponseCallback = std::function<void(const ClientResult&)>;

/// Counters of the agent's own client requests.
struct ClientStats {
  std::uint64_t sent = 0;
  std::uint64_t answered = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t failed = 0;
  std::size_t in_flight = 0;
  std::size_t observations = 0;      ///< observations of nodes we hold
  std::uint64_t notifications = 0;   ///< notifications received for them
  std::size_t dtls_sessions = 0;     ///< our coaps sessions to nodes, open now
  std::uint64_t dtls_established = 0;  ///< handshakes of ours with nodes that completed
  std::uint64_t dtls_failures = 0;     ///< ... that failed, or sessions that broke
};

/// One established session, for operators (coap-edge-ctl status).
struct SessionView {
  PeerIdentity peer;
  std::chrono::seconds age{0};
};

/// How long the ACK of a request answered later waits for that answer to ride on it.
inline constexpr std::chrono::milliseconds kPiggybackWait{100};
/// Response classes counted per method: 2.xx, 4.xx, 5.xx, and requests answered with nothing.
enum class ResponseClass : std::uint8_t { success, client_error, server_error, none };
inline constexpr std::size_t kMethodCount = 7;
inline constexpr std::size_t kResponseClassCount = 4;
[[nodiscard]] std::string_view methodName(Method method) noexcept;
[[nodiscard]] std::string_view responseClassName(ResponseClass c) noexcept;  ///< "2xx", ..., "none"

/// Counters of the server since start (DTLS handshakes and requests).
struct ServerStats {
  std::uint64_t handshakes_ok = 0;
  std::uint64_t handshakes_unknown_identity = 0;  ///< PSK identity unknown or revoked
  std::uint64_t handshakes_bad_key = 0;           ///< PSK handed out, the peer's Finished did not verify
  std::uint64_t handshakes_bad_certificate = 0;   ///< X.509 peer certificate failed verification
  /// Half-open handshake closed by libcoap (retransmissions exhausted, idle) without an alert.
  std::uint64_t handshakes_timeout = 0;
  std::uint64_t handshakes_dtls_error = 0;        ///< any other DTLS failure (protocol error, peer's alert)
  std::uint64_t handshakes_rate_limited = 0;      ///< refused by the HandshakeGate
  std::uint64_t handshakes_max_sessions = 0;      ///< refused at max_sessions
  std::uint64_t handshakes_refused = 0;           ///< completed, then closed: revoked, no identity
  /// DTLS sessions libcoap allocated for a ClientHello. Our libcoap patch 0002 allocates one only
  /// for a ClientHello whose cookie proved the peer's address, so a flood of spoofed
  /// ClientHellos leaves this unchanged.
  std::uint64_t dtls_sessions_allocated = 0;
  /// Proxy-Uri / Proxy-Scheme requests for anything but a known node (5.05): never an open proxy.
  std::uint64_t proxy_refused = 0;
  /// Datagrams (plain, or DTLS records once decrypted) that were no valid CoAP message, and
  /// responses to our requests that were malformed: dropped by libcoap (COAP_EVENT_BAD_PACKET).
  std::uint64_t malformed_packets = 0;
  /// Application data records of established DTLS sessions (ours to nodes and the upstream
  /// too) that Mbed TLS dropped silently (libcoap patch 0012): `dtls_records_invalid` failed
  /// authentication or were malformed (a forged record, e.g. one carrying a session's
  /// Connection ID with a garbage MAC), `dtls_records_replayed` were rejected by the
  /// anti-replay window (a duplicate on the network, or a replay).
  std::uint64_t dtls_records_invalid = 0;
  std::uint64_t dtls_records_replayed = 0;
  /// Copies of requests already answered (same session, Message ID, token and type: a client's
  /// retransmission or a duplicated datagram), answered again as the first time without the
  /// request filter or the application seeing them (RecentResponses).
  std::uint64_t duplicates = 0;
  /// requests[method - 1][ResponseClass]
  std::array<std::array<std::uint64_t, kResponseClassCount>, kMethodCount> requests{};
};

/// Why a DTLS handshake failed (ServerStats, and the rate-limited log line).
enum class HandshakeFailure : std::uint8_t { unknown_identity, bad_key, bad_certificate, timeout, dtls_error };

/// Asked before a DTLS handshake from `address` (source IP, no port) gets credentials: false
/// refuses it. PSK: the key lookup answers "unknown"; X.509: the peer's certificate is refused
/// when it arrives. Either way the peer sees a failed handshake.
using HandshakeGate = std::function<bool(std::string_view address)>;

struct SessionCounts {
  std::size_t total = 0;  ///< every server session libcoap holds (including handshakes)
  std::size_t established = 0;
  std::size_t psk = 0;
  std::size_t x509 = 0;
  std::size_t plain = 0;
};

class Server {
 public:
  /// Binds every listen address and installs the credentials. Throws StartupError.
  Server(const ServerSettings& settings, CredentialSource& credentials);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Adds a resource; /.well-known/core lists it with its attributes.
  void addResource(ResourceSpec spec);
  /// Routes every path below `spec.path` ("rd" takes "rd/4", "rd/4/x"; not "rd" itself) to
  /// `spec.handler`, behind the request filter like any resource. Not listed in
  /// /.well-known/core (the paths are made at run time: RD registrations, /nodes/{id}/...).
  /// Resources added with addResource() win over a prefix route.
  void addPrefixRoute(ResourceSpec spec);
  /// Removes a resource added with addResource(); its observers get 4.04 (libcoap). Returns
  /// false if there is none at `path`.
  bool removeResource(std::string_view path);
  [[nodiscard]] bool hasResource(std::string_view path) const;
  /// Enables forward proxying through `mapper` (ProxyMapper); without it every Proxy-Uri or
  /// Proxy-Scheme request gets 5.05, answered by libcoap.
  void setForwardProxy(ProxyMapper mapper);

  /// Installs the filter that sees every request before anything answers it: requests for the
  /// resources added here (whatever the method), for /.well-known/core (served by this class,
  /// not by libcoap, so that it is filtered too) and for paths that do not exist (answered 4.04
  /// only after the filter let them through, so a refused client cannot probe what exists).
  /// Exceptions, answered by libcoap before any handler: Proxy-Uri (5.05), malformed requests
  /// (4.xx), If-None-Match on a resource that exists (4.12; what exists is public anyway, in
  /// /.well-known/core), and the further Block2 blocks of a response already allowed to the
  /// same session.
  void setRequestFilter(RequestFilter filter) { filter_ = std::move(filter); }
  /// Installs the per-address handshake admission check (PSK and X.509 handshakes).
  void setHandshakeGate(HandshakeGate gate) { handshake_gate_ = std::move(gate); }

  /// libcoap's own epoll set: an event loop waits on it directly and hands what it returned to
  /// processEvents(), or watches it for readability and calls process().
  [[nodiscard]] int fd() const;
  /// Milliseconds until libcoap must run again even without I/O; nullopt if nothing is due.
  [[nodiscard]] std::optional<std::chrono::milliseconds> nextTimeout();
  /// Reads what is ready, runs libcoap's timers and applies deferred session closes. Never throws.
  void process();
  /// Like process(), for events an epoll_wait on fd() has already returned (n may be 0: then
  /// only the timers and deferred work run). Saves process()'s own epoll_wait.
  void processEvents(epoll_event* events, int n);

  /// Closes (close_notify) every session whose peer matches; returns how many. Applied
  /// immediately, outside any libcoap callback.
  std::size_t closeSessions(const std::function<bool(const PeerIdentity&)>& match);
  /// New limits (SIGHUP); existing sessions are kept even above a lowered max_sessions.
  void setLimits(std::chrono::seconds idle_timeout, std::uint32_t max_sessions, std::uint32_t max_handshakes);
  [[nodiscard]] const ServerStats& stats() const noexcept { return stats_; }
  /// Bytes the sessions hold to answer duplicates (RecentResponses::bytes, summed); at most
  /// RecentResponses::kMaxBytes per session and the budget's limit in all.
  [[nodiscard]] std::size_t recentResponseBytes() const;
  [[nodiscard]] const RecentResponsesBudget& recentResponseBudget() const noexcept { return recent_budget_; }
  /// New limit for what all sessions keep for duplicates (SIGHUP); nothing kept is dropped.
  void setDuplicateMemory(std::size_t max_bytes) noexcept { recent_budget_.setLimit(max_bytes); }

  [[nodiscard]] SessionCounts sessionCounts() const;
  /// Every established session (identity, kind, peer address, age).
  [[nodiscard]] std::vector<SessionView> sessionList() const;
  /// Called from process() (never inside a libcoap callback) after sessions came or went.
  void onSessionsChanged(std::function<void()> fn) { sessions_changed_cb_ = std::move(fn); }
  /// Sends a notification to every observer of the resource at `path`.
  void notifyObservers(std::string_view path);
  /// Sends a request as a client on this context (same event loop); `done` runs later from
  /// process(), never from inside this call or a libcoap callback, exactly once.
  /// Returns an id for cancelObservation(). With request.observe, `notify` gets every later
  /// notification (from process(), like `done`).
  RequestId request(const OutgoingRequest& request, ResponseCallback done, ResponseCallback notify = {});
  /// Ends an observation we registered (GET with Observe: 1 to the node) and forgets it; no
  /// callback runs for it afterwards. Unknown ids are ignored.
  void cancelObservation(RequestId id);
  [[nodiscard]] ClientStats clientStats() const;

  /// The established downstream session whose peer is host:port (numeric; IPv6 without
  /// brackets), for OutgoingRequest::over_session: a node that reached us over DTLS (an RD
  /// registration) can be asked back over its own session. nullptr if there is none.
  [[nodiscard]] const void* peerSession(const std::string& host, std::uint16_t port) const;

  /// Opens the DTLS session to the upstream, closing any earlier one. False (with `error`) if
  /// it cannot even start; otherwise `events` says when it is up or why it ended.
  bool connectUpstream(const UpstreamTarget& target, UpstreamHandler events, std::string& error);
  /// Closes the upstream session (close_notify); no event follows.
  void disconnectUpstream();
  /// The established upstream session, for OutgoingRequest::over_session; nullptr otherwise.
  [[nodiscard]] const void* upstreamSession() const;
  /// A CoAP ping (empty CON) on the upstream session; no answer ends it (UpstreamEvent::failed).
  bool pingUpstream();
  /// Time since anything was received on the upstream session.
  [[nodiscard]] std::chrono::steady_clock::duration upstreamIdle() const;
  [[nodiscard]] const UpstreamStats& upstreamStats() const noexcept { return upstream_stats_; }

  /// Endpoints actually bound ("coaps://127.0.0.1:5684"), with port 0 resolved.
  [[nodiscard]] const std::vector<std::string>& boundEndpoints() const { return bound_; }

  /// SIGTERM: closes every session with close_notify and lets libcoap flush for at most `budget`.
  void drain(std::chrono::milliseconds budget);

 private:
  struct ResourceEntry {
    ResourceSpec spec;
    coap_resource_t* resource = nullptr;  ///< owned by the context
  };
  friend struct ServerCallbacks;  // libcoap's C trampolines (server_callbacks.cpp)
  friend struct ClientCallbacks;  // the same for responses to our requests (server_client.cpp)
  friend struct HandshakeCallbacks;  // the X.509 verify hook (server_handshakes.cpp)
  friend struct UpstreamCallbacks;   // the upstream session (server_upstream.cpp)
  /// Called by the event trampoline for our client sessions; true if it was the upstream's.
  bool onUpstreamEvent(coap_session_t* session, int event);
  void upstreamEnded(UpstreamEvent event, std::string detail);

  struct PendingRequest {
    std::string token;
    coap_session_t* session = nullptr;
    std::chrono::steady_clock::time_point deadline;
    ResponseCallback done;
    RequestId id = 0;
    ResponseCallback notify;  ///< set for observations: they stay in observations_ after `done`
  };
  struct Observation {
    RequestId id = 0;
    std::string token;
    coap_session_t* session = nullptr;
    ResponseCallback notify;
  };
  /// A request answered later (Responder); `async` is libcoap's record of it.
  struct Deferred {
    void* async = nullptr;  ///< coap_async_t*
    std::optional<Response> response;
    Method method = Method::get;
    std::weak_ptr<Responder::State> state;
  };
  friend class Responder;
  void answerDeferred(std::uint64_t id, Response response);
  struct ClientSession {
    coap_session_t* session = nullptr;  ///< one reference held by us
    std::chrono::steady_clock::time_point last_used;
    bool dtls = false;
    bool connected = false;  ///< the DTLS handshake completed
    bool broken = false;     ///< failed or closed: released from serviceClient(), not in the callback
  };
  /// libcoap's events for our coaps sessions to nodes.
  void onClientSessionEvent(coap_session_t* session, int event);
  /// Ends the requests and observations that wait on `session` with ClientOutcome::failed.
  void endRequestsOn(const coap_session_t* session, const std::string& why);
  void installClientCallbacks();
  void completeRequest(std::size_t index, ClientResult result);
  /// pending_requests_ with deadlines_ kept alongside. Removing swaps the last entry into
  /// `index`: the order of the vector means nothing, and a relay with hundreds of requests in
  /// progress moved all the later ones for every answer.
  void addPending(PendingRequest request);
  PendingRequest takePending(std::size_t index);
  void notifyObservation(Observation& observation, ClientResult result);
  /// Delivers finished requests, times out late ones and releases idle client sessions.
  void serviceClient();
  void releaseClientSessions();
  coap_session_t* clientSessionFor(const OutgoingRequest& request, std::string& error);

  void installCallbacks();
  [[nodiscard]] ResourceEntry* prefixRouteFor(std::string_view path) const;
  /// The entry that serves `path`: a resource, else a prefix route, else the unknown handler.
  [[nodiscard]] ResourceEntry* routeFor(std::string_view path) const;
  /// /.well-known/core and the handler for unknown paths, both behind the request filter.
  void addBuiltinResources();
  [[nodiscard]] Response wellKnownCore(const Request& request);
  void bindEndpoints(const ServerSettings& settings);
  /// Fills in who the peer of a (DTLS) session is; false if it proved no usable identity.
  bool identify(coap_session_t* session, SessionEntry& entry);
  void setupPsk();
  void setupPki(const PkiFiles& files);
  void setDtlsTimers(const ServerSettings& settings);
  void onEstablished(coap_session_t* session);
  // Handshake outcomes (server_handshakes.cpp): each failure counted once, by reason, and logged
  // at most once per identity (or address) per minute.
  void countHandshakeFailure(SessionEntry& entry, HandshakeFailure reason);
  /// DTLS_ERROR (our side failed it), DTLS_CLOSED (the peer's alert) and SERVER_SESSION_DEL of a
  /// session that never connected.
  void onHandshakeError(SessionEntry& entry);
  void onHandshakeAborted(SessionEntry& entry);
  void onHandshakeGone(SessionEntry& entry);
  void logHandshakeFailure(const SessionEntry& entry, HandshakeFailure reason);
  /// New DTLS sessions get the X.509 verify hook once libcoap has made their TLS context.
  void hookCertificateChecks();
  SessionEntry& entryFor(coap_session_t* session);
  /// What process() and processEvents() do after libcoap: hooks, closes, client results, events.
  void afterIo();
  void applyPendingCloses();

  struct ContextDeleter {
    void operator()(coap_context_t* ctx) const noexcept;
  };
  /// Declared before the context and the sessions: it outlives every RecentResponses charged to it.
  RecentResponsesBudget recent_budget_;
  std::unique_ptr<coap_context_t, ContextDeleter> context_;
  CredentialSource& credentials_;
  SessionTable sessions_{&recent_budget_};
  std::vector<std::unique_ptr<ResourceEntry>> resources_;
  std::unique_ptr<ResourceEntry> unknown_;  ///< every path without a resource
  std::vector<std::unique_ptr<ResourceEntry>> prefix_routes_;
  RequestFilter filter_;
  HandshakeGate handshake_gate_;
  ServerStats stats_;
  std::vector<std::string> bound_;
  std::vector<coap_session_t*> pending_close_;
  std::vector<coap_session_t*> unhooked_;  ///< new DTLS sessions without the X.509 verify hook yet
  policy::LogThrottle failure_log_{60 * policy::kNanosPerSecond, 4096};
  tls::SecretBytes handshake_key_;  ///< key handed to libcoap for the handshake in progress
  std::unique_ptr<coap_bin_const_t> handshake_bin_;  ///< view of handshake_key_ in libcoap's type
  std::array<std::string, 3> pki_paths_;  ///< libcoap keeps pointers to these C strings
  std::function<void()> sessions_changed_cb_;
  std::vector<PendingRequest> pending_requests_;
  /// The deadlines of pending_requests_: the next one without a walk over all of them.
  std::multiset<std::chrono::steady_clock::time_point> deadlines_;
  std::vector<std::pair<ResponseCallback, ClientResult>> finished_requests_;
  std::vector<Observation> observations_;
  RequestId next_request_id_ = 1;
  std::unordered_map<std::uint64_t, Deferred> deferred_;
  std::uint64_t next_deferred_id_ = 1;
  bool deferred_ready_ = false;  ///< a deferred answer is waiting for libcoap to send it
  bool destroying_ = false;
  ProxyMapper proxy_mapper_;
  coap_session_t* upstream_ = nullptr;  ///< one reference held by us
  bool upstream_up_ = false;
  PeerIdentity upstream_peer_;          ///< who requests over the upstream session are (ACL)
  RecentResponses upstream_recent_;     ///< answers to the upstream's latest requests (duplicates)
  UpstreamHandler upstream_events_;
  std::vector<std::pair<UpstreamEvent, std::string>> upstream_pending_;  ///< delivered from process()
  std::string upstream_sni_;            ///< libcoap keeps a pointer during setup
  std::array<std::string, 3> upstream_pki_paths_;  ///< certificate, key, CA (read per handshake)
  /// Why the upstream's certificate was refused (set by the verify hook, reported with DTLS_ERROR).
  std::string upstream_refusal_;
  UpstreamStats upstream_stats_;
  std::chrono::steady_clock::time_point upstream_heard_{};
  coap_resource_t* proxy_resource_ = nullptr;  ///< owned by the context
  /// Observe registrations answered 2.xx: (resource, session, token). A later run of the
  /// resource's handler with the same three is a notification (Request::notification).
  std::set<std::tuple<const void*, const void*, std::string>> observers_;
  std::unordered_map<std::string, ClientSession> client_sessions_;  ///< by "host%if:port"
  ClientStats client_stats_;
  bool sessions_changed_ = false;
  std::uint32_t max_sessions_;
  /// A handshake closed this long after it began ended by our own timeout, not by a peer's alert.
  std::chrono::milliseconds handshake_give_up_{9000};
  bool psk_enabled_ = false;
  bool pki_enabled_ = false;
};

}  // namespace coap_edge::coap
