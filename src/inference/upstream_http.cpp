#include "inference/upstream_http.h"

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

namespace codepilot::inference {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using asio::redirect_error;
using asio::use_awaitable;

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxBody = 256 * 1024 * 1024; // embeddings of many inputs

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string upstream_message(int status, const std::string& body) {
    std::string message;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("error")) {
        const auto& e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string())
            message = e["message"];
        else if (e.is_string())
            message = e.get<std::string>();
    }
    if (message.empty()) message = body.substr(0, 200);
    if (message.size() > 300) message = message.substr(0, 300) + "...";
    return "the upstream answered " + std::to_string(status) + (message.empty() ? "" : ": " + message);
}

} // namespace

struct ReplicaPool::Conn {
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
    beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

struct ReplicaPool::Replica {
    Endpoint endpoint;
    std::atomic<int> outstanding{0};
    // Guarded by the pool's mutex:
    bool up = true; // the last health check passed (optimistic before the first)
    int failures = 0;
    Clock::time_point open_until{};
    bool probing = false;
    std::string last_error;
    std::deque<std::shared_ptr<Conn>> idle;

    bool available(Clock::time_point now, int threshold) const {
        if (!up) return false;
        return failures < threshold || (now >= open_until && !probing);
    }
};

Result<Endpoint> parse_endpoint(const std::string& url) {
    Endpoint e;
    e.url = url;
    std::string rest;
    if (url.rfind("http://", 0) == 0)
        rest = url.substr(7);
    else if (url.rfind("https://", 0) == 0) {
        e.tls = true;
        rest = url.substr(8);
    } else
        return make_error(ErrorCode::invalid_argument,
                          "url '" + url + "' must start with http:// or https://");
    auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    e.base = slash == std::string::npos ? "" : rest.substr(slash);
    if (authority.find('@') != std::string::npos)
        return make_error(ErrorCode::invalid_argument,
                          "url '" + url + "' must not carry credentials (use api_key_file)");
    while (!e.base.empty() && e.base.back() == '/') e.base.pop_back();
    if (e.base.size() >= 3 && e.base.compare(e.base.size() - 3, 3, "/v1") == 0)
        e.base.resize(e.base.size() - 3);
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string::npos)
            return make_error(ErrorCode::invalid_argument, "url '" + url + "': bad IPv6 host");
        e.host = authority.substr(1, close - 1);
        if (close + 1 < authority.size() && authority[close + 1] == ':') e.port = authority.substr(close + 2);
    } else {
        auto colon = authority.rfind(':');
        e.host = authority.substr(0, colon);
        if (colon != std::string::npos) e.port = authority.substr(colon + 1);
    }
    if (e.host.empty()) return make_error(ErrorCode::invalid_argument, "url '" + url + "' has no host");
    if (e.port.empty()) e.port = e.tls ? "443" : "80";
    if (e.port.find_first_not_of("0123456789") != std::string::npos || e.port.size() > 5 ||
        std::stoi(e.port) == 0 || std::stoi(e.port) > 65535)
        return make_error(ErrorCode::invalid_argument, "url '" + url + "' has a bad port");
    return e;
}

ReplicaPool::ReplicaPool(const UpstreamOptions& options, std::vector<Endpoint> endpoints)
    : options_(options), work_(io_.get_executor()), tls_(asio::ssl::context::tls_client) {
    tls_.set_verify_mode(asio::ssl::verify_peer);
    boost::system::error_code ec;
    if (!options.ca_file.empty())
        tls_.load_verify_file(options.ca_file, ec);
    else
        tls_.set_default_verify_paths(ec);
    if (ec) spdlog::warn("model '{}': CA bundle not loaded: {}", options.id, ec.message());
    for (auto& e : endpoints) {
        auto r = std::make_unique<Replica>();
        r->endpoint = std::move(e);
        replicas_.push_back(std::move(r));
    }
}

ReplicaPool::~ReplicaPool() {
    stop();
}

void ReplicaPool::start() {
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) threads_.emplace_back([this] { io_.run(); });
    if (options_.health_interval_ms > 0) spawn([this]() -> Co<void> { co_await check_health(); });
}

void ReplicaPool::stop() {
    if (stopping_.exchange(true)) return;
    work_.reset();
    {
        std::lock_guard lock(mu_);
        for (auto& r : replicas_) r->idle.clear();
    }
    io_.stop();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
}

std::optional<size_t> ReplicaPool::pick(const std::vector<size_t>& tried) {
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    std::optional<size_t> best;
    const size_t n = replicas_.size();
    for (size_t k = 0; k < n; ++k) {
        size_t i = (rotation_ + k) % n; // ties go round the replicas
        if (std::find(tried.begin(), tried.end(), i) != tried.end()) continue;
        if (!replicas_[i]->available(now, options_.breaker_failures)) continue;
        if (!best || replicas_[i]->outstanding.load() < replicas_[*best]->outstanding.load()) best = i;
    }
    ++rotation_;
    if (best) {
        auto& r = *replicas_[*best];
        if (r.failures >= options_.breaker_failures) r.probing = true; // half-open: this call is the probe
        r.outstanding.fetch_add(1);
    }
    return best;
}

void ReplicaPool::record(Replica& r, bool ok, const std::string& error) {
    std::lock_guard lock(mu_);
    if (ok) {
        r.failures = 0;
        r.probing = false;
        return;
    }
    ++r.failures;
    r.last_error = error;
    if (r.failures >= options_.breaker_failures) {
        if (r.failures == options_.breaker_failures || r.probing)
            spdlog::warn("model '{}': replica {} circuit open for {} ms: {}", options_.id, r.endpoint.url,
                         options_.breaker_cooldown_ms, error);
        r.open_until = Clock::now() + std::chrono::milliseconds(options_.breaker_cooldown_ms);
        r.probing = false;
    }
}

bool ReplicaPool::any_available() const {
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    for (const auto& r : replicas_)
        if (r->available(now, options_.breaker_failures)) return true;
    return false;
}

Health ReplicaPool::health() const {
    Health h;
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    h.replicas = static_cast<int>(replicas_.size());
    for (const auto& r : replicas_) {
        if (r->available(now, options_.breaker_failures))
            ++h.replicas_up;
        else if (h.detail.empty())
            h.detail = r->endpoint.url + ": " + r->last_error;
    }
    h.serving = h.replicas_up > 0;
    h.state = h.replicas_up == h.replicas ? "serving" : h.serving ? "degraded" : "down";
    if (stopping_) h = Health{false, "stopped", h.replicas, 0, ""};
    return h;
}

Co<std::shared_ptr<ReplicaPool::Conn>> ReplicaPool::connect(const Endpoint& e, std::string& error) {
    auto ex = co_await asio::this_coro::executor;
    auto conn = std::make_shared<Conn>();
    asio::ip::tcp::resolver resolver(ex);
    boost::system::error_code ec;
    auto found = co_await resolver.async_resolve(e.host, e.port, redirect_error(use_awaitable, ec));
    if (ec) {
        error = "resolving " + e.host + ": " + ec.message();
        co_return nullptr;
    }
    if (e.tls)
        conn->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex, tls_);
    else
        conn->plain = std::make_unique<beast::tcp_stream>(ex);
    auto& low = conn->lowest();
    low.expires_after(std::chrono::milliseconds(options_.connect_timeout_ms));
    co_await low.async_connect(found, redirect_error(use_awaitable, ec));
    if (ec) {
        error = ec == beast::error::timeout
                    ? "connect timed out after " + std::to_string(options_.connect_timeout_ms) + " ms"
                    : "connect: " + ec.message();
        co_return nullptr;
    }
    low.socket().set_option(asio::ip::tcp::no_delay(true), ec);
    if (conn->secure) {
        boost::system::error_code parse_ec;
        asio::ip::make_address(e.host, parse_ec);
        if (parse_ec && !SSL_set_tlsext_host_name(conn->secure->native_handle(), e.host.c_str())) {
            error = "TLS: cannot set the server name";
            co_return nullptr;
        }
        conn->secure->set_verify_callback(asio::ssl::host_name_verification(e.host));
        co_await conn->secure->async_handshake(asio::ssl::stream_base::client,
                                               redirect_error(use_awaitable, ec));
        if (ec) {
            error = "TLS handshake: " + ec.message();
            co_return nullptr;
        }
    }
    co_return conn;
}

namespace {

struct Progress {
    bool first_byte = false;
    bool reusable = false;
};

// One request/answer on an open connection; "" or what went wrong.
template <typename Stream>
Co<std::string> exchange(Stream& s, beast::tcp_stream& low, beast::flat_buffer& buffer, const Endpoint& e,
                         const UpstreamOptions& o, const std::string& path, const std::string& body,
                         StreamSink* sink, Reply& reply, Progress& progress) {
    http::request<http::string_body> req{http::verb::post, e.base + path, 11};
    req.set(http::field::host, e.host + ":" + e.port);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, sink ? "text/event-stream" : "application/json");
    req.set(http::field::user_agent, "codepilot");
    if (!o.api_key.empty()) req.set(http::field::authorization, "Bearer " + o.api_key);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    boost::system::error_code ec;
    low.expires_after(std::chrono::milliseconds(o.first_byte_timeout_ms));
    co_await http::async_write(s, req, redirect_error(use_awaitable, ec));
    if (ec) co_return "sending the request: " + ec.message();
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(kMaxBody);
    co_await http::async_read_header(s, buffer, parser, redirect_error(use_awaitable, ec));
    if (ec)
        co_return ec == beast::error::timeout
            ? "no answer within " + std::to_string(o.first_byte_timeout_ms) + " ms"
            : "waiting for the answer: " + ec.message();
    progress.first_byte = true;
    reply.status = parser.get().result_int();
    const bool streaming = sink && reply.status == 200;
    std::string pending;
    bool draining = false; // after [DONE]: read the end of the chunked body to keep the connection
    char chunk[16384];
    while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        low.expires_after(std::chrono::milliseconds(o.idle_timeout_ms));
        // read_some: whatever has arrived (async_read would wait for a full buffer, holding
        // back every event of a short answer until its end).
        co_await http::async_read_some(s, buffer, parser, redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {
            if (draining) co_return "";
            if (ec == beast::error::timeout)
                co_return "the upstream sent nothing for " + std::to_string(o.idle_timeout_ms) + " ms";
            if (ec == http::error::partial_message || ec == asio::error::eof ||
                ec == asio::error::connection_reset)
                co_return "the upstream closed the connection mid-answer";
            co_return "reading the answer: " + ec.message();
        }
        const size_t n = sizeof chunk - parser.get().body().size;
        if (!streaming) {
            reply.body.append(chunk, n);
            if (reply.status != 200 && reply.body.size() > kMaxErrorBody) co_return "";
            continue;
        }
        if (draining) continue;
        pending.append(chunk, n);
        for (;;) { // complete events: lines up to a blank line
            size_t end = pending.find("\n\n"), crlf = pending.find("\r\n\r\n");
            size_t sep = std::min(end, crlf);
            if (sep == std::string::npos) break;
            std::string event = pending.substr(0, sep);
            pending.erase(0, sep + (sep == crlf ? 4 : 2));
            std::string data;
            size_t pos = 0;
            while (pos <= event.size()) {
                size_t nl = event.find('\n', pos);
                std::string line = event.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (line.rfind("data:", 0) == 0) {
                    std::string value = line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5);
                    data += data.empty() ? value : "\n" + value;
                }
                if (nl == std::string::npos) break;
                pos = nl + 1;
            }
            if (data.empty()) continue;
            if (data == "[DONE]") {
                reply.stream_ended = true;
                draining = true;
                break;
            }
            bool more = false;
            try {
                more = (*sink)(data);
            } catch (const UpstreamError& err) {
                co_return err.what();
            }
            if (!more) co_return ""; // stopped by the caller: the connection is dropped
        }
        if (pending.size() > kMaxErrorBody) co_return "the upstream sent an event larger than 64 KiB";
    }
    progress.reusable = parser.is_done() && parser.keep_alive();
    co_return "";
}

} // namespace

Co<Result<Reply>> ReplicaPool::call(const std::string& path, const std::string& body, StreamSink* sink,
                                    std::function<bool()> interrupted) {
    const auto start = Clock::now();
    auto ex = co_await asio::this_coro::executor;
    std::vector<size_t> tried;
    std::string last = "no replica is up", last_reason = "none is up"; // last_reason: without addresses
    int stale_retries = 0;
    for (int attempt = 0; attempt < std::max(1, options_.max_attempts); ++attempt) {
        if (interrupted && interrupted())
            co_return make_error(ErrorCode::unavailable, "interrupted before sending");
        auto index = pick(tried);
        if (!index) break;
        tried.push_back(*index);
        Replica& r = *replicas_[*index];
        struct Release {
            Replica& r;
            ~Release() { r.outstanding.fetch_sub(1); }
        } release{r};
        std::shared_ptr<Conn> conn;
        {
            std::lock_guard lock(mu_);
            if (!r.idle.empty()) {
                conn = r.idle.back();
                r.idle.pop_back();
            }
        }
        const bool reused = conn != nullptr;
        std::string error;
        if (!conn) conn = co_await connect(r.endpoint, error);
        if (!conn) {
            last = r.endpoint.url + ": " + error;
            last_reason = error;
            record(r, false, error);
            continue;
        }
        Reply reply;
        reply.connected_ms = ms_since(start);
        Progress progress;
        // Polls `interrupted` and cuts the connection, which ends any pending read or write.
        auto done = std::make_shared<bool>(false);
        if (interrupted)
            asio::co_spawn(
                ex,
                [conn, done, interrupted]() -> Co<void> {
                    asio::steady_timer timer(co_await asio::this_coro::executor);
                    while (!*done) {
                        timer.expires_after(std::chrono::milliseconds(20));
                        co_await timer.async_wait(use_awaitable);
                        if (!*done && interrupted()) {
                            conn->lowest().cancel();
                            co_return;
                        }
                    }
                },
                asio::detached);
        if (conn->secure)
            error = co_await exchange(*conn->secure, conn->lowest(), conn->buffer, r.endpoint, options_, path,
                                      body, sink, reply, progress);
        else
            error = co_await exchange(*conn->plain, conn->lowest(), conn->buffer, r.endpoint, options_, path,
                                      body, sink, reply, progress);
        *done = true;
        if (!error.empty() && !progress.first_byte) {
            if (reused && stale_retries++ < 2) {
                // A keep-alive connection the upstream had closed (llama-server closes idle ones
                // after 5 s): the others of that age are likely gone too, so retry on a new one.
                std::lock_guard lock(mu_);
                r.idle.clear();
                tried.pop_back();
                --attempt;
                continue;
            }
            last = r.endpoint.url + ": " + error;
            last_reason = error;
            record(r, false, error);
            continue;
        }
        if (!error.empty()) {
            record(r, false, error);
            co_return make_error(ErrorCode::bad_gateway, "model '" + options_.id + "': " + error);
        }
        if (reply.status == 502 || reply.status == 503 || reply.status == 504) {
            last_reason = upstream_message(reply.status, reply.body);
            last = r.endpoint.url + ": " + last_reason;
            record(r, false, last);
            if (progress.reusable) {
                std::lock_guard lock(mu_);
                r.idle.push_back(conn);
            }
            continue;
        }
        record(r, reply.status < 500, upstream_message(reply.status, reply.body));
        if (progress.reusable && !stopping_) {
            std::lock_guard lock(mu_);
            if (static_cast<int>(r.idle.size()) < options_.max_idle_per_replica) r.idle.push_back(conn);
        }
        if (reply.status >= 400)
            co_return make_error(reply.status < 500 ? ErrorCode::invalid_argument : ErrorCode::bad_gateway,
                                 "model '" + options_.id +
                                     "': " + upstream_message(reply.status, reply.body));
        co_return reply;
    }
    spdlog::warn("model '{}': no replica answered: {}", options_.id, last);
    co_return make_error(ErrorCode::unavailable,
                         "model '" + options_.id + "': no replica answered (" + last_reason + ")");
}

Co<void> ReplicaPool::check_health() {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    while (!stopping_) {
        for (auto& r : replicas_) {
            std::string error;
            auto conn = co_await connect(r->endpoint, error);
            int status = 0;
            if (conn) {
                http::request<http::empty_body> req{http::verb::get, r->endpoint.base + "/health", 11};
                req.set(http::field::host, r->endpoint.host + ":" + r->endpoint.port);
                req.keep_alive(false);
                http::response<http::string_body> res;
                http::response_parser<http::string_body> parser;
                parser.body_limit(kMaxErrorBody);
                boost::system::error_code ec;
                conn->lowest().expires_after(
                    std::chrono::milliseconds(std::min(options_.first_byte_timeout_ms, 5000)));
                if (conn->secure) {
                    co_await http::async_write(*conn->secure, req, redirect_error(use_awaitable, ec));
                    if (!ec)
                        co_await http::async_read(*conn->secure, conn->buffer, parser,
                                                  redirect_error(use_awaitable, ec));
                } else {
                    co_await http::async_write(*conn->plain, req, redirect_error(use_awaitable, ec));
                    if (!ec)
                        co_await http::async_read(*conn->plain, conn->buffer, parser,
                                                  redirect_error(use_awaitable, ec));
                }
                if (ec)
                    error = "health check: " + ec.message();
                else
                    status = parser.get().result_int();
                if (!ec && status != 200) error = "health check answered " + std::to_string(status);
            }
            std::lock_guard lock(mu_);
            const bool up = status == 200;
            if (up != r->up)
                spdlog::log(up ? spdlog::level::info : spdlog::level::warn, "model '{}': replica {} is {}{}",
                            options_.id, r->endpoint.url, up ? "up" : "down: ", up ? "" : error);
            r->up = up;
            if (!up) {
                r->last_error = error;
                r->idle.clear();
            }
        }
        timer.expires_after(std::chrono::milliseconds(options_.health_interval_ms));
        boost::system::error_code ec;
        co_await timer.async_wait(redirect_error(use_awaitable, ec));
    }
}

} // namespace codepilot::inference
