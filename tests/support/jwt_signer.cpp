#include "support/jwt_signer.h"

#include "auth/credentials.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdexcept>

namespace codepilot::testenv {

struct JwtSigner::Key {
    EVP_PKEY* pkey = nullptr;
    ~Key() { EVP_PKEY_free(pkey); }
};

JwtSigner::JwtSigner(Kind kind, std::string kid)
    : kind_(kind), kid_(std::move(kid)), key_(std::make_unique<Key>()) {
    key_->pkey = kind == Kind::rsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                   : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (!key_->pkey) throw std::runtime_error("key generation failed");
}
JwtSigner::~JwtSigner() = default;
JwtSigner::JwtSigner(JwtSigner&&) noexcept = default;

namespace {
std::string bn_bytes(EVP_PKEY* pkey, const char* name) {
    BIGNUM* bn = nullptr;
    EVP_PKEY_get_bn_param(pkey, name, &bn);
    std::string out(BN_num_bytes(bn), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(bn);
    return out;
}
} // namespace

nlohmann::json JwtSigner::jwk() const {
    if (kind_ == Kind::rsa)
        return {{"kty", "RSA"},
                {"kid", kid_},
                {"use", "sig"},
                {"alg", "RS256"},
                {"n", auth::base64url_encode(bn_bytes(key_->pkey, OSSL_PKEY_PARAM_RSA_N))},
                {"e", auth::base64url_encode(bn_bytes(key_->pkey, OSSL_PKEY_PARAM_RSA_E))}};
    unsigned char point[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(key_->pkey, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len);
    std::string p(reinterpret_cast<char*>(point), len);
    return {{"kty", "EC"},
            {"kid", kid_},
            {"use", "sig"},
            {"crv", "P-256"},
            {"alg", "ES256"},
            {"x", auth::base64url_encode(p.substr(1, 32))},
            {"y", auth::base64url_encode(p.substr(33, 32))}};
}

std::string JwtSigner::sign(const nlohmann::json& claims, nlohmann::json header) const {
    if (!header.contains("alg")) header["alg"] = alg();
    if (!header.contains("kid")) header["kid"] = kid_;
    if (!header.contains("typ")) header["typ"] = "JWT";
    std::string signing_input =
        auth::base64url_encode(header.dump()) + "." + auth::base64url_encode(claims.dump());
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    size_t len = 0;
    EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key_->pkey);
    EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                   signing_input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
    EVP_MD_CTX_free(md);
    sig.resize(len);
    if (kind_ == Kind::ec) { // DER → r||s
        const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
        ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        std::string raw(64, '\0');
        BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
        ECDSA_SIG_free(es);
        sig = raw;
    }
    return signing_input + "." + auth::base64url_encode(sig);
}

std::string JwtSigner::public_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key_->pkey);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, n);
    BIO_free(bio);
    return out;
}

nlohmann::json jwks_of(const std::vector<const JwtSigner*>& signers) {
    nlohmann::json keys = nlohmann::json::array();
    for (const auto* s : signers) keys.push_back(s->jwk());
    return {{"keys", keys}};
}

std::string sign_hs256(const nlohmann::json& header, const nlohmann::json& claims,
                       const std::string& secret) {
    std::string input = auth::base64url_encode(header.dump()) + "." + auth::base64url_encode(claims.dump());
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return input + "." + auth::base64url_encode(std::string(reinterpret_cast<char*>(mac), len));
}

std::string unsigned_token(const nlohmann::json& claims) {
    return auth::base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
           auth::base64url_encode(claims.dump()) + ".";
}

} // namespace codepilot::testenv
