// OIDC bearer tokens: JWS compact tokens signed RS256 or ES256, verified against a JWKS
// (file or internal URL, cached, refetched on an unknown kid at most once per interval).
// `none`, HS* and any algorithm outside the pinned list are refused before a key is chosen.
#pragma once

#include "config/config.h"
#include "core/result.h"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace codepilot::auth {

// Public keys by kid, parsed from a JWKS document.
class Jwks {
public:
    static Result<Jwks> parse(const std::string& json_text);
    struct Key;
    const Key* find(const std::string& kid) const;
    std::vector<const Key*> of_type(const std::string& kty) const;
    size_t size() const { return keys_.size(); }
    bool verify(const Key& key, const std::string& alg, std::string_view signed_part,
                std::string_view signature) const;
    const std::string& key_type(const Key& key) const;

private:
    std::vector<std::shared_ptr<Key>> keys_;
};

// GET of a small document over http:// or https:// (the system's CAs, or `ca_file`), with a
// deadline for the whole exchange.
Result<std::string> http_get(const std::string& url, int timeout_ms, const std::string& ca_file = "");

class JwtVerifier {
public:
    using Clock = std::function<int64_t()>;
    explicit JwtVerifier(config::OidcConfig config, Clock clock = {});

    // The verified claims, or an error whose message says exactly what was wrong (for logs
    // and tests; callers tell unauthenticated clients only "invalid credentials").
    Result<nlohmann::json> verify(const std::string& token);
    const config::OidcConfig& config() const { return config_; }

private:
    Result<std::shared_ptr<const Jwks>> keys(bool refresh);
    Result<std::shared_ptr<const Jwks>> fetch() const;

    config::OidcConfig config_;
    Clock clock_;
    std::mutex mu_;
    std::shared_ptr<const Jwks> jwks_;
    int64_t last_fetch_ = 0;
    bool fetching_ = false;
};

} // namespace codepilot::auth
