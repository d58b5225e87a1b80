#include "store/identity_store.h"

#include "core/base64.h"
#include "core/secure_random.h"

#include <ctime>
#include <openssl/rand.h>

namespace codepilot::store {
namespace {

constexpr const char* kUserColumns = "u.id, u.username, u.kind, u.source, u.display_name, u.email, "
                                     "u.password_hash, u.disabled, u.server_owner, "
                                     "u.created_at, u.updated_at, u.last_login_at, u.external_id";
constexpr size_t kUserWidth = 13;

User user_from(const Row& r, size_t at = 0) {
    User u;
    u.id = r.text(at);
    u.username = r.text(at + 1);
    u.kind = r.text(at + 2);
    u.source = r.text(at + 3);
    u.display_name = r.text(at + 4);
    u.email = r.text(at + 5);
    if (!r.is_null(at + 6)) u.password_hash = r.text(at + 6);
    u.disabled = r.integer(at + 7) != 0;
    u.server_owner = r.integer(at + 8) != 0;
    u.created_at = r.integer(at + 9);
    u.updated_at = r.integer(at + 10);
    u.last_login_at = r.optional_integer(at + 11);
    if (!r.is_null(at + 12)) u.external_id = r.text(at + 12);
    return u;
}

constexpr const char* kKeyColumns = "k.id, k.prefix, k.secret_hash, k.tenant_id, t.name, k.user_id, "
                                    "u.username, k.name, k.scopes, k.created_by, "
                                    "k.created_at, k.expires_at, k.revoked_at, k.last_used_at";

ApiKey key_from(const Row& r) {
    ApiKey k;
    k.id = r.text(0);
    k.prefix = r.text(1);
    k.secret_hash = r.text(2);
    k.tenant_id = r.text(3);
    k.tenant_name = r.text(4);
    k.user_id = r.text(5);
    k.username = r.text(6);
    k.name = r.text(7);
    k.scopes = r.text(8);
    k.created_by = r.text(9);
    k.created_at = r.integer(10);
    k.expires_at = r.optional_integer(11);
    k.revoked_at = r.optional_integer(12);
    k.last_used_at = r.optional_integer(13);
    return k;
}

Membership membership_from(const Row& r) {
    return Membership{r.text(0), r.text(1), r.text(2), r.text(3), r.text(4), r.text(5), r.integer(6)};
}

Value opt(const std::optional<int64_t>& v) {
    return v ? Value(*v) : Value(nullptr);
}
Value opt(const std::optional<std::string>& v) {
    return v ? Value(*v) : Value(nullptr);
}

template <typename T, typename F> Result<std::optional<T>> first(Result<Rows> rows, F convert) {
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<T>{};
    return std::optional<T>(convert(rows->front()));
}

template <typename T, typename F> Result<std::vector<T>> all(Result<Rows> rows, F convert) {
    if (!rows) return rows.error();
    std::vector<T> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) out.push_back(convert(r));
    return out;
}

Status status_of(const Result<int64_t>& r) {
    if (!r) return r.error();
    return Ok{};
}

} // namespace

IdentityStore::IdentityStore(Database& db, Clock clock) : db_(db), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return static_cast<int64_t>(std::time(nullptr)); };
}

Result<int64_t> IdentityStore::write(std::string_view sql, const std::vector<Value>& params) {
    ++writes_;
    return db_.execute(sql, params);
}

std::string IdentityStore::new_id() {
    unsigned char bytes[16];
    secure_random(bytes, sizeof bytes);
    return hex_encode(bytes, sizeof bytes);
}

Result<Tenant> IdentityStore::create_tenant(const std::string& name) {
    Tenant t{new_id(), name, now()};
    auto r =
        write("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)", {t.id, t.name, t.created_at});
    if (!r) {
        if (r.error().message.rfind(kConstraintError, 0) == 0)
            return make_error(ErrorCode::invalid_argument, "tenant '" + name + "' already exists", "name");
        return r.error();
    }
    return t;
}

Result<std::optional<Tenant>> IdentityStore::find_tenant(const std::string& name) {
    return first<Tenant>(db_.query("SELECT id, name, created_at FROM tenants WHERE name = ?", {name}),
                         [](const Row& r) {
                             return Tenant{r.text(0), r.text(1), r.integer(2)};
                         });
}

Result<std::vector<Tenant>> IdentityStore::list_tenants() {
    return all<Tenant>(db_.query("SELECT id, name, created_at FROM tenants ORDER BY name"), [](const Row& r) {
        return Tenant{r.text(0), r.text(1), r.integer(2)};
    });
}

Status IdentityStore::delete_tenant(const std::string& tenant_id) {
    return status_of(write("DELETE FROM tenants WHERE id = ?", {tenant_id}));
}

Result<User> IdentityStore::create_user(User u) {
    u.id = new_id();
    u.created_at = u.updated_at = now();
    auto r =
        write("INSERT INTO users (id, username, kind, source, display_name, email, password_hash, "
              "disabled, server_owner, "
              "created_at, updated_at, external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              {u.id, u.username, u.kind, u.source, u.display_name, u.email, opt(u.password_hash),
               int64_t{u.disabled}, int64_t{u.server_owner}, u.created_at, u.updated_at, opt(u.external_id)});
    if (!r) {
        if (r.error().message.rfind(kConstraintError, 0) == 0)
            return make_error(ErrorCode::invalid_argument, "user '" + u.username + "' already exists",
                              "username");
        return r.error();
    }
    return u;
}

Result<std::optional<User>> IdentityStore::find_user(const std::string& username) {
    return first<User>(
        db_.query(std::string("SELECT ") + kUserColumns + " FROM users u WHERE u.username = ?", {username}),
        [](const Row& r) { return user_from(r); });
}

Result<std::optional<User>> IdentityStore::find_user_by_external(const std::string& source,
                                                                 const std::string& external_id) {
    return first<User>(db_.query(std::string("SELECT ") + kUserColumns +
                                     " FROM users u WHERE u.source = ? AND u.external_id = ?",
                                 {source, external_id}),
                       [](const Row& r) { return user_from(r); });
}

Result<std::optional<User>> IdentityStore::find_user_by_id(const std::string& user_id) {
    return first<User>(
        db_.query(std::string("SELECT ") + kUserColumns + " FROM users u WHERE u.id = ?", {user_id}),
        [](const Row& r) { return user_from(r); });
}

Result<int64_t> IdentityStore::count_users() {
    auto rows = db_.query("SELECT COUNT(*) FROM users");
    if (!rows) return rows.error();
    return rows->front().integer(0);
}

Status IdentityStore::update_user(const User& u) {
    return status_of(write("UPDATE users SET display_name = ?, email = ?, password_hash = ?, disabled = ?, "
                           "server_owner = ?, updated_at = ?, external_id = ? "
                           "WHERE id = ?",
                           {u.display_name, u.email, opt(u.password_hash), int64_t{u.disabled},
                            int64_t{u.server_owner}, now(), opt(u.external_id), u.id}));
}

Status IdentityStore::record_login(const std::string& user_id) {
    return status_of(write("UPDATE users SET last_login_at = ? WHERE id = ?", {now(), user_id}));
}

Status IdentityStore::set_membership(const std::string& tenant_id, const std::string& user_id,
                                     const std::string& role, const std::string& source) {
    return status_of(
        write("INSERT INTO memberships (tenant_id, user_id, role, source, created_at) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role, source = excluded.source",
              {tenant_id, user_id, role, source, now()}));
}

Result<bool> IdentityStore::remove_membership(const std::string& tenant_id, const std::string& user_id) {
    auto r = write("DELETE FROM memberships WHERE tenant_id = ? AND user_id = ?", {tenant_id, user_id});
    if (!r) return r.error();
    return *r > 0;
}

namespace {
constexpr const char* kMembershipSelect =
    "SELECT m.tenant_id, t.name, m.user_id, u.username, m.role, m.source, m.created_at FROM memberships m "
    "JOIN tenants t ON t.id = m.tenant_id JOIN users u ON u.id = m.user_id ";
}

Result<std::vector<Membership>> IdentityStore::memberships_of_user(const std::string& user_id) {
    return all<Membership>(
        db_.query(std::string(kMembershipSelect) + "WHERE m.user_id = ? ORDER BY t.name", {user_id}),
        membership_from);
}

Result<std::vector<Membership>> IdentityStore::members_of_tenant(const std::string& tenant_id) {
    return all<Membership>(
        db_.query(std::string(kMembershipSelect) + "WHERE m.tenant_id = ? ORDER BY u.username", {tenant_id}),
        membership_from);
}

Status IdentityStore::sync_memberships(const std::string& user_id, const std::string& source,
                                       const std::vector<std::pair<std::string, std::string>>& tenant_roles) {
    int64_t t = now();
    ++writes_;
    return db_.transaction([&](Connection& c) -> Status {
        if (auto r = c.query("DELETE FROM memberships WHERE user_id = ? AND source = ?", {user_id, source});
            !r)
            return r.error();
        for (const auto& [tenant_id, role] : tenant_roles) {
            // A membership an admin set by hand wins over the directory's.
            auto r = c.query("INSERT INTO memberships (tenant_id, user_id, role, source, created_at) VALUES "
                             "(?, ?, ?, ?, ?) "
                             "ON CONFLICT (tenant_id, user_id) DO NOTHING",
                             {tenant_id, user_id, role, source, t});
            if (!r) return r.error();
        }
        return Ok{};
    });
}

Status IdentityStore::create_api_key(const ApiKey& k) {
    return status_of(write("INSERT INTO api_keys (id, prefix, secret_hash, tenant_id, user_id, name, scopes, "
                           "created_at, created_by, "
                           "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           {k.id, k.prefix, k.secret_hash, k.tenant_id, k.user_id, k.name, k.scopes,
                            k.created_at, k.created_by, opt(k.expires_at)}));
}

Result<std::optional<KeyGrant>> IdentityStore::find_key_grant(const std::string& secret_hash) {
    std::string sql =
        std::string("SELECT ") + kKeyColumns + ", " + kUserColumns +
        ", m.role FROM api_keys k JOIN tenants t ON t.id = k.tenant_id JOIN users u ON u.id = k.user_id "
        "LEFT JOIN memberships m ON m.tenant_id = k.tenant_id AND m.user_id = k.user_id "
        "WHERE k.secret_hash = ?";
    return first<KeyGrant>(db_.query(sql, {secret_hash}), [](const Row& r) {
        KeyGrant g{key_from(r), user_from(r, 14), std::nullopt};
        if (!r.is_null(14 + kUserWidth)) g.role = r.text(14 + kUserWidth);
        return g;
    });
}

Result<std::optional<ApiKey>> IdentityStore::find_key_by_prefix(const std::string& prefix) {
    std::string sql =
        std::string("SELECT ") + kKeyColumns +
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id JOIN users u ON u.id = k.user_id "
        "WHERE k.prefix = ?";
    return first<ApiKey>(db_.query(sql, {prefix}), key_from);
}

Result<std::vector<ApiKey>> IdentityStore::list_keys(const std::string& tenant_id) {
    std::string sql =
        std::string("SELECT ") + kKeyColumns +
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id JOIN users u ON u.id = k.user_id "
        "WHERE k.tenant_id = ? ORDER BY k.created_at, k.prefix";
    return all<ApiKey>(db_.query(sql, {tenant_id}), key_from);
}

Result<bool> IdentityStore::revoke_key(const std::string& key_id) {
    auto r = write("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", {now(), key_id});
    if (!r) return r.error();
    return *r > 0;
}

Status IdentityStore::touch_key(const std::string& key_id) {
    // Not counted as a write: when a key was last used does not change what it may do.
    return status_of(db_.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", {now(), key_id}));
}

namespace {
constexpr const char* kBindingColumns = "b.id, b.tenant_id, t.name, b.user_id, u.username, b.kind, b.value, "
                                        "b.name, b.scopes, b.created_by, b.created_at";
constexpr size_t kBindingWidth = 11;
constexpr const char* kBindingJoins =
    " FROM certificate_bindings b JOIN tenants t ON t.id = b.tenant_id JOIN users u ON u.id = b.user_id ";

CertificateBinding binding_from(const Row& r) {
    return CertificateBinding{r.text(0), r.text(1), r.text(2), r.text(3), r.text(4),  r.text(5),
                              r.text(6), r.text(7), r.text(8), r.text(9), r.integer(10)};
}
} // namespace

Status IdentityStore::create_certificate_binding(const CertificateBinding& b) {
    auto existing = first<bool>(
        db_.query("SELECT 1 FROM certificate_bindings WHERE kind = ? AND value = ?", {b.match, b.value}),
        [](const Row&) { return true; });
    if (!existing) return existing.error();
    if (*existing)
        return make_error(ErrorCode::invalid_argument,
                          "a certificate with this " + b.match + " is already bound", b.match);
    return status_of(write("INSERT INTO certificate_bindings (id, tenant_id, user_id, kind, value, name, scopes, "
                           "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           {b.id, b.tenant_id, b.user_id, b.match, b.value, b.name, b.scopes, b.created_at,
                            b.created_by}));
}

Result<std::optional<CertificateGrant>> IdentityStore::find_certificate_grant(const std::string& match,
                                                                              const std::string& value) {
    std::string sql = std::string("SELECT ") + kBindingColumns + ", " + kUserColumns + ", m.role" + kBindingJoins +
                      "LEFT JOIN memberships m ON m.tenant_id = b.tenant_id AND m.user_id = b.user_id "
                      "WHERE b.kind = ? AND b.value = ?";
    return first<CertificateGrant>(db_.query(sql, {match, value}), [](const Row& r) {
        CertificateGrant g{binding_from(r), user_from(r, kBindingWidth), std::nullopt};
        if (!r.is_null(kBindingWidth + kUserWidth)) g.role = r.text(kBindingWidth + kUserWidth);
        return g;
    });
}

Result<std::optional<CertificateBinding>> IdentityStore::find_certificate_binding(const std::string& id) {
    return first<CertificateBinding>(
        db_.query(std::string("SELECT ") + kBindingColumns + kBindingJoins + "WHERE b.id = ?", {id}), binding_from);
}

Result<std::vector<CertificateBinding>> IdentityStore::list_certificate_bindings(const std::string& tenant_id) {
    return all<CertificateBinding>(db_.query(std::string("SELECT ") + kBindingColumns + kBindingJoins +
                                                 "WHERE b.tenant_id = ? ORDER BY b.created_at, b.id",
                                             {tenant_id}),
                                   binding_from);
}

Result<bool> IdentityStore::delete_certificate_binding(const std::string& id) {
    auto r = write("DELETE FROM certificate_bindings WHERE id = ?", {id});
    if (!r) return r.error();
    return *r > 0;
}

Status IdentityStore::create_session(const Session& s) {
    return status_of(
        write("INSERT INTO sessions (id, secret_hash, user_id, tenant_id, method, created_at, expires_at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)",
              {s.id, s.secret_hash, s.user_id, opt(s.tenant_id), s.method, s.created_at, s.expires_at}));
}

Result<std::optional<SessionGrant>> IdentityStore::find_session_grant(const std::string& secret_hash) {
    std::string sql =
        std::string("SELECT s.id, s.secret_hash, s.user_id, s.method, s.tenant_id, s.created_at, "
                    "s.expires_at, s.revoked_at, ") +
        kUserColumns + " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = ?";
    return first<SessionGrant>(db_.query(sql, {secret_hash}), [](const Row& r) {
        Session s;
        s.id = r.text(0);
        s.secret_hash = r.text(1);
        s.user_id = r.text(2);
        s.method = r.text(3);
        if (!r.is_null(4)) s.tenant_id = r.text(4);
        s.created_at = r.integer(5);
        s.expires_at = r.integer(6);
        s.revoked_at = r.optional_integer(7);
        return SessionGrant{s, user_from(r, 8)};
    });
}

Result<int64_t> IdentityStore::revoke_sessions_of_user(const std::string& user_id) {
    return write("UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                 {now(), user_id});
}

Result<bool> IdentityStore::revoke_session(const std::string& secret_hash) {
    auto r = write("UPDATE sessions SET revoked_at = ? WHERE secret_hash = ? AND revoked_at IS NULL",
                   {now(), secret_hash});
    if (!r) return r.error();
    return *r > 0;
}

Result<std::optional<std::string>> IdentityStore::get_setting(const std::string& name) {
    return first<std::string>(db_.query("SELECT value FROM settings WHERE name = ?", {name}),
                              [](const Row& r) { return r.text(0); });
}

Status IdentityStore::put_setting(const std::string& name, const std::string& value,
                                  const std::string& actor) {
    return status_of(
        write("INSERT INTO settings (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
              "updated_by = excluded.updated_by",
              {name, value, now(), actor}));
}

} // namespace codepilot::store
