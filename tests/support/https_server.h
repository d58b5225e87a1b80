// A small HTTPS server on loopback for the tests that fetch over TLS (the JWKS): it answers
// every GET with one body, using the certificate and key it is given (the test CA's, from
// scripts/test_services.sh), one connection at a time on its own thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace codepilot::testenv {

class HttpsServer {
public:
    HttpsServer(const std::string& cert_file, const std::string& key_file, std::string body);
    ~HttpsServer();
    HttpsServer(const HttpsServer&) = delete;
    HttpsServer& operator=(const HttpsServer&) = delete;

    int port() const { return port_; }
    int answered() const { return answered_; }          // requests answered
    int refused_handshakes() const { return refused_; } // clients that did not accept the certificate
    // The server counts after the client has its answer: waits (up to 5 s) for the counts to be these.
    bool counted(int answered, int refused) const;

private:
    struct Parts;
    void serve();
    std::unique_ptr<Parts> parts_;
    std::string body_;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> answered_{0}, refused_{0};
    std::thread thread_;
};

} // namespace codepilot::testenv
