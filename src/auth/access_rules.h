// RBAC: roles and key scopes → permissions, and the one table of route → required permission.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace codepilot::auth {

enum class Permission : uint32_t {
    models_read = 1u << 0, // list models, health, client settings
    completion = 1u << 1,  // code and text completion, acceptance events
    chat = 1u << 2,
    embeddings = 1u << 3,
    tenant_read = 1u << 4,   // see the tenant and its members
    members_write = 1u << 5, // add, change and remove members
    keys_own = 1u << 6,      // create, list and revoke one's own keys
    keys_manage = 1u << 7,   // every key of the tenant
    audit_read = 1u << 8,
    usage_read = 1u << 9,
    tenant_delete = 1u << 10,
    server_admin = 1u << 11, // tenants, users, LDAP/OIDC settings (server owners only)
    quotas_write = 1u << 12, // set the tenant's quotas
    guard_write = 1u << 13,  // set the tenant's guard policy and own rules
};
using PermissionSet = uint32_t;
inline constexpr Permission kLastPermission = Permission::guard_write;
inline PermissionSet bit(Permission p) {
    return static_cast<uint32_t>(p);
}
std::string_view to_string(Permission p);

enum class Role { owner, admin, developer, auditor, viewer };
std::optional<Role> parse_role(std::string_view name);
std::string_view to_string(Role role);
PermissionSet role_permissions(Role role);
int role_rank(Role role); // owner highest

enum class Scope : uint32_t { completion = 1, chat = 2, embeddings = 4, admin = 8 };
using ScopeSet = uint32_t;
constexpr ScopeSet kAllScopes = 15;
// "completion,chat" → bits; nullopt names the first unknown scope in `bad`.
std::optional<ScopeSet> parse_scopes(std::string_view text, std::string* bad = nullptr);
std::string scopes_to_string(ScopeSet scopes);
// What a credential with these scopes may be used for at most.
PermissionSet scope_permissions(ScopeSet scopes, bool server_owner);

// What a route needs. `tenant_param`: the path parameter that names the tenant the check is
// made in; otherwise the check is made in the tenant the credential acts for.
// probe: public and not a call (not audited, not counted). public_route: no credentials
// needed, but audited (sign-in). metrics_scrape: public while auth.metrics_public, else
// server admins only; not audited.
enum class Access { probe, public_route, authenticated, permission, metrics_scrape };
struct RouteRule {
    const char* method;
    const char* pattern;
    Access access;
    Permission permission = Permission::models_read;
    const char* tenant_param = nullptr;
};
const std::vector<RouteRule>& route_rules();
// The rule for a registered route pattern, or nullptr (then the route is refused: fail closed).
const RouteRule* find_route_rule(std::string_view method, std::string_view pattern);

} // namespace codepilot::auth
