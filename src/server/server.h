// The HTTP front: listener, connections with size and time limits, routing, SSE streaming,
// client-disconnect detection and graceful shutdown. No endpoint logic lives here.
#pragma once

#include "core/result.h"

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace codepilot::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

using Request = http::request<http::string_body>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// The one place where error bodies are built: {"error":{"message","type","param","code"}}.
std::string error_body(http::status status, std::string_view message, std::string_view param = {},
                       std::string_view code = {});
std::string_view error_type(http::status status);

// A client certificate the TLS handshake verified against server.tls.client_ca_file.
struct ClientCertificate {
    std::string fingerprint_sha256; // lower-case hex of the DER encoding's SHA-256
    std::string subject, issuer;    // RFC 2253, as `openssl x509 -nameopt RFC2253` prints them
    std::vector<std::string> sans;  // "DNS:…", "URI:…", "email:…", "IP:…"
    int64_t not_after = 0;          // unix seconds
};

enum class ClientAuth { none, optional, required };

struct TlsOptions {
    std::string cert_file, key_file; // PEM: the chain (leaf first) and its private key
    std::string min_version = "1.3"; // 1.2 | 1.3
    std::string client_ca_file;      // who may issue client certificates
    ClientAuth client_auth = ClientAuth::none;
};

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;
    // TLS on `port`; plain HTTP is then refused there. A second, plain listener only when
    // plaintext_port is set (-1: none; 0: any free port).
    std::optional<TlsOptions> tls;
    int plaintext_port = -1;
    int hsts_max_age_s = 31536000; // Strict-Transport-Security on TLS responses (0: not sent)
    // Browsers on these origins may call the API ("*": any); empty: no CORS headers at all.
    std::vector<std::string> cors_origins;
    int cors_max_age_s = 600;
    int64_t max_body_bytes = 32 * 1024 * 1024; // IDE clients send whole files
    int max_header_bytes = 16 * 1024;
    std::chrono::seconds read_timeout{30};
    std::chrono::seconds keep_alive_timeout{60};
    std::chrono::seconds header_timeout{10}; // a new connection's first request headers
    int max_connections = 1024;
    int max_connections_per_ip = 256;
    // After the grace period, cut requests get this long to record themselves (their audit
    // rows, with what they used) before the connections close.
    std::chrono::milliseconds cut_grace{5000};
};

// What the router decides from a request's headers alone, before its body is read: refuse it
// (status other than ok: the body is never read and the connection closes), or how large a
// body it may have (0: ServerOptions::max_body_bytes).
struct HeaderVerdict {
    http::status status = http::status::ok;
    std::string body;
    Headers headers;
    uint64_t body_limit = 0;
};

class Connection;

// One request and its response on a connection.
class Exchange {
public:
    Exchange(Connection& connection, Request& request, std::string request_id);

    const Request& request() const { return request_; }
    // The gate hands handlers a rewritten body (the guard's redacted prompt) in place of the sent one.
    void replace_body(std::string body);
    std::string_view path() const;
    std::string query_param(std::string_view name) const;
    const std::string& path_param(const std::string& name) const;
    const std::string& request_id() const { return request_id_; }
    std::string remote_address() const;
    http::status status() const { return status_; }
    bool responded() const { return responded_; }

    asio::awaitable<void> respond(http::status status, std::string body,
                                  std::string_view content_type = "application/json",
                                  const Headers& extra = {});
    asio::awaitable<void> respond_error(http::status status, std::string_view message,
                                        std::string_view param = {}, const Headers& extra = {});
    // The answer to a CORS preflight (server.cors.allowed_origins).
    asio::awaitable<void> respond_preflight();

    // Chunked streaming (server-sent events). Each returns false once the client is gone.
    asio::awaitable<bool> begin_stream(std::string_view content_type = "text/event-stream");
    asio::awaitable<bool> write_chunk(std::string_view data);
    asio::awaitable<void> end_stream();

    // The client closed its connection while the request was being handled (or the server
    // cut it at the end of a shutdown's grace period: server_cut()).
    bool client_gone() const;
    bool server_cut() const;
    // Over TLS: the client's verified certificate (nullptr when it presented none).
    const ClientCertificate* client_certificate() const;
    bool secure() const;
    // Called (on the connection's strand) when the client goes away mid-request.
    void on_client_gone(std::function<void()> callback);

    std::map<std::string, std::string> path_params;
    // Who is calling, set by the router's gate (an auth::Principal; opaque to this module).
    std::shared_ptr<const void> caller;
    // The guard's output side for this call, set by the gate (an api::OutputGuard; opaque here).
    std::shared_ptr<const void> guard;
    // The exact-response cache for this call (an api::ResponseCache; opaque here), set by the
    // gate for inference calls when the cache is on.
    void* response_cache = nullptr;

    // What an inference call consumed, set by the handler (for the audit trail and usage).
    struct CallUsage {
        std::string model;
        int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0, shifted_tokens = 0;
        struct Timing {
            double queue_ms = 0, first_token_ms = 0, inter_token_ms = 0; // inter_token_ms: 0 with < 2 tokens
        };
        std::vector<Timing> generations;
        std::string completion_text; // what was generated (kept only if the audit trail stores prompts)
        std::string attempted_user; // a sign-in: the account name tried (failed sign-ins are audited with it)
        std::vector<std::string> guard_rules; // the rules the guard found in the request (ids, never values)
    };
    CallUsage usage;
    // Set by the gate for calls that hold quota: asks for `extra` more concurrency slots before
    // a call starts more than one generation (prompts × n count one each).
    std::function<asio::awaitable<Status>(int64_t extra)> claim_generations;
    // Added to whatever response this exchange sends (e.g. x-ratelimit-*).
    Headers response_headers;

    // Runs once, just before the end of the response goes out: in respond() before anything
    // is written, in end_stream() before the last chunk. Returning false turns a respond()
    // into a 503 and makes end_stream() drop the connection instead of ending the stream, so
    // that no client receives a complete answer the finisher could not account for.
    using Finisher = std::function<asio::awaitable<bool>(Exchange&, http::status)>;
    void set_finisher(Finisher finisher) { finisher_ = std::move(finisher); }
    // Runs a finisher that never ran (the client left): with status 499, nginx's "client
    // closed request".
    asio::awaitable<void> settle();

private:
    void common_headers(http::fields& fields);
    asio::awaitable<bool> run_finisher(http::status status);
    asio::awaitable<void> write_response(http::status status, std::string body, std::string_view content_type,
                                         const Headers& extra);
    Finisher finisher_;
    Connection& connection_;
    Request& request_;
    std::string request_id_;
    http::status status_ = http::status::ok;
    bool responded_ = false;
};

using Handler = std::function<asio::awaitable<void>(Exchange&)>;

// Exact paths and paths with {param} segments; 404 for unknown paths, 405 for known paths
// with another method.
class Router {
public:
    void add(http::verb method, std::string pattern, Handler handler);
    asio::awaitable<void> dispatch(Exchange& exchange) const;

    // Runs before every matched handler with the route's method and pattern; returns false
    // after it has answered the request itself (401, 403, 404, ...).
    using Gate = std::function<asio::awaitable<bool>(Exchange&, http::verb, const std::string& pattern)>;
    void set_gate(Gate gate);
    std::vector<std::pair<http::verb, std::string>> routes() const;

    // Runs when a request's headers have arrived, with the pattern of the route they name
    // (empty for none), before its body is read.
    // `request_id` is the one the response (and its audit record) will carry.
    struct HeaderContext {
        const std::string& pattern;
        const std::string& remote;
        const std::string& request_id;
        const ClientCertificate* certificate; // the connection's verified client certificate, or nullptr
    };
    using HeaderCheck = std::function<asio::awaitable<HeaderVerdict>(const http::request_header<>& header,
                                                                     const HeaderContext& at)>;
    void set_header_check(HeaderCheck check);
    asio::awaitable<HeaderVerdict> check_header(const http::request_header<>& header,
                                                const std::string& remote, const std::string& request_id,
                                                const ClientCertificate* certificate) const;

private:
    struct Route {
        http::verb method;
        std::string pattern;
        std::vector<std::string> segments;
        Handler handler;
    };
    const Route* match(std::string_view path, http::verb method, std::map<std::string, std::string>* params,
                       bool* path_known, std::vector<std::string>* allowed) const;
    std::vector<Route> routes_;
    Gate gate_;
    HeaderCheck header_check_;
};

// %XX → byte; with `form` (query strings) also '+' → space.
std::string percent_decode(std::string_view text, bool form = false);

class HttpServer {
public:
    HttpServer(asio::io_context& io, ServerOptions options, std::shared_ptr<Router> router);
    ~HttpServer();

    // Binds and listens (and loads the TLS certificate); port() then tells the bound port
    // (useful with port 0), plaintext_port() the plain listener's (-1: none).
    Status listen();
    int port() const { return port_; }
    int plaintext_port() const { return plaintext_port_; }
    // Reads the TLS files again (SIGHUP): new connections use them, open ones keep theirs. On
    // an error the certificate in use stays and the error says what was wrong.
    Status reload_tls();
    void start();
    // Stops accepting, closes idle connections, lets in-flight requests finish until the
    // deadline, then closes everything and calls `done` (on an io thread).
    void shutdown(std::chrono::milliseconds grace, std::function<void()> done);
    int in_flight() const;
    bool draining() const;

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
    int port_ = 0;
    int plaintext_port_ = -1;
};

} // namespace codepilot::server
