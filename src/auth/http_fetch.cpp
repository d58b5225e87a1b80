// http_get: fetches a JWKS over https (the system CAs or ca_file, the host name verified), or
// over http where auth.oidc.allow_insecure let it through.
#include "auth/jwt.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <regex>

namespace codepilot::auth {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Async, so that one deadline covers resolving, connecting, TLS and reading.
template <typename Stream>
asio::awaitable<std::string> exchange(Stream& stream, std::string host, std::string target) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host);
    req.set(http::field::user_agent, "codepilot");
    req.set(http::field::accept, "application/json");
    co_await http::async_write(stream, req, asio::use_awaitable);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
    if (parser.get().result() != http::status::ok)
        throw std::runtime_error("HTTP " + std::to_string(parser.get().result_int()) + " from " + host);
    co_return parser.get().body();
}

asio::awaitable<std::string> fetch(bool tls, std::string host, std::string port, std::string target,
                                   std::string ca_file) {
    auto executor = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(executor);
    auto endpoints = co_await resolver.async_resolve(host, port, asio::use_awaitable);
    if (!tls) {
        beast::tcp_stream stream(executor);
        co_await stream.async_connect(endpoints, asio::use_awaitable);
        co_return co_await exchange(stream, host, target);
    }
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    if (ca_file.empty())
        ctx.set_default_verify_paths();
    else
        ctx.load_verify_file(ca_file);
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(executor, ctx);
    boost::system::error_code not_ip;
    (void)asio::ip::make_address(host, not_ip); // SNI names hosts, never addresses (RFC 6066)
    if (not_ip && !SSL_set_tlsext_host_name(stream.native_handle(), host.c_str()))
        throw std::runtime_error("TLS: cannot set the server name");
    stream.set_verify_callback(asio::ssl::host_name_verification(host));
    co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::use_awaitable);
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    co_return co_await exchange(stream, host, target);
}

} // namespace

Result<std::string> http_get(const std::string& url, int timeout_ms, const std::string& ca_file) {
    static const std::regex pattern(R"(^(https?)://([^/:]+|\[[^\]]+\])(?::(\d+))?(/.*)?$)");
    std::smatch m;
    if (!std::regex_match(url, m, pattern))
        return make_error(ErrorCode::invalid_argument, "malformed URL " + url);
    const bool tls = m[1] == "https";
    std::string host = m[2];
    std::string port = m[3].matched ? std::string(m[3]) : (tls ? "443" : "80");
    std::string target = m[4].matched ? std::string(m[4]) : "/";
    asio::io_context io;
    std::optional<std::string> body;
    std::string failure = "timed out after " + std::to_string(timeout_ms) + " ms";
    asio::co_spawn(io, fetch(tls, host, port, target, ca_file), [&](std::exception_ptr e, std::string text) {
        if (!e) {
            body = std::move(text);
            return;
        }
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            failure = ex.what();
        }
    });
    io.run_for(std::chrono::milliseconds(timeout_ms));
    if (!body) return make_error(ErrorCode::unavailable, url + ": " + failure);
    return std::move(*body);
}

} // namespace codepilot::auth
