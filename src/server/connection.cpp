#include "server/connection.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cctype>
#include <random>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

namespace codepilot::server {

using asio::use_awaitable;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::string new_request_id() {
    thread_local std::mt19937_64 rng(std::random_device{}());
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
    return buf;
}

} // namespace

Connection::Connection(std::shared_ptr<HttpServer::Shared> shared, asio::ip::tcp::socket socket, uint64_t id,
                       std::shared_ptr<ssl::context> tls)
    : shared_(std::move(shared)), stream_(std::move(socket)), tls_context_(std::move(tls)), id_(id),
      watch_done_(stream_.get_executor()) {}

// A client's id is kept only when it is a plain token: it goes into logs and the audit trail.
static std::string request_id_of(const http::fields& fields) {
    std::string id(fields["x-request-id"]);
    bool plain = !id.empty() && id.size() <= 128;
    for (unsigned char c : id)
        plain = plain && (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':');
    return plain ? id : new_request_id();
}

// Request paths go to the log as printable ASCII: anything else is written as \xNN.
static std::string printable(std::string_view text) {
    std::string out;
    out.reserve(std::min<size_t>(text.size(), 512));
    for (unsigned char c : text.substr(0, 512)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[5];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

void Connection::cut_request() {
    if (!handling_ || gone) return;
    cut = true;
    gone = true;
    keep_alive = false;
    if (gone_callback) gone_callback();
}

void Connection::close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        if (self->idle_) self->close();
    });
}

void Connection::close() {
    beast::error_code ec;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
}

asio::awaitable<void> Connection::write_error(http::status status, std::string_view message) {
    const HeaderVerdict refusal{status, error_body(status, message), {}, 0};
    co_await write_response_and_close(refusal, new_request_id());
}

// Over TLS the socket is readable for records that are not requests too, so the watcher reads
// through TLS (into the connection's buffer, where the next request is then found): data means
// a pipelined request, end of stream or an error means the client left.
asio::awaitable<void> Connection::watch_tls_disconnect() {
    auto self = shared_from_this();
    auto space = buffer_.prepare(4096);
    auto [ec, n] = co_await stream_.async_read_some(space, as_tuple);
    buffer_.commit(n);
    const bool ended_by_handler = !handling_ || ec == asio::error::operation_aborted;
    if (n > 0) {
        pipelined_ = true;
    } else if (!ended_by_handler && pipelined_) { // a half-close after pipelined requests
        peer_done_ = true;
    } else if (!ended_by_handler) {
        gone = true;
        if (gone_callback) gone_callback();
    }
    watching_ = false;
    watch_done_.cancel();
}

// TLS first: a client that sends garbage, stops mid-handshake or presents a certificate the
// client CA did not issue is dropped here, before any HTTP is read. One that speaks plain HTTP
// gets a plain answer saying so (OpenSSL recognises the request line and sends no alert).
asio::awaitable<bool> Connection::handshake() {
    auto& opts = shared_->options;
    stream_.start_tls(*tls_context_);
    stream_.expires_after(std::min(opts.header_timeout, opts.read_timeout));
    auto [ec] = co_await stream_.tls()->async_handshake(ssl::stream_base::server, as_tuple);
    stream_.expires_never();
    if (!ec) {
        certificate = verified_peer_certificate(stream_.tls()->native_handle());
        co_return true;
    }
    const std::string reason = handshake_failure_reason(ec);
    if (reason == "closed" || reason == "timeout")
        spdlog::debug("TLS handshake from {}: {}", remote, reason);
    else
        spdlog::info("TLS handshake from {} failed ({}): {}", remote, reason, ec.message());
    if (is_plain_http_on_tls_port(ec)) {
        const std::string body = error_body(http::status::bad_request,
                                            "this port speaks HTTPS: plain HTTP is refused; use https://");
        const std::string reply = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                                  "Content-Type: application/json\r\nContent-Length: " +
                                  std::to_string(body.size()) + "\r\n\r\n" + body;
        stream_.expires_after(opts.read_timeout);
        co_await asio::async_write(stream_.tcp(), asio::buffer(reply), as_tuple);
    }
    co_return false;
}

asio::awaitable<void> Connection::run() {
    auto& opts = shared_->options;
    auto& buffer = buffer_;
    bool first = true;
    bool ready = true;
    if (tls_context_) ready = co_await handshake();
    while (ready && !shared_->draining.load()) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
        parser.body_limit(static_cast<std::uint64_t>(opts.max_body_bytes));

        idle_ = true;
        stream_.expires_after(first ? std::min(opts.header_timeout, opts.read_timeout)
                                    : opts.keep_alive_timeout);
        auto [ec, n] = co_await http::async_read_header(stream_, buffer, parser, as_tuple);
        idle_ = false;
        first = false;
        if (ec == http::error::header_limit) {
            co_await write_error(http::status::request_header_fields_too_large,
                                 "request headers are too large");
            break;
        }
        if (ec == http::error::body_limit) {
            co_await write_error(http::status::payload_too_large, "request body is larger than " +
                                                                      std::to_string(opts.max_body_bytes) +
                                                                      " bytes");
            break;
        }
        if (ec) {
            bool quiet = ec == http::error::end_of_stream || ec == beast::error::timeout ||
                         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
                         ec == asio::error::eof;
            if (!quiet)
                co_await write_error(http::status::bad_request, "malformed HTTP request: " + ec.message());
            break;
        }
        if (parser.get().version() >= 11 && parser.get()[http::field::host].empty()) { // RFC 9112 3.2
            co_await write_error(http::status::bad_request, "an HTTP/1.1 request must have a Host header");
            break;
        }
        // Decided before the body is read: who may send one (credentials first) and how large.
        const std::string request_id = request_id_of(parser.get());
        auto verdict =
            co_await shared_->router->check_header(parser.get().base(), remote, request_id, certificate.get());
        if (verdict.status != http::status::ok) {
            co_await write_response_and_close(verdict, request_id);
            break;
        }
        const uint64_t limit =
            verdict.body_limit ? verdict.body_limit : static_cast<uint64_t>(opts.max_body_bytes);
        if (parser.content_length() && *parser.content_length() > limit) {
            co_await write_error(http::status::payload_too_large,
                                 "request body is larger than " + std::to_string(limit) + " bytes");
            break;
        }
        parser.body_limit(limit);
        // curl and others wait for this before sending a large body.
        auto expect = parser.get()[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
            http::response<http::empty_body> cont{http::status::continue_, 11};
            co_await http::async_write(stream_, cont, as_tuple);
        }
        stream_.expires_after(opts.read_timeout);
        auto [ec2, n2] = co_await http::async_read(stream_, buffer, parser, as_tuple);
        if (ec2 == http::error::body_limit) {
            co_await write_error(http::status::payload_too_large,
                                 "request body is larger than " + std::to_string(limit) + " bytes");
            break;
        }
        if (ec2) {
            if (ec2 != beast::error::timeout && ec2 != http::error::end_of_stream)
                co_await write_error(http::status::bad_request, "malformed HTTP request: " + ec2.message());
            break;
        }
        stream_.expires_never();
        Request request = parser.release();
        keep_alive = request.keep_alive();
        if (buffer.size() > 0) pipelined_ = true; // the next request is already here
        co_await handle(request, request_id);
        if (!keep_alive || gone || (peer_done_ && buffer.size() == 0)) break;
    }
    close();
    std::lock_guard lock(shared_->mu);
    shared_->connections.erase(id_);
    if (auto it = shared_->per_address.find(remote); it != shared_->per_address.end() && --it->second <= 0)
        shared_->per_address.erase(it);
}

// An answer that ends the connection (the request's body, if any, was never read).
asio::awaitable<void> Connection::write_response_and_close(const HeaderVerdict& verdict,
                                                           const std::string& request_id) {
    http::response<http::string_body> res{verdict.status, 11};
    res.set(http::field::server, "codepilot");
    res.set("x-request-id", request_id);
    set_response_policy(res.base(), *this, {});
    res.set(http::field::content_type, "application/json");
    res.set(http::field::connection, "close");
    for (const auto& [k, v] : verdict.headers) res.set(k, v);
    res.body() = verdict.body;
    res.prepare_payload();
    stream_.expires_after(shared_->options.read_timeout);
    co_await http::async_write(stream_, res, as_tuple);
}

asio::awaitable<void> Connection::handle(Request& request, const std::string& request_id) {
    Exchange exchange(*this, request, request_id);

    shared_->in_flight++;
    handling_ = true;
    gone = false;
    gone_callback = nullptr;
    if (tls_context_) {
        watching_ = true;
        asio::co_spawn(stream_.get_executor(), watch_tls_disconnect(), asio::detached);
    } else {
        asio::co_spawn(stream_.get_executor(), watch_disconnect(), asio::detached);
    }
    auto started = std::chrono::steady_clock::now();
    bool failed = false;
    try {
        if (is_cors_preflight(request) && !shared_->options.cors_origins.empty())
            co_await exchange.respond_preflight();
        else
            co_await shared_->router->dispatch(exchange);
    } catch (const std::exception& e) {
        spdlog::error("request {} {} failed: {}", request_id, std::string(request.target()), e.what());
        failed = true;
    }
    if (failed) {
        if (!exchange.responded() && !gone)
            co_await exchange.respond_error(http::status::internal_server_error, "internal error");
        keep_alive = false;
    }
    if (!exchange.responded() && !gone) {
        co_await exchange.respond_error(http::status::internal_server_error, "the handler sent no response");
    }
    co_await exchange.settle(); // a client that left mid-request is accounted for too
    handling_ = false;
    beast::error_code ec;
    stream_.socket().cancel(ec); // ends watch_disconnect
    if (watching_) { // the TLS watcher's read must be over before the next request is read
        watch_done_.expires_at(asio::steady_timer::time_point::max());
        co_await watch_done_.async_wait(as_tuple);
    }
    shared_->in_flight--;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    // The status the audit trail records: 499 for a client that left, 503 for a cut request.
    const int logged = cut ? 503 : gone ? 499 : static_cast<int>(exchange.status());
    spdlog::info("{} {} {} {} {:.1f}ms{}", request_id, std::string(request.method_string()),
                 printable(exchange.path()), logged, ms,
                 cut    ? " (cut at shutdown)"
                 : gone ? " (client gone)"
                        : "");
}

// Waits for the socket to become readable while a request is handled: EOF means the client
// left, so its generation can be cancelled at once rather than when the next write fails.
asio::awaitable<void> Connection::watch_disconnect() {
    auto self = shared_from_this();
    while (handling_) {
        auto [ec] = co_await stream_.socket().async_wait(asio::ip::tcp::socket::wait_read, as_tuple);
        if (!handling_ || ec == asio::error::operation_aborted) co_return;
        char byte;
        ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) co_return; // a pipelined request: not a disconnect
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (n == 0 && pipelined_) { // a half-close after pipelined requests: answer them all
            peer_done_ = true;
            co_return;
        }
        gone = true;
        if (gone_callback) gone_callback();
        co_return;
    }
}

} // namespace codepilot::server
