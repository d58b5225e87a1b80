// The auth module's public face: who is calling (API key, session, OIDC JWT), sign-in with a
// local password or LDAP, API-key issuance, the first-start bootstrap and RBAC checks.
#pragma once

#include "auth/access_rules.h"
#include "config/config.h"
#include "core/result.h"
#include "metrics/metrics.h"
#include "store/identity_store.h"

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace codepilot::auth {

class JwtVerifier;
class LdapDirectory;

struct Principal {
    std::string method; // api_key | session | jwt | certificate | none (auth off)
    std::string user_id, username;
    bool server_owner = false;
    std::string tenant_id, tenant_name; // the tenant the credential acts in ("" when none)
    std::optional<Role> role;           // the caller's role there
    ScopeSet scopes = kAllScopes;       // keys carry scopes; sessions and JWTs have all
    std::string key_prefix;             // api_key: its prefix; certificate: "cert:" + 12 hex of it (safe to log)
    std::string session_hash;           // session only: for sign-out
    int64_t expires_at = 0;             // when the credential lapses (0: never)

    // What this caller may do in a tenant where it holds `role` (a server owner everything).
    PermissionSet permissions(std::optional<Role> role_there) const;
};

// The caller's standing in a tenant named by a request.
struct TenantAccess {
    store::Tenant tenant;
    std::optional<Role> role;
    PermissionSet permissions = 0;
};

struct SignIn {
    std::string token; // cps_… bearer token
    int64_t expires_at = 0;
    Principal principal;
};

// "30d", "12h", "90m", "3600s", "2w" or plain seconds; nullopt when malformed or not positive.
std::optional<int64_t> parse_duration_seconds(std::string_view text);
// Tenant names: 1–63 of [a-z0-9._-], starting with a letter or digit.
bool valid_tenant_name(std::string_view name);
// User names: 1–128 printable characters without spaces or '/'.
bool valid_username(std::string_view name);
// The one spelling of a user name: surrounding white space trimmed, ASCII letters in lower
// case, so that "Alice " and "alice" are one account everywhere (sign-in, LDAP, creation).
std::string canonical_username(std::string_view name);

// A client certificate the TLS handshake verified (mTLS).
struct CertificateIdentity {
    std::string fingerprint_sha256; // lower-case hex
    std::string subject;            // RFC 2253
    std::vector<std::string> sans;  // "DNS:…", "URI:…", "email:…", "IP:…"
};
// The one spelling of what a binding matches, or invalid_argument naming what is wrong:
// fingerprint: 64 hex digits (colons, "sha256:" and case ignored); subject: an RFC 2253 DN
// (a leading "subject=" dropped); san: TYPE:value with TYPE DNS, URI, email or IP.
Result<std::string> canonical_certificate_value(const std::string& kind, const std::string& text);

struct IssuedKey {
    std::string plaintext; // shown once
    store::ApiKey record;
};
// A key for `username` in `tenant_name`; the user must be a member of the tenant.
Result<IssuedKey> issue_api_key(store::IdentityStore& store, const std::string& tenant_name,
                                const std::string& username, ScopeSet scopes,
                                std::optional<int64_t> ttl_seconds, const std::string& name,
                                const std::string& actor);

// First start of an empty store: tenant "default", server owner "owner" and an owner key with
// every scope that expires after `key_ttl_seconds`, written to `key_file` (a new 0600 file; a
// stale one from an earlier store is replaced). The key is never returned, printed or logged.
struct Bootstrap {
    std::string key_file; // where the key is; "" when none was issued (key_file was "")
};
// nullopt when the store already had users.
Result<std::optional<Bootstrap>> bootstrap_owner(store::IdentityStore& store, const std::string& key_file,
                                                 int64_t key_ttl_seconds);

class Authenticator {
public:
    Authenticator(store::IdentityStore& store, config::AuthConfig config, metrics::Registry* metrics,
                  std::function<int64_t()> clock = {});
    ~Authenticator();

    // From an Authorization header value. invalid_argument: bad or missing credentials (the
    // message is the detail for logs; clients get "invalid credentials"); unavailable: the
    // store or the identity provider cannot be reached.
    Result<std::shared_ptr<const Principal>> authenticate(std::string_view authorization);
    // The same, answered from memory only: the principal of a credential checked recently, or
    // nullptr when only authenticate() (which may read the store) can tell. Never blocks.
    std::shared_ptr<const Principal> authenticate_cached(std::string_view authorization);
    // A client certificate: the binding of its fingerprint, else of its subject, else of one of
    // its SANs. unauthenticated when none is bound (or the user left or is disabled).
    Result<std::shared_ptr<const Principal>> authenticate_certificate(const CertificateIdentity& certificate);
    std::shared_ptr<const Principal> authenticate_certificate_cached(const CertificateIdentity& certificate);
    // Where small background writes go (last_used_at): a function that queues a job and says
    // whether it took it. Unset, they are written inline.
    void set_background(std::function<bool(std::function<void()>)> run) { background_ = std::move(run); }
    // Local password, else LDAP. `tenant`: the tenant the session acts in (default: the first).
    Result<SignIn> sign_in(const std::string& username, const std::string& password,
                           const std::string& tenant);
    Status sign_out(const Principal& principal);
    // The caller's standing in the named tenant; nullopt when it may not even see it (→ 404).
    Result<std::optional<TenantAccess>> access_in(const Principal& principal, const std::string& tenant_name);

    // LDAP and OIDC settings in effect, replaceable while serving (admin API).
    config::LdapConfig ldap_settings() const;
    config::OidcConfig oidc_settings() const;
    void set_ldap(const config::LdapConfig& ldap);
    void set_oidc(const config::OidcConfig& oidc);
    // Settings saved through the admin API (table `settings`) override the config file's.
    Status load_saved_settings();

    store::IdentityStore& store() { return store_; }
    const config::AuthConfig& config() const { return config_; }
    void count(std::string_view method, std::string_view result);
    // How long a checked credential may be reused without asking the store again, at most.
    static constexpr int64_t kCacheSeconds = 60;

private:
    Result<Principal> from_api_key(const std::string& digest, std::string& key_id);
    Result<Principal> from_session(const std::string& digest);
    Result<Principal> from_jwt(const std::string& token);
    Result<Principal> from_certificate(const CertificateIdentity& certificate);
    Result<store::User> sign_in_ldap(const std::string& username, const std::string& password);

    // Credentials already checked, by token digest, valid until the store reports a change
    // (store::ChangeMonitor) or their own expiry, at most kCacheSeconds.
    struct Cached {
        std::shared_ptr<const Principal> principal;
        std::string key_id; // api keys: for last_used_at
        int64_t valid_until = 0;
        int64_t touched = 0; // last last_used_at write
    };
    // Changes by this process count at once; other processes' are sampled at most every
    // kChangeSampleMicros (a PRAGMA or a socket read), so a hot path does not pay for each.
    std::pair<uint64_t, uint64_t> store_generation();
    std::shared_ptr<const Principal> cached(const std::string& digest, int64_t now,
                                            std::pair<uint64_t, uint64_t> generation);
    void remember(const std::string& digest, std::shared_ptr<const Principal> p, const std::string& key_id,
                  int64_t valid_until, int64_t now);
    void touch_key(const std::string& key_id, int64_t now);
    static constexpr int64_t kChangeSampleMicros = 1000;

    store::IdentityStore& store_;
    std::unique_ptr<store::ChangeMonitor> changes_;
    std::mutex sample_mu_;
    std::atomic<int64_t> last_sample_us_{0};
    std::atomic<uint64_t> sampled_generation_{0};
    std::mutex cache_mu_;
    std::unordered_map<std::string, Cached> cache_;
    std::pair<uint64_t, uint64_t> cache_generation_{0, 0};
    config::AuthConfig config_;
    metrics::Registry* metrics_;
    std::function<int64_t()> clock_;
    std::function<bool(std::function<void()>)> background_;
    mutable std::mutex mu_;
    std::shared_ptr<LdapDirectory> ldap_;
    std::shared_ptr<JwtVerifier> jwt_;
    std::map<std::string, int64_t> key_touched_; // key id → last last_used_at write
    static constexpr std::array<std::string_view, 7> kMethods = {"api_key", "session", "jwt",        "password",
                                                                 "ldap",    "unknown", "certificate"};
    static constexpr std::array<std::string_view, 3> kResults = {"success", "failure", "unavailable"};
    std::array<std::array<metrics::Counter*, 3>, 7> counters_{}; // made up front: counting needs no lock
    metrics::Counter* cache_hits_ = nullptr;
    metrics::Counter* cache_misses_ = nullptr;
    std::map<std::string, std::string> oidc_synced_; // user id → "tenant/role" last written
};

} // namespace codepilot::auth
