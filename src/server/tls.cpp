#include "server/tls.h"

#include "core/private_files.h"

#include <algorithm>
#include <arpa/inet.h>
#include <ctime>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

namespace codepilot::server {
namespace {

// OpenSSL's reason for the last failure, without the library's error-queue noise.
std::string openssl_reason() {
    unsigned long code = ERR_peek_last_error();
    const char* reason = code ? ERR_reason_error_string(code) : nullptr;
    ERR_clear_error();
    return reason ? reason : "unknown OpenSSL error";
}

Error tls_error(const std::string& key, const std::string& path, const std::string& what) {
    return make_error(ErrorCode::invalid_argument,
                      "server.tls." + key + " " + path + ": " + what + " (" + openssl_reason() + ")");
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string name_text(const X509_NAME* name) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    std::string text = bio_text(bio);
    BIO_free(bio);
    return text;
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::vector<std::string> alternative_names(X509* cert) {
    std::vector<std::string> out;
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (!names) return out;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
        auto text = [](const ASN1_IA5STRING* s) {
            return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                               static_cast<size_t>(ASN1_STRING_length(s)));
        };
        if (n->type == GEN_DNS) out.push_back("DNS:" + lower(text(n->d.dNSName)));
        if (n->type == GEN_EMAIL) out.push_back("email:" + text(n->d.rfc822Name));
        if (n->type == GEN_URI) out.push_back("URI:" + text(n->d.uniformResourceIdentifier));
        if (n->type == GEN_IPADD) {
            const int len = ASN1_STRING_length(n->d.iPAddress);
            char buf[INET6_ADDRSTRLEN] = {};
            if ((len == 4 || len == 16) && inet_ntop(len == 4 ? AF_INET : AF_INET6,
                                                     ASN1_STRING_get0_data(n->d.iPAddress), buf, sizeof(buf)))
                out.push_back(std::string("IP:") + buf);
        }
    }
    GENERAL_NAMES_free(names);
    return out;
}

int64_t expiry_of(const X509* cert) {
    std::tm tm{};
    if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm)) return 0;
    return static_cast<int64_t>(timegm(&tm));
}

// Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD only.
constexpr const char* kTls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

} // namespace

Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsOptions& o) {
    ERR_clear_error();
    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    if (o.min_version != "1.2" && o.min_version != "1.3")
        return make_error(ErrorCode::invalid_argument,
                          "server.tls.min_version must be 1.2 or 1.3 (got '" + o.min_version + "')");
    SSL_CTX_set_min_proto_version(ctx, o.min_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_options(ctx,
                        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
    if (o.cert_file.empty() || o.key_file.empty())
        return make_error(ErrorCode::invalid_argument, "server.tls needs both cert_file and key_file");
    if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
        return tls_error("cert_file", o.cert_file, "cannot load the certificate chain");
    if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        return tls_error("key_file", o.key_file, "cannot load the private key");
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tls_error("key_file", o.key_file, "the private key does not match cert_file");
    if (auto loose = looser_mode_warning(o.key_file, 0640)) spdlog::warn("server.tls.key_file: {}", *loose);
    if (X509* cert = SSL_CTX_get0_certificate(ctx); cert && expiry_of(cert) < std::time(nullptr))
        spdlog::warn("server.tls.cert_file {}: the certificate has expired; clients will refuse it",
                     o.cert_file);

    if (o.client_auth != ClientAuth::none) {
        if (o.client_ca_file.empty())
            return make_error(
                ErrorCode::invalid_argument,
                "server.tls.client_auth needs client_ca_file (the CA that issues client certificates)");
        if (SSL_CTX_load_verify_locations(ctx, o.client_ca_file.c_str(), nullptr) != 1)
            return tls_error("client_ca_file", o.client_ca_file, "cannot load the CA certificates");
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
        if (!names) return tls_error("client_ca_file", o.client_ca_file, "no CA names in it");
        SSL_CTX_set_client_CA_list(ctx, names);
        int mode = SSL_VERIFY_PEER;
        if (o.client_auth == ClientAuth::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, nullptr);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    // Resumed sessions keep the client certificate they were verified with; the id context
    // makes resumption legal with client verification on.
    static const unsigned char kSessionContext[] = "codepilot";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
    return context;
}

std::shared_ptr<const ClientCertificate> verified_peer_certificate(SSL* ssl) {
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return nullptr;
    auto out = std::make_shared<ClientCertificate>();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), digest, &n) != 1) return nullptr;
    static const char* hex = "0123456789abcdef";
    for (unsigned i = 0; i < n; ++i) {
        out->fingerprint_sha256 += hex[digest[i] >> 4];
        out->fingerprint_sha256 += hex[digest[i] & 15];
    }
    out->subject = name_text(X509_get_subject_name(cert));
    out->issuer = name_text(X509_get_issuer_name(cert));
    out->sans = alternative_names(cert);
    out->not_after = expiry_of(cert);
    return out;
}

bool is_plain_http_on_tls_port(const beast::error_code& ec) {
    return ec.category() == asio::error::get_ssl_category() &&
           ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST;
}

std::string handshake_failure_reason(const beast::error_code& ec) {
    if (ec == beast::error::timeout) return "timeout";
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated || ec == asio::error::connection_reset)
        return "closed";
    if (ec.category() != asio::error::get_ssl_category()) return "io_error";
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
    case SSL_R_HTTP_REQUEST:
        return "plain_http";
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
        return "client_certificate_rejected";
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return "client_certificate_missing";
    case SSL_R_UNSUPPORTED_PROTOCOL:
        return "protocol_version";
    case SSL_R_WRONG_VERSION_NUMBER:
        return "not_tls";
    case SSL_R_NO_SHARED_CIPHER:
        return "no_shared_cipher";
    default:
        return "tls_error";
    }
}

} // namespace codepilot::server
