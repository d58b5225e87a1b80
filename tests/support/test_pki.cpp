#include "support/test_pki.h"

#include <filesystem>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>

namespace codepilot::testenv {
namespace {

EVP_PKEY* new_key() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    if (!key) throw std::runtime_error("EC key generation failed");
    return key;
}

void write_pem(const std::string& path, EVP_PKEY* key, X509* cert) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + path);
    if (key) PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    if (cert) PEM_write_X509(f, cert);
    std::fclose(f);
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (!ext) throw std::runtime_error("bad extension " + value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

X509* new_cert(long serial, const std::string& cn, const std::string& org, long not_before_days,
               long not_after_days) {
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), not_before_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(cert), not_after_days * 86400);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(org.c_str()),
                               -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()),
                               -1, -1, 0);
    return cert;
}

} // namespace

TestPki::TestPki(const std::string& dir, const std::string& ca_name) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    auto* key = new_key();
    X509* cert = new_cert(serial_++, ca_name, "Codepilot Tests", -1, 30);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_set_pubkey(cert, key);
    add_extension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert, cert, NID_subject_key_identifier, "hash");
    X509_sign(cert, key, EVP_sha256());
    ca_file_ = dir_ + "/ca.pem";
    write_pem(ca_file_, nullptr, cert);
    ca_key_ = key;
    ca_cert_ = cert;
}

TestPki::~TestPki() {
    EVP_PKEY_free(static_cast<EVP_PKEY*>(ca_key_));
    X509_free(static_cast<X509*>(ca_cert_));
}

CertFiles TestPki::issue(const std::string& name, const std::string& cn, const std::string& san_line,
                         bool server, long not_before_days, long not_after_days) {
    auto* ca_cert = static_cast<X509*>(ca_cert_);
    EVP_PKEY* key = new_key();
    X509* cert = new_cert(serial_++, cn, "Codepilot Tests", not_before_days, not_after_days);
    X509_set_issuer_name(cert, X509_get_subject_name(ca_cert));
    X509_set_pubkey(cert, key);
    add_extension(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert, ca_cert, NID_key_usage, "critical,digitalSignature");
    add_extension(cert, ca_cert, NID_ext_key_usage, server ? "serverAuth" : "clientAuth");
    if (!san_line.empty()) add_extension(cert, ca_cert, NID_subject_alt_name, san_line);
    X509_sign(cert, static_cast<EVP_PKEY*>(ca_key_), EVP_sha256());
    CertFiles files{dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
    write_pem(files.cert, nullptr, cert);
    write_pem(files.key, key, nullptr);
    std::filesystem::permissions(files.key,
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    X509_free(cert);
    EVP_PKEY_free(key);
    return files;
}

CertFiles TestPki::server(const std::string& name, const std::string& common_name) {
    return issue(name, common_name, "IP:127.0.0.1,DNS:localhost", true, -1, 30);
}

CertFiles TestPki::client(const std::string& name, const std::string& common_name,
                          const std::vector<std::string>& sans, long not_before_days, long not_after_days) {
    std::string line;
    for (const auto& s : sans) line += (line.empty() ? "" : ",") + s;
    return issue(name, common_name, line, false, not_before_days, not_after_days);
}

std::string certificate_fingerprint(const std::string& pem_file) {
    FILE* f = std::fopen(pem_file.c_str(), "r");
    if (!f) throw std::runtime_error("cannot read " + pem_file);
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(cert, EVP_sha256(), digest, &n);
    X509_free(cert);
    std::string hex;
    for (unsigned i = 0; i < n; ++i) {
        char buf[3];
        std::snprintf(buf, sizeof(buf), "%02x", digest[i]);
        hex += buf;
    }
    return hex;
}

} // namespace codepilot::testenv
