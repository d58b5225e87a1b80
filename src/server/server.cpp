#include "server/server.h"

#include "server/connection.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace codepilot::server {

constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

std::string_view error_type(http::status status) {
    switch (status) {
    case http::status::unauthorized:
        return "authentication_error";
    case http::status::forbidden:
        return "permission_error";
    case http::status::not_found:
        return "not_found_error";
    case http::status::too_many_requests:
        return "rate_limit_error";
    case http::status::service_unavailable:
        return "server_overloaded";
    default:
        return static_cast<int>(status) >= 500 ? "server_error" : "invalid_request_error";
    }
}

std::string error_body(http::status status, std::string_view message, std::string_view param,
                       std::string_view code) {
    nlohmann::json error = {
        {"message", message},
        {"type", error_type(status)},
        {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
        {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)},
    };
    return nlohmann::json{{"error", error}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// --- Exchange --------------------------------------------------------------------------------

void Exchange::replace_body(std::string body) {
    request_.body() = std::move(body);
    request_.prepare_payload();
}

Exchange::Exchange(Connection& connection, Request& request, std::string request_id)
    : connection_(connection), request_(request), request_id_(std::move(request_id)) {}

std::string_view Exchange::path() const {
    std::string_view target(request_.target().data(), request_.target().size());
    return target.substr(0, target.find('?'));
}

std::string percent_decode(std::string_view text, bool form) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
            out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
            i += 2;
        } else if (form && text[i] == '+') {
            out += ' ';
        } else {
            out += text[i];
        }
    }
    return out;
}

std::string Exchange::query_param(std::string_view name) const {
    std::string_view target(request_.target().data(), request_.target().size());
    auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        auto eq = pair.find('=');
        if (pair.substr(0, eq) == name)
            return eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1), true);
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return {};
}

const std::string& Exchange::path_param(const std::string& name) const {
    static const std::string empty;
    auto it = path_params.find(name);
    return it == path_params.end() ? empty : it->second;
}

std::string Exchange::remote_address() const {
    return connection_.remote;
}

bool Exchange::client_gone() const {
    return connection_.gone;
}
bool Exchange::server_cut() const {
    return connection_.cut;
}
const ClientCertificate* Exchange::client_certificate() const {
    return connection_.certificate.get();
}
bool Exchange::secure() const {
    return connection_.secure();
}

// --- Response policy and CORS ----------------------------------------------------------------

namespace {
std::string allowed_origin(const ServerOptions& options, std::string_view origin) {
    if (origin.empty() || options.cors_origins.empty()) return {};
    for (const auto& allowed : options.cors_origins)
        if (allowed == "*" || beast::iequals(allowed, origin)) return std::string(origin);
    return {};
}

// What a preflight may ask for: header names only (letters, digits, '-', ',' and spaces).
bool plain_header_list(std::string_view list) {
    if (list.size() > 1024) return false;
    for (unsigned char c : list)
        if (!std::isalnum(c) && c != '-' && c != '_' && c != ',' && c != ' ') return false;
    return true;
}
} // namespace

bool is_cors_preflight(const Request& request) {
    return request.method() == http::verb::options && !request[http::field::origin].empty() &&
           !request[http::field::access_control_request_method].empty();
}

void set_response_policy(http::fields& fields, const Connection& connection, std::string_view origin) {
    const auto& options = connection.options();
    fields.set("x-content-type-options", "nosniff");
    if (fields[http::field::cache_control].empty()) fields.set(http::field::cache_control, "no-store");
    if (connection.secure() && options.hsts_max_age_s > 0)
        fields.set(http::field::strict_transport_security,
                   "max-age=" + std::to_string(options.hsts_max_age_s));
    if (options.cors_origins.empty()) return;
    fields.set(http::field::vary, "Origin");
    if (auto allowed = allowed_origin(options, origin); !allowed.empty()) {
        fields.set(http::field::access_control_allow_origin, allowed);
        fields.set(http::field::access_control_expose_headers,
                   "x-request-id, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, "
                   "x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, "
                   "x-ratelimit-reset-tokens");
    }
}

// A browser asks before a cross-origin call. Answered without credentials (browsers send none
// with a preflight): the call itself then passes the gate like any other.
asio::awaitable<void> Exchange::respond_preflight() {
    const auto origin = request_[http::field::origin];
    if (allowed_origin(connection_.options(), origin).empty()) {
        co_await write_response(http::status::forbidden,
                                error_body(http::status::forbidden,
                                           "origin '" + std::string(origin.substr(0, 256)) +
                                               "' may not call this server (server.cors.allowed_origins)"),
                                "application/json", {});
        co_return;
    }
    Headers headers{{"access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE"},
                    {"access-control-max-age", std::to_string(connection_.options().cors_max_age_s)}};
    const auto asked = request_[http::field::access_control_request_headers];
    headers.emplace_back("access-control-allow-headers", plain_header_list(asked) && !asked.empty()
                                                             ? std::string(asked)
                                                             : "authorization, content-type, x-request-id");
    co_await write_response(http::status::no_content, {}, {}, headers);
}

void Exchange::on_client_gone(std::function<void()> callback) {
    if (connection_.gone) {
        callback();
        return;
    }
    connection_.gone_callback = std::move(callback);
}

void Exchange::common_headers(http::fields& fields) {
    fields.set(http::field::server, "codepilot");
    fields.set("x-request-id", request_id_);
    set_response_policy(fields, connection_, request_[http::field::origin]);
    if (connection_.shared().draining.load()) connection_.keep_alive = false;
}

namespace {
Headers retry_after_headers() {
    return {{"Retry-After", "1"}};
}
} // namespace

asio::awaitable<bool> Exchange::run_finisher(http::status status) {
    if (!finisher_) co_return true;
    auto finisher = std::move(finisher_);
    finisher_ = nullptr;
    co_return co_await finisher(*this, status);
}

asio::awaitable<void> Exchange::settle() {
    // 499 (nginx's "client closed request") when the client left, 503 when a shutdown cut it.
    const auto st = connection_.cut    ? http::status::service_unavailable
                    : connection_.gone ? static_cast<http::status>(499)
                                       : status_;
    if (finisher_) (void)co_await run_finisher(st);
}

asio::awaitable<void> Exchange::respond(http::status status, std::string body, std::string_view content_type,
                                        const Headers& extra) {
    if (!co_await run_finisher(status)) {
        const auto unavailable = http::status::service_unavailable;
        co_await write_response(
            unavailable,
            error_body(unavailable,
                       "the audit trail cannot record this request right now; try again shortly"),
            "application/json", retry_after_headers());
        co_return;
    }
    co_await write_response(status, std::move(body), content_type, extra);
}

asio::awaitable<void> Exchange::write_response(http::status status, std::string body,
                                               std::string_view content_type, const Headers& extra) {
    status_ = status;
    responded_ = true;
    http::response<http::string_body> res{status, request_.version()};
    if (!content_type.empty()) res.set(http::field::content_type, content_type);
    for (const auto& [k, v] : response_headers) res.set(k, v);
    for (const auto& [k, v] : extra) res.set(k, v);
    common_headers(res.base()); // after the handler's headers: a cache policy of its own stays
    res.keep_alive(connection_.keep_alive);
    auto& stream = connection_.stream();
    stream.expires_after(connection_.shared().options.read_timeout);
    beast::error_code ec;
    if (request_.method() == http::verb::head) { // the headers a GET would send, and no body (RFC 9110 9.3.2)
        http::response<http::empty_body> head{std::move(res.base())};
        head.content_length(body.size());
        std::tie(ec, std::ignore) = co_await http::async_write(stream, head, as_tuple);
    } else {
        res.body() = std::move(body);
        res.prepare_payload();
        std::tie(ec, std::ignore) = co_await http::async_write(stream, res, as_tuple);
    }
    stream.expires_never();
    if (ec) connection_.keep_alive = false;
}

asio::awaitable<void> Exchange::respond_error(http::status status, std::string_view message,
                                              std::string_view param, const Headers& extra) {
    co_await respond(status, error_body(status, message, param), "application/json", extra);
}

asio::awaitable<bool> Exchange::begin_stream(std::string_view content_type) {
    status_ = http::status::ok;
    responded_ = true;
    http::response<http::empty_body> res{http::status::ok, request_.version()};
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    common_headers(res.base());
    res.set("x-accel-buffering", "no");
    for (const auto& [k, v] : response_headers) res.set(k, v);
    res.keep_alive(connection_.keep_alive);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    auto& stream = connection_.stream();
    stream.expires_after(connection_.shared().options.read_timeout);
    auto [ec, n] = co_await http::async_write_header(stream, sr, as_tuple);
    stream.expires_never();
    if (ec) connection_.keep_alive = false;
    co_return !ec && !connection_.gone;
}

asio::awaitable<bool> Exchange::write_chunk(std::string_view data) {
    if (connection_.gone) co_return false;
    auto& stream = connection_.stream();
    stream.expires_after(connection_.shared().options.read_timeout);
    auto [ec, n] = co_await asio::async_write(
        stream, http::make_chunk(asio::buffer(data.data(), data.size())), as_tuple);
    stream.expires_never();
    if (ec) {
        connection_.keep_alive = false;
        connection_.gone = true;
    }
    co_return !ec;
}

asio::awaitable<void> Exchange::end_stream() {
    if (connection_.gone) co_return;
    if (!co_await run_finisher(status_)) {
        connection_.keep_alive = false;
        connection_.gone = true;
        beast::error_code ignored;
        connection_.stream().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        co_return;
    }
    auto& stream = connection_.stream();
    stream.expires_after(connection_.shared().options.read_timeout);
    auto [ec, n] = co_await asio::async_write(stream, http::make_chunk_last(), as_tuple);
    stream.expires_never();
    if (ec) connection_.keep_alive = false;
}

// --- Router ----------------------------------------------------------------------------------

namespace {
std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> parts;
    size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        size_t j = path.find('/', i);
        if (j == std::string_view::npos) j = path.size();
        parts.emplace_back(path.substr(i, j - i));
        i = j;
    }
    return parts;
}
} // namespace

void Router::add(http::verb method, std::string pattern, Handler handler) {
    auto segments = split_path(pattern);
    routes_.push_back({method, std::move(pattern), std::move(segments), std::move(handler)});
}

void Router::set_gate(Gate gate) {
    gate_ = std::move(gate);
}

std::vector<std::pair<http::verb, std::string>> Router::routes() const {
    std::vector<std::pair<http::verb, std::string>> out;
    for (const auto& r : routes_) out.emplace_back(r.method, r.pattern);
    return out;
}

const Router::Route* Router::match(std::string_view path, http::verb method,
                                   std::map<std::string, std::string>* params, bool* path_known,
                                   std::vector<std::string>* allowed) const {
    auto parts = split_path(path);
    for (const auto& route : routes_) {
        if (route.segments.size() != parts.size()) continue;
        std::map<std::string, std::string> found;
        bool same = true;
        for (size_t i = 0; i < parts.size() && same; ++i) {
            const auto& seg = route.segments[i];
            if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}')
                found[seg.substr(1, seg.size() - 2)] = percent_decode(parts[i]);
            else
                same = seg == parts[i];
        }
        if (!same) continue;
        if (path_known) *path_known = true;
        if (route.method == method || (method == http::verb::head && route.method == http::verb::get)) {
            if (params) *params = std::move(found);
            return &route;
        }
        if (allowed) allowed->emplace_back(http::to_string(route.method));
    }
    return nullptr;
}

void Router::set_header_check(HeaderCheck check) {
    header_check_ = std::move(check);
}

asio::awaitable<HeaderVerdict> Router::check_header(const http::request_header<>& header,
                                                    const std::string& remote, const std::string& request_id,
                                                    const ClientCertificate* certificate) const {
    if (!header_check_) co_return HeaderVerdict{};
    std::string_view target(header.target().data(), header.target().size());
    const Route* route =
        match(target.substr(0, target.find('?')), header.method(), nullptr, nullptr, nullptr);
    static const std::string none;
    const HeaderContext at{route ? route->pattern : none, remote, request_id, certificate};
    co_return co_await header_check_(header, at);
}

asio::awaitable<void> Router::dispatch(Exchange& exchange) const {
    bool path_known = false;
    std::vector<std::string> allowed;
    std::map<std::string, std::string> params;
    if (const Route* route =
            match(exchange.path(), exchange.request().method(), &params, &path_known, &allowed)) {
        exchange.path_params = std::move(params);
        if (gate_ && !co_await gate_(exchange, route->method, route->pattern)) co_return;
        co_await route->handler(exchange);
        co_return;
    }
    if (path_known) {
        std::string allow;
        for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
        Headers extra{{"Allow", allow}};
        std::string message = std::string(exchange.request().method_string()) + " is not allowed on " +
                              std::string(exchange.path()) + " (allowed: " + allow + ")";
        co_await exchange.respond_error(http::status::method_not_allowed, message, {}, extra);
        co_return;
    }
    co_await exchange.respond_error(http::status::not_found, "no route for " + std::string(exchange.path()));
}

// --- HttpServer ------------------------------------------------------------------------------

namespace {

// `tls`: the main listener with TLS configured (each connection takes the context in effect).
asio::awaitable<void> accept_loop(std::shared_ptr<HttpServer::Shared> shared,
                                  asio::ip::tcp::acceptor& acceptor, bool tls) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(shared->io), as_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
            spdlog::warn("accept failed: {}", ec.message());
            continue;
        }
        if (shared->draining.load()) {
            beast::error_code ignored;
            socket.close(ignored);
            continue;
        }
        socket.set_option(asio::ip::tcp::no_delay(true), ec);
        uint64_t id = shared->next_id++;
        std::shared_ptr<Connection> connection;
        {
            std::lock_guard lock(shared->mu);
            auto peer = socket.remote_endpoint(ec);
            const std::string address = ec ? std::string() : peer.address().to_string();
            const bool full = static_cast<int>(shared->connections.size()) >= shared->options.max_connections;
            // One address cannot hold every connection (half-open sockets, a runaway client).
            const bool greedy =
                !full && shared->per_address[address] >= shared->options.max_connections_per_ip;
            if ((full || greedy) && tls) { // no plaintext answer to a TLS client: it could not read it
                beast::error_code ignored;
                socket.close(ignored);
                continue;
            }
            if (full || greedy) {
                const std::string body =
                    error_body(http::status::service_unavailable,
                               full ? "too many connections" : "too many connections from this address");
                const std::string reply =
                    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                    "Content-Type: application/json\r\nRetry-After: 1\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
                beast::error_code ignored;
                socket.non_blocking(true, ignored); // a full send buffer drops the answer, never the thread
                socket.write_some(asio::buffer(reply), ignored);
                socket.close(ignored);
                continue;
            }
            connection = std::make_shared<Connection>(shared, std::move(socket), id,
                                                      tls ? shared->current_tls_context() : nullptr);
            connection->remote = address;
            ++shared->per_address[address];
            shared->connections[id] = connection;
        }
        asio::co_spawn(
            connection->stream().get_executor(),
            [connection]() -> asio::awaitable<void> { co_await connection->run(); },
            [](std::exception_ptr failure) {
                try {
                    if (failure) std::rethrow_exception(failure);
                } catch (const std::exception& e) {
                    spdlog::error("connection failed: {}", e.what());
                }
            });
    }
}

} // namespace

HttpServer::HttpServer(asio::io_context& io, ServerOptions options, std::shared_ptr<Router> router)
    : shared_(std::make_shared<Shared>(io, std::move(options), std::move(router))) {}

HttpServer::~HttpServer() = default;

namespace {
Result<int> listen_on(asio::ip::tcp::acceptor& acceptor, const std::string& host, int port) {
    beast::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return make_error(ErrorCode::invalid_argument, "invalid listen address " + host);
    asio::ip::tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return make_error(ErrorCode::unavailable,
                          "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
    return static_cast<int>(acceptor.local_endpoint().port());
}
} // namespace

Status HttpServer::listen() {
    const auto& options = shared_->options;
    if (options.tls) {
        auto context = make_tls_context(*options.tls);
        if (!context) return context.error();
        std::lock_guard lock(shared_->tls_mu);
        shared_->tls_context = std::move(*context);
    }
    auto bound = listen_on(shared_->acceptor, options.host, options.port);
    if (!bound) return bound.error();
    port_ = *bound;
    if (options.plaintext_port >= 0) {
        auto plain = listen_on(shared_->plain_acceptor, options.host, options.plaintext_port);
        if (!plain) return plain.error();
        plaintext_port_ = *plain;
    }
    return Ok{};
}

Status HttpServer::reload_tls() {
    if (!shared_->options.tls) return make_error(ErrorCode::invalid_argument, "TLS is not configured");
    auto context = make_tls_context(*shared_->options.tls);
    if (!context) return context.error();
    std::lock_guard lock(shared_->tls_mu);
    shared_->tls_context = std::move(*context);
    return Ok{};
}

void HttpServer::start() {
    const bool tls = shared_->options.tls.has_value();
    asio::co_spawn(shared_->acceptor.get_executor(), accept_loop(shared_, shared_->acceptor, tls),
                   asio::detached);
    if (shared_->plain_acceptor.is_open())
        asio::co_spawn(shared_->plain_acceptor.get_executor(),
                       accept_loop(shared_, shared_->plain_acceptor, false), asio::detached);
}

int HttpServer::in_flight() const {
    return shared_->in_flight.load();
}
bool HttpServer::draining() const {
    return shared_->draining.load();
}

void HttpServer::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
    auto shared = shared_;
    shared->draining = true;
    asio::post(shared->acceptor.get_executor(), [shared] {
        beast::error_code ec;
        shared->acceptor.close(ec);
        shared->plain_acceptor.close(ec);
    });
    auto each_connection = [shared](auto fn) {
        std::vector<std::shared_ptr<Connection>> live;
        {
            std::lock_guard lock(shared->mu);
            for (auto& [id, weak] : shared->connections)
                if (auto c = weak.lock()) live.push_back(c);
        }
        for (auto& c : live) fn(*c);
    };
    each_connection([](Connection& c) { c.close_if_idle(); });

    // Polls until no request is in flight or the deadline passes.
    struct Drain : std::enable_shared_from_this<Drain> {
        std::shared_ptr<Shared> shared;
        asio::steady_timer timer;
        std::chrono::steady_clock::time_point deadline;
        std::function<void()> done;
        std::function<void(std::function<void(Connection&)>)> each;
        Drain(std::shared_ptr<Shared> s, std::chrono::steady_clock::time_point d, std::function<void()> f,
              std::function<void(std::function<void(Connection&)>)> e)
            : shared(s), timer(s->io), deadline(d), done(std::move(f)), each(std::move(e)) {}
        bool cutting = false;
        void tick() {
            bool idle = shared->in_flight.load() == 0;
            const auto now = std::chrono::steady_clock::now();
            if (!idle && !cutting && now >= deadline) {
                // Past the grace period: cancel what still runs, then give each request a moment
                // to record itself (its audit row, with the tokens it used) before closing.
                spdlog::warn("shutdown: cutting {} requests still running at the deadline",
                             shared->in_flight.load());
                cutting = true;
                deadline = now + shared->options.cut_grace;
                each([](Connection& c) {
                    asio::post(c.stream().get_executor(),
                               [keep = c.shared_from_this()] { keep->cut_request(); });
                });
            } else if (idle || now >= deadline) {
                if (!idle)
                    spdlog::error("shutdown: {} cut requests did not finish", shared->in_flight.load());
                each([](Connection& c) {
                    asio::post(c.stream().get_executor(), [keep = c.shared_from_this()] { keep->close(); });
                });
                done();
                return;
            }
            timer.expires_after(std::chrono::milliseconds(20));
            timer.async_wait([self = shared_from_this()](const beast::error_code&) { self->tick(); });
        }
    };
    auto drain = std::make_shared<Drain>(shared, std::chrono::steady_clock::now() + grace, std::move(done),
                                         each_connection);
    asio::post(shared->io, [drain] { drain->tick(); });
}

} // namespace codepilot::server
