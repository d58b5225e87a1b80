// A blocking TLS test client over a raw socket (OpenSSL directly): the handshake's outcome,
// the server's certificate and protocol, requests and early disconnects are all visible.
#pragma once

#include "support/http_client.h"

#include <chrono>
#include <memory>
#include <string>

namespace codepilot::testenv {

struct TlsClientOptions {
    std::string ca_file;             // trust this CA (empty: verify nothing)
    std::string cert_file, key_file; // a client certificate to present
    int max_version = 0;             // e.g. TLS1_2_VERSION to act as an old client (0: any)
};

class TlsConnection {
public:
    TlsConnection(int port, const TlsClientOptions& options);
    ~TlsConnection();
    TlsConnection(const TlsConnection&) = delete;

    bool handshake_ok() const { return ok_; }
    const std::string& handshake_error() const { return error_; }
    std::string protocol() const;     // "TLSv1.3"
    std::string peer_subject() const; // the server certificate's subject (one line)

    bool send(const std::string& bytes);
    // Everything until the server closes the connection or `timeout` passes.
    std::string receive_all(std::chrono::milliseconds timeout);
    // What arrives within `timeout` (one read).
    std::string receive(std::chrono::milliseconds timeout);
    // One request with "Connection: close", its whole response.
    HttpResponse request(const std::string& method, const std::string& target, const std::string& body = "",
                         const std::map<std::string, std::string>& headers = {});
    // A keep-alive request; reads one response with a Content-Length body.
    HttpResponse request_keep_alive(const std::string& method, const std::string& target);
    // Drops the TCP connection without a TLS close_notify (a killed client).
    void abort();

private:
    RawConnection raw_;
    void* ctx_ = nullptr; // SSL_CTX*
    void* ssl_ = nullptr; // SSL*
    bool ok_ = false;
    std::string error_;
};

// One https request (Connection: close). status 0 when the handshake failed.
HttpResponse https(int port, const TlsClientOptions& options, const std::string& method,
                   const std::string& target, const std::string& body = "",
                   const std::map<std::string, std::string>& headers = {});

} // namespace codepilot::testenv
