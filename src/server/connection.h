// Internal: one TCP (or TLS) connection, served by a coroutine on its own strand.
#pragma once

#include "server/server.h"
#include "server/tls.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace codepilot::server {

struct HttpServer::Shared {
    asio::io_context& io;
    ServerOptions options;
    std::shared_ptr<Router> router;
    asio::ip::tcp::acceptor acceptor;       // TLS when a context is set
    asio::ip::tcp::acceptor plain_acceptor; // server.tls.plaintext_port only
    std::atomic<bool> draining{false};
    std::atomic<int> in_flight{0};
    std::atomic<uint64_t> next_id{1};
    std::mutex mu;
    std::unordered_map<uint64_t, std::weak_ptr<Connection>> connections;
    std::unordered_map<std::string, int> per_address; // open connections by client address

    // The context new TLS connections get; replaced whole on reload (open ones keep theirs).
    std::mutex tls_mu;
    std::shared_ptr<ssl::context> tls_context;

    Shared(asio::io_context& io_, ServerOptions o, std::shared_ptr<Router> r)
        : io(io_), options(std::move(o)), router(std::move(r)), acceptor(io_), plain_acceptor(io_) {}
    std::shared_ptr<ssl::context> current_tls_context() {
        std::lock_guard lock(tls_mu);
        return tls_context;
    }
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    // `tls`: the context of a TLS connection (kept for its lifetime), nullptr for plain HTTP.
    Connection(std::shared_ptr<HttpServer::Shared> shared, asio::ip::tcp::socket socket, uint64_t id,
               std::shared_ptr<ssl::context> tls);
    asio::awaitable<void> run();
    // Closes the connection if it is between requests (on its strand).
    void close_if_idle();
    void close();
    // A shutdown's grace period is over: the request in flight is cancelled as if its client
    // had gone, and settles as 503 (on its strand).
    void cut_request();

    Transport& stream() { return stream_; }
    bool secure() const { return tls_context_ != nullptr; }
    const ServerOptions& options() const { return shared_->options; }
    HttpServer::Shared& shared() { return *shared_; }
    bool keep_alive = true;
    std::string remote;
    bool gone = false;
    bool cut = false;
    std::function<void()> gone_callback;
    std::shared_ptr<const ClientCertificate> certificate; // verified in the handshake

private:
    asio::awaitable<void> handle(Request& request, const std::string& request_id);
    asio::awaitable<bool> handshake();
    asio::awaitable<void> watch_disconnect();
    asio::awaitable<void> watch_tls_disconnect();
    asio::awaitable<void> write_error(http::status status, std::string_view message);
    asio::awaitable<void> write_response_and_close(const HeaderVerdict& verdict,
                                                   const std::string& request_id);

    std::shared_ptr<HttpServer::Shared> shared_;
    Transport stream_;
    std::shared_ptr<ssl::context> tls_context_;
    beast::flat_buffer buffer_; // what was read of the next request (the TLS watcher reads ahead)
    uint64_t id_;
    bool idle_ = true;
    bool handling_ = false;
    // The client sent requests ahead of our answers (pipelining). Its end of stream then
    // means "no more requests" (a half-close), not "gone": what it sent is still answered.
    bool pipelined_ = false;
    bool peer_done_ = false;
    bool watching_ = false;             // the TLS watcher's read is outstanding
    asio::steady_timer watch_done_;     // cancelled when it ends
};

// Response headers every answer carries: nosniff, no-store (unless the handler set a cache
// policy), HSTS over TLS and, for an allowed Origin, the CORS headers.
void set_response_policy(http::fields& fields, const Connection& connection, std::string_view origin);
// An OPTIONS request a browser sends before a cross-origin call.
bool is_cors_preflight(const Request& request);

} // namespace codepilot::server
