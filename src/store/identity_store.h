// IdentityStore: typed reads and writes of tenants, users, memberships, API keys, sessions and
// settings. The only place that knows their SQL.
#pragma once

#include "store/database.h"

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace codepilot::store {

struct Tenant {
    std::string id, name;
    int64_t created_at = 0;
};

struct User {
    std::string id, username;
    std::string kind = "person";  // person | service
    std::string source = "local"; // local | ldap | oidc
    std::string display_name, email;
    std::optional<std::string> password_hash;
    bool disabled = false;
    bool server_owner = false;
    int64_t created_at = 0, updated_at = 0;
    std::optional<int64_t> last_login_at;
    std::optional<std::string> external_id; // ldap: the entry's DN; oidc: "<iss> <sub>"
};

struct Membership {
    std::string tenant_id, tenant_name, user_id, username, role, source;
    int64_t created_at = 0;
};

struct ApiKey {
    std::string id, prefix, secret_hash, tenant_id, tenant_name, user_id, username, name, scopes, created_by;
    int64_t created_at = 0;
    std::optional<int64_t> expires_at, revoked_at, last_used_at;
};

// A key found by its hash, with its owner and the owner's current role in the key's tenant.
struct KeyGrant {
    ApiKey key;
    User user;
    std::optional<std::string> role; // none: no longer a member
};

// A client certificate bound to a user in a tenant; `match` is fingerprint | subject | san.
struct CertificateBinding {
    std::string id, tenant_id, tenant_name, user_id, username, match, value, name, scopes, created_by;
    int64_t created_at = 0;
};

struct CertificateGrant {
    CertificateBinding binding;
    User user;
    std::optional<std::string> role; // none: no longer a member
};

struct Session {
    std::string id, secret_hash, user_id, method;
    std::optional<std::string> tenant_id;
    int64_t created_at = 0, expires_at = 0;
    std::optional<int64_t> revoked_at;
};

struct SessionGrant {
    Session session;
    User user;
};

class IdentityStore {
public:
    using Clock = std::function<int64_t()>; // unix seconds
    explicit IdentityStore(Database& db, Clock clock = {});

    Database& database() { return db_; }
    int64_t now() const { return clock_(); }

    // Tenants. Names are unique; a duplicate is invalid_argument.
    Result<Tenant> create_tenant(const std::string& name);
    Result<std::optional<Tenant>> find_tenant(const std::string& name);
    Result<std::vector<Tenant>> list_tenants();
    Status delete_tenant(const std::string& tenant_id);

    // Users.
    Result<User> create_user(User user);
    Result<std::optional<User>> find_user(const std::string& username);
    Result<std::optional<User>> find_user_by_id(const std::string& user_id);
    Result<std::optional<User>> find_user_by_external(const std::string& source,
                                                      const std::string& external_id);
    Result<int64_t> count_users();
    Status update_user(const User& user); // display name, email, password hash, disabled, owner flag
    Status record_login(const std::string& user_id);

    // Memberships.
    Status set_membership(const std::string& tenant_id, const std::string& user_id, const std::string& role,
                          const std::string& source = "manual");
    // Returns whether a membership was removed.
    Result<bool> remove_membership(const std::string& tenant_id, const std::string& user_id);
    Result<std::vector<Membership>> memberships_of_user(const std::string& user_id);
    Result<std::vector<Membership>> members_of_tenant(const std::string& tenant_id);
    // Replaces the memberships that came from `source` (LDAP, OIDC) with `grants`; manual ones stay.
    Status sync_memberships(const std::string& user_id, const std::string& source,
                            const std::vector<std::pair<std::string, std::string>>& tenant_roles);

    // API keys.
    Status create_api_key(const ApiKey& key);
    Result<std::optional<KeyGrant>> find_key_grant(const std::string& secret_hash);
    Result<std::optional<ApiKey>> find_key_by_prefix(const std::string& prefix);
    Result<std::vector<ApiKey>> list_keys(const std::string& tenant_id);
    // Returns whether a live key was revoked.
    Result<bool> revoke_key(const std::string& key_id);
    Status touch_key(const std::string& key_id);

    // Client-certificate bindings. One (match, value) names at most one binding.
    Status create_certificate_binding(const CertificateBinding& binding);
    Result<std::optional<CertificateGrant>> find_certificate_grant(const std::string& match,
                                                                   const std::string& value);
    Result<std::optional<CertificateBinding>> find_certificate_binding(const std::string& id);
    Result<std::vector<CertificateBinding>> list_certificate_bindings(const std::string& tenant_id);
    Result<bool> delete_certificate_binding(const std::string& id);

    // Sessions.
    Status create_session(const Session& session);
    Result<std::optional<SessionGrant>> find_session_grant(const std::string& secret_hash);
    Result<bool> revoke_session(const std::string& secret_hash);
    // Ends every live session of a user (password change, "sign out everywhere"); how many.
    Result<int64_t> revoke_sessions_of_user(const std::string& user_id);

    // Server-wide settings (JSON text), e.g. "ldap", "oidc".
    Result<std::optional<std::string>> get_setting(const std::string& name);
    Status put_setting(const std::string& name, const std::string& value, const std::string& actor);

    // A random 128-bit id in hex.
    static std::string new_id();
    // Counts writes made through this object: caches of what it read can tell at once.
    uint64_t local_writes() const { return writes_.load(); }

private:
    Result<int64_t> write(std::string_view sql, const std::vector<Value>& params);
    Database& db_;
    Clock clock_;
    std::atomic<uint64_t> writes_{0};
};

} // namespace codepilot::store
