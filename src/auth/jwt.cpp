#include "auth/jwt.h"

#include "auth/credentials.h"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <spdlog/spdlog.h>
#include <sstream>

namespace codepilot::auth {

struct Jwks::Key {
    std::string kid, kty;
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> pkey{nullptr, EVP_PKEY_free};
};

namespace {

using Bn = std::unique_ptr<BIGNUM, void (*)(BIGNUM*)>;
Bn to_bn(const std::string& bytes) {
    return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()),
                        nullptr),
              BN_free);
}

EVP_PKEY* key_from_params(const char* type, OSSL_PARAM_BLD* bld) {
    EVP_PKEY* pkey = nullptr;
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) pkey = nullptr;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

Result<EVP_PKEY*> rsa_key(const nlohmann::json& jwk) {
    auto n = base64url_decode(jwk.value("n", "")), e = base64url_decode(jwk.value("e", ""));
    if (!n || !e || n->empty() || e->empty())
        return make_error(ErrorCode::invalid_argument, "RSA key without n/e");
    auto bn_n = to_bn(*n), bn_e = to_bn(*e);
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get());
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get());
    EVP_PKEY* pkey = key_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey) return make_error(ErrorCode::invalid_argument, "unusable RSA key");
    if (EVP_PKEY_get_bits(pkey) < 2048) {
        EVP_PKEY_free(pkey);
        return make_error(ErrorCode::invalid_argument, "RSA key shorter than 2048 bits");
    }
    return pkey;
}

Result<EVP_PKEY*> ec_key(const nlohmann::json& jwk) {
    if (jwk.value("crv", "") != "P-256")
        return make_error(ErrorCode::invalid_argument, "EC key is not on P-256");
    auto x = base64url_decode(jwk.value("x", "")), y = base64url_decode(jwk.value("y", ""));
    if (!x || !y || x->size() != 32 || y->size() != 32)
        return make_error(ErrorCode::invalid_argument, "EC key with malformed x/y");
    std::string point = "\x04" + *x + *y;
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
    EVP_PKEY* pkey = key_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey) return make_error(ErrorCode::invalid_argument, "EC point is not on the curve");
    return pkey;
}

// JWS ES256 signatures are r||s; OpenSSL verifies DER.
std::optional<std::string> ecdsa_raw_to_der(std::string_view raw) {
    if (raw.size() != 64) return std::nullopt;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    auto* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
    auto* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
    ECDSA_SIG_set0(sig, r, s);
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (len <= 0) return std::nullopt;
    std::string out(reinterpret_cast<char*>(der), len);
    OPENSSL_free(der);
    return out;
}

Result<nlohmann::json> decode_json_part(std::string_view part, const char* what) {
    auto bytes = base64url_decode(part);
    if (!bytes)
        return make_error(ErrorCode::invalid_argument, std::string("token ") + what + " is not base64url");
    auto json = nlohmann::json::parse(*bytes, nullptr, false);
    if (json.is_discarded() || !json.is_object())
        return make_error(ErrorCode::invalid_argument,
                          std::string("token ") + what + " is not a JSON object");
    return json;
}

Error rejected(std::string why) {
    return make_error(ErrorCode::invalid_argument, std::move(why));
}

} // namespace

Result<Jwks> Jwks::parse(const std::string& text) {
    auto doc = nlohmann::json::parse(text, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys") || !doc["keys"].is_array())
        return make_error(ErrorCode::invalid_argument, "JWKS must be a JSON object with a \"keys\" array");
    Jwks jwks;
    for (const auto& jwk : doc["keys"]) {
        if (!jwk.is_object()) continue;
        if (jwk.contains("use") && jwk["use"] != "sig") continue;
        auto key = std::make_shared<Key>();
        key->kid = jwk.value("kid", "");
        key->kty = jwk.value("kty", "");
        Result<EVP_PKEY*> pkey = key->kty == "RSA"  ? rsa_key(jwk)
                                 : key->kty == "EC" ? ec_key(jwk)
                                                    : Result<EVP_PKEY*>(rejected("unsupported key type"));
        if (!pkey) continue; // one bad key does not spoil the others
        key->pkey.reset(*pkey);
        jwks.keys_.push_back(std::move(key));
    }
    return jwks;
}

const Jwks::Key* Jwks::find(const std::string& kid) const {
    for (const auto& k : keys_)
        if (k->kid == kid) return k.get();
    return nullptr;
}

std::vector<const Jwks::Key*> Jwks::of_type(const std::string& kty) const {
    std::vector<const Key*> out;
    for (const auto& k : keys_)
        if (k->kty == kty) out.push_back(k.get());
    return out;
}

const std::string& Jwks::key_type(const Key& key) const {
    return key.kty;
}

bool Jwks::verify(const Key& key, const std::string& alg, std::string_view signed_part,
                  std::string_view signature) const {
    std::string der;
    if (alg == "ES256") {
        auto converted = ecdsa_raw_to_der(signature);
        if (!converted) return false;
        der = std::move(*converted);
        signature = der;
    }
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    bool ok =
        EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key.pkey.get()) == 1 &&
        EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                         reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

JwtVerifier::JwtVerifier(config::OidcConfig config, Clock clock)
    : config_(std::move(config)), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return static_cast<int64_t>(std::time(nullptr)); };
    if (config_.jwks_url.rfind("http://", 0) == 0) // let through by validation only with the opt-out
        spdlog::warn("auth.oidc: allow_insecure: the signing keys come over plain http ({}): whoever is on "
                     "the path can substitute them and mint tokens",
                     config_.jwks_url);
}

Result<std::shared_ptr<const Jwks>> JwtVerifier::fetch() const {
    std::string text;
    if (!config_.jwks_file.empty()) {
        std::ifstream in(config_.jwks_file);
        if (!in) return make_error(ErrorCode::unavailable, "cannot read JWKS file " + config_.jwks_file);
        std::stringstream ss;
        ss << in.rdbuf();
        text = ss.str();
    } else {
        auto body = http_get(config_.jwks_url, 5000, config_.ca_file);
        if (!body) return make_error(ErrorCode::unavailable, "cannot fetch JWKS: " + body.error().message);
        text = std::move(*body);
    }
    auto parsed = Jwks::parse(text);
    if (!parsed) return parsed.error();
    return std::make_shared<const Jwks>(std::move(*parsed));
}

// One fetch at a time, outside the lock: while it runs, other callers go on with the keys
// they have (or hear "unavailable" before the first fetch), and nobody waits behind it.
Result<std::shared_ptr<const Jwks>> JwtVerifier::keys(bool refresh) {
    {
        std::lock_guard lock(mu_);
        int64_t now = clock_();
        bool due = !jwks_ || (refresh && now - last_fetch_ >= config_.jwks_refresh_min_interval_s);
        if (!due || fetching_) {
            if (jwks_) return jwks_;
            return make_error(ErrorCode::unavailable, "the signing keys are being fetched");
        }
        fetching_ = true;
        last_fetch_ = now;
    }
    auto fetched = fetch();
    std::lock_guard lock(mu_);
    fetching_ = false;
    if (fetched)
        jwks_ = std::move(*fetched);
    else if (!jwks_)
        return fetched.error(); // keep serving the last good keys when a refetch fails
    return jwks_;
}

Result<nlohmann::json> JwtVerifier::verify(const std::string& token) {
    size_t d1 = token.find('.'), d2 = d1 == std::string::npos ? d1 : token.find('.', d1 + 1);
    if (d1 == std::string::npos || d2 == std::string::npos || token.find('.', d2 + 1) != std::string::npos)
        return rejected("not a JWS compact token");
    auto header = decode_json_part(std::string_view(token).substr(0, d1), "header");
    if (!header) return header.error();
    auto claims = decode_json_part(std::string_view(token).substr(d1 + 1, d2 - d1 - 1), "payload");
    if (!claims) return claims.error();
    auto signature = base64url_decode(std::string_view(token).substr(d2 + 1));
    if (!signature || signature->empty()) return rejected("token is unsigned");

    // The algorithm list is pinned: `none`, HS256 with the public key as secret, and anything
    // else the configuration does not name are refused before a key is looked at.
    std::string alg = (*header)["alg"].is_string() ? (*header)["alg"].get<std::string>() : "";
    if (std::find(config_.algorithms.begin(), config_.algorithms.end(), alg) == config_.algorithms.end())
        return rejected("algorithm '" + alg + "' is not allowed");
    const std::string kty = alg == "RS256" ? "RSA" : "EC";
    std::string kid = (*header)["kid"].is_string() ? (*header)["kid"].get<std::string>() : "";

    auto jwks = keys(false);
    if (!jwks) return jwks.error();
    if (!kid.empty() && !(*jwks)->find(kid)) {
        jwks = keys(true); // the issuer may have rotated its keys
        if (!jwks) return jwks.error();
    }
    std::vector<const Jwks::Key*> candidates;
    if (!kid.empty()) {
        if (const auto* k = (*jwks)->find(kid)) candidates.push_back(k);
        if (candidates.empty()) return rejected("no key with kid '" + kid + "'");
    } else {
        candidates = (*jwks)->of_type(kty);
    }
    std::string_view signed_part = std::string_view(token).substr(0, d2);
    bool verified = false;
    for (const auto* k : candidates) {
        if ((*jwks)->key_type(*k) != kty) return rejected("key '" + kid + "' does not fit algorithm " + alg);
        if ((*jwks)->verify(*k, alg, signed_part, *signature)) {
            verified = true;
            break;
        }
    }
    if (!verified) return rejected("bad signature");

    const auto& c = *claims;
    int64_t now = clock_();
    if (!c.contains("iss") || c["iss"] != config_.issuer) return rejected("wrong issuer");
    bool audience_ok = false;
    if (c.contains("aud") && c["aud"].is_string()) audience_ok = c["aud"] == config_.audience;
    if (c.contains("aud") && c["aud"].is_array())
        for (const auto& a : c["aud"]) audience_ok |= a.is_string() && a == config_.audience;
    if (!audience_ok) return rejected("wrong audience");
    if (!c.contains("exp") || !c["exp"].is_number()) return rejected("token has no expiry");
    if (now > c["exp"].get<int64_t>() + config_.leeway_s) return rejected("token expired");
    if (c.contains("nbf") && c["nbf"].is_number() && now + config_.leeway_s < c["nbf"].get<int64_t>())
        return rejected("token not yet valid");
    if (c.contains("iat") && c["iat"].is_number() && now + config_.leeway_s < c["iat"].get<int64_t>())
        return rejected("token issued in the future");
    return *claims;
}

} // namespace codepilot::auth
