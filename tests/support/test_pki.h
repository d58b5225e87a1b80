// A throw-away PKI for TLS tests, made with OpenSSL in the test itself: a CA, server
// certificates for 127.0.0.1/localhost, client certificates (valid, expired, from another CA).
// EC P-256 keys: quick to make, and what a modern internal CA issues.
#pragma once

#include <string>
#include <vector>

namespace codepilot::testenv {

struct CertFiles {
    std::string cert, key; // PEM files
};

class TestPki {
public:
    // Files go to `dir` (created); the CA is made at once.
    explicit TestPki(const std::string& dir, const std::string& ca_name = "Codepilot Test CA");
    ~TestPki();
    TestPki(const TestPki&) = delete;

    const std::string& ca_file() const { return ca_file_; }
    // A server certificate for 127.0.0.1 and localhost.
    CertFiles server(const std::string& name = "server", const std::string& common_name = "127.0.0.1");
    // A client certificate with subject CN=<common_name>,O=Codepilot Tests and these SANs
    // ("DNS:…", "URI:…", "email:…"); valid from `not_before_days` to `not_after_days` from now.
    CertFiles client(const std::string& name, const std::string& common_name,
                     const std::vector<std::string>& sans = {}, long not_before_days = -1,
                     long not_after_days = 30);
    const std::string& dir() const { return dir_; }

private:
    CertFiles issue(const std::string& name, const std::string& subject_cn, const std::string& san_line,
                    bool server, long not_before_days, long not_after_days);
    std::string dir_, ca_file_;
    void* ca_key_ = nullptr;  // EVP_PKEY*
    void* ca_cert_ = nullptr; // X509*
    long serial_ = 1;
};

// SHA-256 of a PEM certificate's DER encoding, lower-case hex.
std::string certificate_fingerprint(const std::string& pem_file);

} // namespace codepilot::testenv
