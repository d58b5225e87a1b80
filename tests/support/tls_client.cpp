#include "support/tls_client.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

namespace codepilot::testenv {
namespace {
SSL_CTX* as_ctx(void* p) {
    return static_cast<SSL_CTX*>(p);
}
SSL* as_ssl(void* p) {
    return static_cast<SSL*>(p);
}

std::string last_error() {
    unsigned long code = ERR_get_error();
    char buf[256] = "handshake failed";
    if (code) ERR_error_string_n(code, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}
} // namespace

TlsConnection::TlsConnection(int port, const TlsClientOptions& o) : raw_(port) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    ctx_ = ctx;
    if (o.max_version) SSL_CTX_set_max_proto_version(ctx, o.max_version);
    if (!o.ca_file.empty()) {
        SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    }
    if (!o.cert_file.empty()) {
        SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str());
        SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM);
    }
    SSL* ssl = SSL_new(ctx);
    ssl_ = ssl;
    SSL_set_fd(ssl, raw_.fd());
    SSL_set1_host(ssl, "127.0.0.1");
    ok_ = SSL_connect(ssl) == 1;
    if (!ok_) {
        error_ = last_error();
        return;
    }
    // TLS 1.3: a refused client certificate is only reported on the first read. Peek for it.
    // Non-blocking, so that session tickets alone do not leave it waiting for application data.
    pollfd p{raw_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) > 0) {
        const int flags = ::fcntl(raw_.fd(), F_GETFL);
        ::fcntl(raw_.fd(), F_SETFL, flags | O_NONBLOCK);
        char byte;
        if (SSL_peek(ssl, &byte, 1) <= 0) {
            const int err = SSL_get_error(ssl, 0);
            if (err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
                ok_ = false;
                error_ = last_error();
            }
        }
        ::fcntl(raw_.fd(), F_SETFL, flags);
    }
}

TlsConnection::~TlsConnection() {
    if (ssl_) SSL_free(as_ssl(ssl_));
    if (ctx_) SSL_CTX_free(as_ctx(ctx_));
}

std::string TlsConnection::protocol() const {
    return SSL_get_version(as_ssl(ssl_));
}

std::string TlsConnection::peer_subject() const {
    X509* cert = SSL_get0_peer_certificate(as_ssl(ssl_));
    if (!cert) return {};
    char buf[512];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
    return buf;
}

bool TlsConnection::send(const std::string& bytes) {
    if (!ok_) return false;
    return SSL_write(as_ssl(ssl_), bytes.data(), static_cast<int>(bytes.size())) ==
           static_cast<int>(bytes.size());
}

std::string TlsConnection::receive(std::chrono::milliseconds timeout) {
    if (!ok_) return {};
    SSL* ssl = as_ssl(ssl_);
    if (SSL_pending(ssl) == 0) {
        pollfd p{raw_.fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
    }
    char buf[65536];
    int n = SSL_read(ssl, buf, sizeof(buf));
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string TlsConnection::receive_all(std::chrono::milliseconds timeout) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (ok_ && std::chrono::steady_clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        SSL* ssl = as_ssl(ssl_);
        if (SSL_pending(ssl) == 0) {
            pollfd p{raw_.fd(), POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) break;
        }
        char buf[65536];
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

HttpResponse TlsConnection::request(const std::string& method, const std::string& target,
                                    const std::string& body,
                                    const std::map<std::string, std::string>& headers) {
    if (!send(build_request(method, target, body, headers, false))) return {};
    auto raw = receive_all(std::chrono::seconds(30));
    return raw.empty() ? HttpResponse{} : parse_response(raw);
}

HttpResponse TlsConnection::request_keep_alive(const std::string& method, const std::string& target) {
    if (!send(build_request(method, target, "", {}, true))) return {};
    std::string raw;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        raw += receive(std::chrono::seconds(5));
        auto end = raw.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        auto response = parse_response(raw.substr(0, end + 4));
        const size_t length =
            std::stoul(response.header("content-length").empty() ? "0" : response.header("content-length"));
        if (raw.size() >= end + 4 + length) return parse_response(raw.substr(0, end + 4 + length));
    }
    return {};
}

void TlsConnection::abort() {
    ::shutdown(raw_.fd(), SHUT_RDWR);
    raw_.close();
    ok_ = false;
}

HttpResponse https(int port, const TlsClientOptions& options, const std::string& method,
                   const std::string& target, const std::string& body,
                   const std::map<std::string, std::string>& headers) {
    TlsConnection c(port, options);
    if (!c.handshake_ok()) return {};
    return c.request(method, target, body, headers);
}

} // namespace codepilot::testenv
