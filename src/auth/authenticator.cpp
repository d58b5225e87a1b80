#include "auth/auth.h"
#include "auth/credentials.h"
#include "auth/jwt.h"
#include "auth/ldap_directory.h"
#include "auth/password.h"
#include "auth/settings_json.h"

#include <ctime>
#include <spdlog/spdlog.h>

namespace codepilot::auth {
namespace {

constexpr int64_t kKeyTouchInterval = 60; // seconds between last_used_at writes per key

Error invalid(std::string detail) {
    return make_error(ErrorCode::invalid_argument, std::move(detail));
}

// Who a credential speaks for; the caller adds tenant, role, scopes and expiry.
Principal principal_of(const store::User& user, const char* method) {
    Principal p;
    p.method = method;
    p.user_id = user.id;
    p.username = user.username;
    p.server_owner = user.server_owner;
    return p;
}

std::optional<Role> role_of(const std::optional<std::string>& name) {
    return name ? parse_role(*name) : std::nullopt;
}

} // namespace

PermissionSet Principal::permissions(std::optional<Role> role_there) const {
    PermissionSet from_role = server_owner ? role_permissions(Role::owner) | bit(Permission::server_admin)
                              : role_there ? role_permissions(*role_there)
                                           : 0;
    return from_role & scope_permissions(scopes, server_owner);
}

Authenticator::Authenticator(store::IdentityStore& store, config::AuthConfig config,
                             metrics::Registry* metrics, std::function<int64_t()> clock)
    : store_(store), changes_(store.database().watch_changes()), config_(std::move(config)),
      metrics_(metrics), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return static_cast<int64_t>(std::time(nullptr)); };
    set_ldap(config_.ldap);
    set_oidc(config_.oidc);
    // Every series exists from the start (at 0), and counting needs no lock.
    if (metrics_) {
        const char* help = "Credential checks answered from memory (hit) or from the store (miss)";
        cache_hits_ = &metrics_->counter("codepilot_auth_cache_total", help, {{"result", "hit"}});
        cache_misses_ = &metrics_->counter("codepilot_auth_cache_total", help, {{"result", "miss"}});
    }
    if (metrics_)
        for (size_t m = 0; m < kMethods.size(); ++m)
            for (size_t r = 0; r < kResults.size(); ++r)
                counters_[m][r] = &metrics_->counter(
                    "codepilot_auth_attempts_total", "Authentication decisions by method and result",
                    {{"method", std::string(kMethods[m])}, {"result", std::string(kResults[r])}});
}

Authenticator::~Authenticator() = default;

void Authenticator::count(std::string_view method, std::string_view result) {
    // A scan of two short tables: no string is built on the request path.
    for (size_t m = 0; m < kMethods.size(); ++m)
        if (kMethods[m] == method)
            for (size_t r = 0; r < kResults.size(); ++r)
                if (kResults[r] == result && counters_[m][r]) counters_[m][r]->inc();
}

std::pair<uint64_t, uint64_t> Authenticator::store_generation() {
    const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    if (now_us - last_sample_us_.load(std::memory_order_relaxed) >= kChangeSampleMicros &&
        sample_mu_.try_lock()) {
        sampled_generation_ = changes_->generation();
        last_sample_us_ = now_us;
        sample_mu_.unlock();
    }
    return {store_.local_writes(), sampled_generation_.load()};
}

std::shared_ptr<const Principal> Authenticator::cached(const std::string& digest, int64_t now,
                                                       std::pair<uint64_t, uint64_t> generation) {
    std::string key_id;
    std::shared_ptr<const Principal> hit;
    {
        std::lock_guard lock(cache_mu_);
        if (generation != cache_generation_) { // something changed in the store: check everything afresh
            cache_.clear();
            cache_generation_ = generation;
            return nullptr;
        }
        auto it = cache_.find(digest);
        if (it == cache_.end()) return nullptr;
        if (now >= it->second.valid_until) {
            cache_.erase(it);
            return nullptr;
        }
        hit = it->second.principal;
        if (!it->second.key_id.empty() && now - it->second.touched >= kKeyTouchInterval) {
            it->second.touched = now;
            key_id = it->second.key_id;
        }
    }
    if (!key_id.empty()) touch_key(key_id, now);
    return hit;
}

void Authenticator::remember(const std::string& digest, std::shared_ptr<const Principal> p,
                             const std::string& key_id, int64_t valid_until, int64_t now) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= 100000) cache_.clear(); // bounded: a flood of distinct tokens cannot grow it
    cache_[digest] = Cached{std::move(p), key_id, valid_until, now};
}

void Authenticator::touch_key(const std::string& key_id, int64_t now) {
    bool touch = false;
    {
        std::lock_guard lock(mu_);
        auto& last = key_touched_[key_id];
        if (now - last >= kKeyTouchInterval) {
            last = now;
            touch = true;
        }
    }
    if (!touch) return;
    // last-used is advisory: a failed write does not refuse the call, and it is written in the
    // background so that a cache hit on an I/O thread never waits for the store.
    if (background_ && background_([this, key_id] { (void)store_.touch_key(key_id); })) return;
    (void)store_.touch_key(key_id);
}

config::LdapConfig Authenticator::ldap_settings() const {
    std::lock_guard lock(mu_);
    return ldap_ ? ldap_->config() : config_.ldap;
}

config::OidcConfig Authenticator::oidc_settings() const {
    std::lock_guard lock(mu_);
    return jwt_ ? jwt_->config() : config_.oidc;
}

void Authenticator::set_ldap(const config::LdapConfig& ldap) {
    auto directory = ldap.enabled ? std::make_shared<LdapDirectory>(ldap) : nullptr;
    std::lock_guard lock(mu_);
    config_.ldap = ldap;
    ldap_ = std::move(directory);
}

void Authenticator::set_oidc(const config::OidcConfig& oidc) {
    auto verifier = oidc.enabled ? std::make_shared<JwtVerifier>(oidc, clock_) : nullptr;
    std::lock_guard lock(mu_);
    config_.oidc = oidc;
    jwt_ = std::move(verifier);
}

namespace {
// Reads setting `name`, parses it over `base` and hands the result to `apply`.
template <typename Settings, typename Parse, typename Apply>
Status load_setting(store::IdentityStore& store, const std::string& name, const Settings& base, Parse parse,
                    Apply apply) {
    auto saved = store.get_setting(name);
    if (!saved) return saved.error();
    if (!*saved) return Ok{};
    auto parsed = parse(nlohmann::json::parse(**saved, nullptr, false), base);
    if (!parsed)
        return make_error(ErrorCode::invalid_argument,
                          "saved " + name + " settings: " + parsed.error().message);
    apply(*parsed);
    return Ok{};
}
} // namespace

Status Authenticator::load_saved_settings() {
    if (auto st = load_setting(store_, "ldap", config_.ldap, ldap_from_json,
                               [this](const auto& l) { set_ldap(l); });
        !st)
        return st;
    return load_setting(store_, "oidc", config_.oidc, oidc_from_json, [this](const auto& o) { set_oidc(o); });
}

namespace {
// RFC 6750: "Bearer" (any case), one space, the token.
Result<std::string> bearer_token(std::string_view header) {
    if (header.empty()) return invalid("no Authorization header");
    auto space = header.find(' ');
    std::string scheme(header.substr(0, space));
    for (auto& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (space == std::string_view::npos || scheme != "bearer")
        return invalid("the Authorization header must be 'Bearer <token>'");
    std::string token(header.substr(space + 1));
    while (!token.empty() && token.back() == ' ') token.pop_back();
    if (token.empty() || token.find(' ') != std::string::npos) return invalid("malformed bearer token");
    return token;
}

const char* method_of(TokenKind kind) {
    return kind == TokenKind::api_key   ? "api_key"
           : kind == TokenKind::session ? "session"
           : kind == TokenKind::jwt     ? "jwt"
                                        : "unknown";
}
} // namespace

std::shared_ptr<const Principal> Authenticator::authenticate_cached(std::string_view header) {
    auto token = bearer_token(header);
    if (!token) return nullptr;
    const TokenKind kind = classify_token(*token);
    if (kind == TokenKind::unknown) return nullptr;
    auto hit = cached(sha256_hex(*token), clock_(), store_generation());
    if (!hit) return nullptr;
    count(method_of(kind), "success");
    if (cache_hits_) cache_hits_->inc();
    return hit;
}

Result<std::shared_ptr<const Principal>> Authenticator::authenticate(std::string_view header) {
    auto bearer = bearer_token(header);
    if (!bearer) return bearer.error();
    const std::string& token = *bearer;
    const TokenKind kind = classify_token(token);
    const char* method = method_of(kind);
    const std::string digest = sha256_hex(token);
    const int64_t now = clock_();
    // Read the generation before the store: a change landing meanwhile then empties the cache.
    const auto generation = store_generation();
    if (kind != TokenKind::unknown) {
        if (auto hit = cached(digest, now, generation)) {
            count(method, "success");
            if (cache_hits_) cache_hits_->inc();
            return hit;
        }
        if (cache_misses_) cache_misses_->inc();
    }
    Result<Principal> result = invalid("unrecognized token");
    std::string key_id;
    switch (kind) {
    case TokenKind::api_key:
        result = from_api_key(digest, key_id);
        break;
    case TokenKind::session:
        result = from_session(digest);
        break;
    case TokenKind::jwt:
        result = from_jwt(token);
        break;
    case TokenKind::unknown:
        break;
    }
    count(method, result                                          ? "success"
                  : result.error().code == ErrorCode::unavailable ? "unavailable"
                                                                  : "failure");
    if (!result) return result.error();
    auto principal = std::make_shared<const Principal>(std::move(*result));
    int64_t until = now + kCacheSeconds;
    if (principal->expires_at > 0) until = std::min(until, principal->expires_at);
    if (store_generation() == generation) remember(digest, principal, key_id, until, now);
    return principal;
}

Result<Principal> Authenticator::from_api_key(const std::string& digest, std::string& key_id) {
    auto grant = store_.find_key_grant(digest);
    if (!grant) return grant.error();
    if (!*grant) return invalid("unknown API key");
    const auto& g = **grant;
    const int64_t now = clock_();
    if (g.key.revoked_at) return invalid("API key " + g.key.prefix + " was revoked");
    if (g.key.expires_at && *g.key.expires_at <= now) return invalid("API key " + g.key.prefix + " expired");
    if (g.user.disabled) return invalid("user of API key " + g.key.prefix + " is disabled");
    auto role = role_of(g.role);
    if (!role && !g.user.server_owner)
        return invalid("owner of API key " + g.key.prefix + " left the tenant");

    Principal p = principal_of(g.user, "api_key");
    p.tenant_id = g.key.tenant_id;
    p.tenant_name = g.key.tenant_name;
    p.role = role;
    p.scopes = parse_scopes(g.key.scopes).value_or(0);
    p.key_prefix = g.key.prefix;
    p.expires_at = g.key.expires_at.value_or(0);
    key_id = g.key.id;
    touch_key(g.key.id, now);
    return p;
}

Result<Principal> Authenticator::from_session(const std::string& digest) {
    auto grant = store_.find_session_grant(digest);
    if (!grant) return grant.error();
    if (!*grant) return invalid("unknown session");
    const auto& g = **grant;
    if (g.session.revoked_at) return invalid("session ended");
    if (g.session.expires_at <= clock_()) return invalid("session expired");
    if (g.user.disabled) return invalid("user is disabled");
    Principal p = principal_of(g.user, "session");
    p.session_hash = g.session.secret_hash;
    p.expires_at = g.session.expires_at;
    if (g.session.tenant_id) {
        auto memberships = store_.memberships_of_user(g.user.id);
        if (!memberships) return memberships.error();
        for (const auto& m : *memberships)
            if (m.tenant_id == *g.session.tenant_id) {
                p.tenant_id = m.tenant_id;
                p.tenant_name = m.tenant_name;
                p.role = parse_role(m.role);
            }
    }
    return p;
}

Result<Principal> Authenticator::from_jwt(const std::string& token) {
    std::shared_ptr<JwtVerifier> verifier;
    {
        std::lock_guard lock(mu_);
        verifier = jwt_;
    }
    if (!verifier) return invalid("OIDC is not configured");
    auto claims = verifier->verify(token);
    if (!claims) return claims.error();
    const auto& c = *claims;
    const auto& oc = verifier->config();
    auto claim = [&](const std::string& name) -> std::string {
        return c.contains(name) && c[name].is_string() ? c[name].get<std::string>() : "";
    };
    // The account is the issuer's subject; the name claim (which users can often edit) only
    // names a new account.
    const std::string subject = claim("sub");
    if (subject.empty()) return invalid("token has no subject");
    const std::string external_id = claim("iss") + " " + subject;
    std::string username = canonical_username(claim(oc.username_claim));
    if (username.empty()) username = canonical_username(subject);
    if (!valid_username(username)) return invalid("token names no usable user");
    std::string tenant_name = claim(oc.tenant_claim);
    std::string role_name = claim(oc.role_claim);
    if (role_name.empty()) role_name = oc.default_role;
    auto role = parse_role(role_name);
    if (!role) return invalid("token role '" + role_name + "' is not a role");

    auto user = store_.find_user_by_external("oidc", external_id);
    if (!user) return user.error();
    store::User u;
    if (*user) {
        u = **user;
    } else {
        auto named = store_.find_user(username);
        if (!named) return named.error();
        if (*named) { // a row from before external ids is adopted; anyone else's name is not
            if ((*named)->source != "oidc" || (*named)->external_id)
                return invalid("user name '" + username + "' belongs to another account");
            u = **named;
            u.external_id = external_id;
            if (auto st = store_.update_user(u); !st) return st.error();
        } else {
            store::User fresh;
            fresh.username = username;
            fresh.source = "oidc";
            fresh.email = claim("email");
            fresh.display_name = claim("name");
            fresh.external_id = external_id;
            auto created = store_.create_user(fresh);
            if (!created) {
                auto again = store_.find_user_by_external("oidc", external_id); // provisioned meanwhile
                if (!again || !*again) return created.error();
                u = **again;
            } else {
                u = *created;
            }
        }
    }
    if (u.disabled) return invalid("user is disabled");

    Principal p = principal_of(u, "jwt");
    p.expires_at = c["exp"].get<int64_t>() + oc.leeway_s;
    if (!tenant_name.empty()) {
        auto tenant = store_.find_tenant(tenant_name);
        if (!tenant) return tenant.error();
        if (!*tenant) return invalid("token names tenant '" + tenant_name + "', which does not exist");
        p.tenant_id = (*tenant)->id;
        p.tenant_name = tenant_name;
        p.role = role;
        const std::string synced = p.tenant_id + "/" + role_name;
        bool write = false;
        {
            std::lock_guard lock(mu_);
            write = oidc_synced_[u.id] != synced;
        }
        if (write) {
            if (auto st = store_.sync_memberships(u.id, "oidc", {{p.tenant_id, role_name}}); !st)
                return st.error();
            std::lock_guard lock(mu_);
            oidc_synced_[u.id] = synced;
        }
    }
    return p;
}

Result<store::User> Authenticator::sign_in_ldap(const std::string& username, const std::string& password) {
    std::shared_ptr<LdapDirectory> directory;
    {
        std::lock_guard lock(mu_);
        directory = ldap_;
    }
    auto found = directory->authenticate(username, password);
    if (!found) {
        count("ldap", found.error().code == ErrorCode::unavailable ? "unavailable" : "failure");
        return found.error();
    }
    // The entry, not the typed name, is the account: its entryUUID, which survives renames and
    // moves, else its DN (compared without case).
    const std::string dn = found->entry_uuid.empty() ? "dn:" + canonical_username(found->dn)
                                                     : "uuid:" + canonical_username(found->entry_uuid);
    auto existing = store_.find_user_by_external("ldap", dn);
    if (!existing) return existing.error();
    if (!*existing) { // first sign-in, or a row from before external ids: adopt it by name
        existing = store_.find_user(username);
        if (!existing) return existing.error();
        if (*existing && ((*existing)->source != "ldap" || (*existing)->external_id)) {
            count("ldap", "failure");
            return invalid("user '" + username + "' exists as another " + (*existing)->source + " account");
        }
    }
    store::User u;
    if (*existing) {
        u = **existing;
        u.display_name = found->display_name;
        u.email = found->email;
        u.external_id = dn;
        if (auto st = store_.update_user(u); !st) return st.error();
    } else {
        store::User fresh;
        fresh.username = username;
        fresh.source = "ldap";
        fresh.display_name = found->display_name;
        fresh.email = found->email;
        fresh.external_id = dn;
        auto created = store_.create_user(fresh);
        if (created) {
            u = *created;
        } else { // a sign-in beside this one provisioned the entry first: that account is this one
            auto again = store_.find_user_by_external("ldap", dn);
            if (!again || !*again) return created.error();
            u = **again;
        }
    }
    if (u.disabled) {
        count("ldap", "failure");
        return invalid("user '" + username + "' is disabled");
    }
    std::vector<std::pair<std::string, std::string>> grants;
    for (const auto& [tenant_name, role] : directory->map_groups(found->groups)) {
        auto tenant = store_.find_tenant(tenant_name);
        if (!tenant) return tenant.error();
        std::string tenant_id;
        if (*tenant) {
            tenant_id = (*tenant)->id;
        } else {
            auto created = store_.create_tenant(tenant_name); // named by the administrator's group map
            if (!created) return created.error();
            tenant_id = created->id;
        }
        grants.emplace_back(tenant_id, role);
    }
    if (auto st = store_.sync_memberships(u.id, "ldap", grants); !st) return st.error();
    count("ldap", "success");
    return u;
}

Result<SignIn> Authenticator::sign_in(const std::string& username, const std::string& password,
                                      const std::string& tenant) {
    auto found = store_.find_user(username);
    if (!found) return found.error();
    store::User user;
    bool ldap_enabled = false;
    {
        std::lock_guard lock(mu_);
        ldap_enabled = ldap_ != nullptr;
    }
    if (*found && (*found)->source == "local") {
        user = **found;
        // An account without a password costs the same time as a wrong one: no account probing.
        bool ok = user.password_hash ? verify_password(password, *user.password_hash)
                                     : (burn_password_check(password), false);
        if (!ok || user.disabled) {
            count("password", "failure");
            return invalid(!ok ? "wrong password for '" + username + "'"
                               : "user '" + username + "' is disabled");
        }
        count("password", "success");
    } else if (ldap_enabled && (!*found || (*found)->source == "ldap")) {
        auto signed_in = sign_in_ldap(username, password);
        if (!signed_in) {
            // A refusal costs what a local one does, so timing does not tell local accounts
            // from directory ones or from names that exist nowhere.
            if (signed_in.error().code == ErrorCode::invalid_argument) burn_password_check(password);
            return signed_in.error();
        }
        user = *signed_in;
    } else {
        burn_password_check(password); // an unknown user takes as long as a wrong password
        count("password", "failure");
        return invalid("unknown user '" + username + "'");
    }

    auto memberships = store_.memberships_of_user(user.id);
    if (!memberships) return memberships.error();
    Principal p = principal_of(user, "session");
    for (const auto& m : *memberships) {
        if (!tenant.empty() && m.tenant_name != tenant) continue;
        p.tenant_id = m.tenant_id;
        p.tenant_name = m.tenant_name;
        p.role = parse_role(m.role);
        break;
    }
    if (!tenant.empty() && p.tenant_id.empty())
        return make_error(ErrorCode::not_found, "you are not a member of tenant '" + tenant + "'", "tenant");

    auto token = generate_session_token();
    store::Session s;
    s.id = store::IdentityStore::new_id();
    s.secret_hash = token.secret_hash;
    s.user_id = user.id;
    if (!p.tenant_id.empty()) s.tenant_id = p.tenant_id;
    s.method = user.source == "ldap" ? "ldap" : "password";
    s.created_at = clock_();
    s.expires_at = s.created_at + config_.session_ttl_s;
    if (auto st = store_.create_session(s); !st) return st.error();
    (void)store_.record_login(user.id);
    p.session_hash = token.secret_hash;
    return SignIn{token.plaintext, s.expires_at, p};
}

Status Authenticator::sign_out(const Principal& principal) {
    if (principal.method != "session") return invalid("only a session can sign out; revoke API keys instead");
    auto r = store_.revoke_session(principal.session_hash);
    if (!r) return r.error();
    return Ok{};
}

Result<std::optional<TenantAccess>> Authenticator::access_in(const Principal& p,
                                                             const std::string& tenant_name) {
    auto tenant = store_.find_tenant(tenant_name);
    if (!tenant) return tenant.error();
    if (!*tenant) return std::optional<TenantAccess>{};
    TenantAccess access{**tenant, std::nullopt, 0};
    if (p.tenant_id == access.tenant.id) {
        access.role = p.role;
    } else if (p.method == "session" || p.method == "none") {
        // A person's session reaches every tenant they belong to; keys and tokens only their own.
        auto memberships = store_.memberships_of_user(p.user_id);
        if (!memberships) return memberships.error();
        for (const auto& m : *memberships)
            if (m.tenant_id == access.tenant.id) access.role = parse_role(m.role);
    }
    if (!access.role && !p.server_owner) return std::optional<TenantAccess>{};
    if (!p.server_owner && p.tenant_id != access.tenant.id && p.method != "session")
        return std::optional<TenantAccess>{};
    access.permissions = p.permissions(access.role);
    return std::optional<TenantAccess>(access);
}

} // namespace codepilot::auth
