// Internal: the server's TLS context (built from files, rebuilt on reload), the verified client
// certificate of a connection, and the one transport type that is either plain TCP or TLS.
#pragma once

#include "server/server.h"

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

namespace codepilot::server {

namespace ssl = asio::ssl;

// A context for new connections. Errors name the file and OpenSSL's reason; nothing of a key's
// content ever appears in them.
Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsOptions& options);

// The peer's certificate after a handshake that verified it; nullptr when it sent none.
std::shared_ptr<const ClientCertificate> verified_peer_certificate(SSL* ssl);

// The handshake failed because the client spoke plain HTTP to the TLS port.
bool is_plain_http_on_tls_port(const beast::error_code& ec);
// A short, stable label for a failed handshake (a metric label, a log word).
std::string handshake_failure_reason(const beast::error_code& ec);

// Plain TCP, or TLS over it once start_tls() was called. Beast's HTTP reads and writes work on
// either: both branches of each operation have the same completion signature.
class Transport {
public:
    using executor_type = beast::tcp_stream::executor_type;
    using Tls = beast::ssl_stream<beast::tcp_stream>;

    explicit Transport(asio::ip::tcp::socket socket) : tcp_(std::move(socket)) {}

    void start_tls(ssl::context& context) { tls_.emplace(std::move(tcp_), context); }
    Tls* tls() { return tls_ ? &*tls_ : nullptr; }
    beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : tcp_; }

    executor_type get_executor() { return tcp().get_executor(); }
    asio::ip::tcp::socket& socket() { return tcp().socket(); }
    template <class Duration> void expires_after(Duration d) { tcp().expires_after(d); }
    void expires_never() { tcp().expires_never(); }

    template <class Buffers, class Token> auto async_read_some(const Buffers& buffers, Token&& token) {
        if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
        return tcp_.async_read_some(buffers, std::forward<Token>(token));
    }
    template <class Buffers, class Token> auto async_write_some(const Buffers& buffers, Token&& token) {
        if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
        return tcp_.async_write_some(buffers, std::forward<Token>(token));
    }

private:
    beast::tcp_stream tcp_;
    std::optional<Tls> tls_;
};

} // namespace codepilot::server
