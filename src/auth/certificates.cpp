// mTLS: a verified client certificate stands for the user a binding names, in that binding's
// tenant and with its scopes, like an API key whose secret is the certificate's private key.
#include "auth/auth.h"

#include <algorithm>
#include <cctype>

namespace codepilot::auth {
namespace {

Error invalid_value(const std::string& kind, std::string why) {
    return make_error(ErrorCode::invalid_argument, std::move(why), kind);
}

std::string trimmed(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return std::string(text);
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

bool printable(const std::string& text) {
    return std::all_of(text.begin(), text.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
}

} // namespace

Result<std::string> canonical_certificate_value(const std::string& kind, const std::string& text) {
    std::string value = trimmed(text);
    if (kind == "fingerprint") {
        std::string hex = lower(value);
        if (hex.rfind("sha256:", 0) == 0) hex = hex.substr(7);
        if (hex.rfind("sha256 fingerprint=", 0) == 0) hex = hex.substr(19); // openssl x509 -fingerprint
        hex.erase(std::remove(hex.begin(), hex.end(), ':'), hex.end());
        if (hex.size() != 64 ||
            !std::all_of(hex.begin(), hex.end(), [](unsigned char c) { return std::isxdigit(c); }))
            return invalid_value(kind, "fingerprint must be the certificate's SHA-256: 64 hex digits "
                                       "(openssl x509 -noout -fingerprint -sha256)");
        return hex;
    }
    if (kind == "subject") {
        if (value.rfind("subject=", 0) == 0) value = trimmed(value.substr(8));
        if (value.empty() || value.size() > 1024 || !printable(value) || value.find('=') == std::string::npos)
            return invalid_value(kind, "subject must be an RFC 2253 DN such as CN=build-bot,O=Example "
                                       "(openssl x509 -noout -subject -nameopt RFC2253)");
        return value;
    }
    if (kind == "san") {
        const auto colon = value.find(':');
        std::string type = colon == std::string::npos ? "" : lower(value.substr(0, colon));
        std::string rest = colon == std::string::npos ? "" : trimmed(value.substr(colon + 1));
        if (rest.empty() || rest.size() > 1024 || !printable(rest))
            return invalid_value(
                kind, "san must be TYPE:value, e.g. DNS:ci.example.com or URI:spiffe://example/ci");
        if (type == "dns") return "DNS:" + lower(rest);
        if (type == "uri") return "URI:" + rest;
        if (type == "email") return "email:" + rest;
        if (type == "ip") return "IP:" + rest;
        return invalid_value(kind,
                             "san type must be DNS, URI, email or IP (got '" + value.substr(0, colon) + "')");
    }
    return make_error(ErrorCode::invalid_argument, "bind a certificate by fingerprint, subject or san",
                      "match");
}

Result<Principal> Authenticator::from_certificate(const CertificateIdentity& certificate) {
    std::vector<std::pair<std::string, std::string>> candidates = {
        {"fingerprint", certificate.fingerprint_sha256}, {"subject", certificate.subject}};
    for (const auto& san : certificate.sans) candidates.emplace_back("san", san);
    for (const auto& [kind, value] : candidates) {
        if (value.empty()) continue;
        auto grant = store_.find_certificate_grant(kind, value);
        if (!grant) return grant.error();
        if (!*grant) continue;
        const auto& g = **grant;
        const std::string label = "client certificate binding " + g.binding.id.substr(0, 8);
        if (g.user.disabled)
            return make_error(ErrorCode::unauthenticated, "the user of " + label + " is disabled");
        auto role = g.role ? parse_role(*g.role) : std::nullopt;
        if (!role && !g.user.server_owner)
            return make_error(ErrorCode::unauthenticated, "the user of " + label + " left the tenant");
        Principal p;
        p.method = "certificate";
        p.user_id = g.user.id;
        p.username = g.user.username;
        p.server_owner = g.user.server_owner;
        p.tenant_id = g.binding.tenant_id;
        p.tenant_name = g.binding.tenant_name;
        p.role = role;
        p.scopes = parse_scopes(g.binding.scopes).value_or(0);
        p.key_prefix = "cert:" + certificate.fingerprint_sha256.substr(0, 12);
        return p;
    }
    return make_error(ErrorCode::unauthenticated,
                      "this client certificate (sha256 " + certificate.fingerprint_sha256.substr(0, 16) +
                          "…) is not bound to any user: an admin binds it (codepilot cert bind, or POST "
                          "/admin/v1/tenants/{tenant}/certificates)");
}

std::shared_ptr<const Principal>
Authenticator::authenticate_certificate_cached(const CertificateIdentity& c) {
    auto hit = cached("cert:" + c.fingerprint_sha256, clock_(), store_generation());
    if (!hit) return nullptr;
    count("certificate", "success");
    if (cache_hits_) cache_hits_->inc();
    return hit;
}

Result<std::shared_ptr<const Principal>>
Authenticator::authenticate_certificate(const CertificateIdentity& c) {
    const std::string digest = "cert:" + c.fingerprint_sha256;
    const int64_t now = clock_();
    const auto generation = store_generation(); // before the store: a change meanwhile empties the cache
    if (auto hit = cached(digest, now, generation)) {
        count("certificate", "success");
        if (cache_hits_) cache_hits_->inc();
        return hit;
    }
    if (cache_misses_) cache_misses_->inc();
    auto result = from_certificate(c);
    count("certificate", result                                          ? "success"
                         : result.error().code == ErrorCode::unavailable ? "unavailable"
                                                                         : "failure");
    if (!result) return result.error();
    auto principal = std::make_shared<const Principal>(std::move(*result));
    if (store_generation() == generation) remember(digest, principal, "", now + kCacheSeconds, now);
    return principal;
}

} // namespace codepilot::auth
