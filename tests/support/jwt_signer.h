// Test identity provider: real RSA-2048 and EC P-256 keys made by OpenSSL, their JWKS, and
// signed JWTs (also deliberately broken ones).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace codepilot::testenv {

class JwtSigner {
public:
    enum class Kind { rsa, ec };
    JwtSigner(Kind kind, std::string kid);
    ~JwtSigner();
    JwtSigner(JwtSigner&&) noexcept;

    const std::string& kid() const { return kid_; }
    std::string alg() const { return kind_ == Kind::rsa ? "RS256" : "ES256"; }
    nlohmann::json jwk() const;
    // header.payload.signature; `header` gets alg and kid unless it sets them itself.
    std::string sign(const nlohmann::json& claims, nlohmann::json header = nlohmann::json::object()) const;
    std::string public_pem() const;

private:
    struct Key;
    Kind kind_;
    std::string kid_;
    std::unique_ptr<Key> key_;
};

nlohmann::json jwks_of(const std::vector<const JwtSigner*>& signers);
// An HS256 token whose secret is `secret` (for the alg-confusion attack with a public key).
std::string sign_hs256(const nlohmann::json& header, const nlohmann::json& claims, const std::string& secret);
std::string unsigned_token(const nlohmann::json& claims);

} // namespace codepilot::testenv
