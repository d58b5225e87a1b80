#include "auth/access_rules.h"

#include <array>

namespace codepilot::auth {

using P = Permission;

std::string_view to_string(Permission p) {
    switch (p) {
    case P::models_read:
        return "models.read";
    case P::completion:
        return "completion";
    case P::chat:
        return "chat";
    case P::embeddings:
        return "embeddings";
    case P::tenant_read:
        return "tenant.read";
    case P::members_write:
        return "members.write";
    case P::keys_own:
        return "keys.own";
    case P::keys_manage:
        return "keys.manage";
    case P::audit_read:
        return "audit.read";
    case P::usage_read:
        return "usage.read";
    case P::tenant_delete:
        return "tenant.delete";
    case P::server_admin:
        return "server.admin";
    case P::quotas_write:
        return "quotas.write";
    case P::guard_write:
        return "guard.write";
    }
    return "?";
}

namespace {
constexpr std::array<std::string_view, 5> kRoleNames = {"owner", "admin", "developer", "auditor", "viewer"};
constexpr PermissionSet kInference =
    uint32_t(P::models_read) | uint32_t(P::completion) | uint32_t(P::chat) | uint32_t(P::embeddings);
constexpr PermissionSet kTenantAdmin = kInference | uint32_t(P::tenant_read) | uint32_t(P::members_write) |
                                       uint32_t(P::keys_own) | uint32_t(P::keys_manage) |
                                       uint32_t(P::audit_read) | uint32_t(P::usage_read) |
                                       uint32_t(P::quotas_write) | uint32_t(P::guard_write);
} // namespace

std::optional<Role> parse_role(std::string_view name) {
    for (size_t i = 0; i < kRoleNames.size(); ++i)
        if (kRoleNames[i] == name) return static_cast<Role>(i);
    return std::nullopt;
}

std::string_view to_string(Role role) {
    return kRoleNames[static_cast<size_t>(role)];
}

int role_rank(Role role) {
    switch (role) {
    case Role::owner:
        return 5;
    case Role::admin:
        return 4;
    case Role::developer:
        return 3;
    case Role::auditor:
        return 2;
    case Role::viewer:
        return 1;
    }
    return 0;
}

PermissionSet role_permissions(Role role) {
    switch (role) {
    case Role::owner:
        return kTenantAdmin | bit(P::tenant_delete);
    case Role::admin:
        return kTenantAdmin;
    case Role::developer:
        return kInference | bit(P::tenant_read) | bit(P::keys_own);
    case Role::auditor:
        return bit(P::audit_read) | bit(P::usage_read); // and nothing else
    case Role::viewer:
        return bit(P::models_read) | bit(P::tenant_read);
    }
    return 0;
}

std::optional<ScopeSet> parse_scopes(std::string_view text, std::string* bad) {
    ScopeSet out = 0;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find(',', start);
        if (end == std::string_view::npos) end = text.size();
        auto item = text.substr(start, end - start);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (item == "completion")
            out |= uint32_t(Scope::completion);
        else if (item == "chat")
            out |= uint32_t(Scope::chat);
        else if (item == "embeddings")
            out |= uint32_t(Scope::embeddings);
        else if (item == "admin")
            out |= uint32_t(Scope::admin);
        else {
            if (bad) *bad = std::string(item);
            return std::nullopt;
        }
        start = end + 1;
    }
    if (out == 0) return std::nullopt;
    return out;
}

std::string scopes_to_string(ScopeSet scopes) {
    std::string out;
    for (auto [bitv, name] : {std::pair{Scope::completion, "completion"}, std::pair{Scope::chat, "chat"},
                              std::pair{Scope::embeddings, "embeddings"}, std::pair{Scope::admin, "admin"}}) {
        if (!(scopes & uint32_t(bitv))) continue;
        if (!out.empty()) out += ",";
        out += name;
    }
    return out;
}

PermissionSet scope_permissions(ScopeSet scopes, bool server_owner) {
    PermissionSet out = bit(P::models_read) | bit(P::tenant_read) | bit(P::keys_own);
    if (scopes & uint32_t(Scope::completion)) out |= bit(P::completion);
    if (scopes & uint32_t(Scope::chat)) out |= bit(P::chat);
    if (scopes & uint32_t(Scope::embeddings)) out |= bit(P::embeddings);
    if (scopes & uint32_t(Scope::admin)) {
        out |= bit(P::members_write) | bit(P::keys_manage) | bit(P::audit_read) | bit(P::usage_read) |
               bit(P::tenant_delete) | bit(P::quotas_write) | bit(P::guard_write);
        if (server_owner) out |= bit(P::server_admin);
    }
    return out;
}

const std::vector<RouteRule>& route_rules() {
    using A = Access;
    static const std::vector<RouteRule> rules = {
        // Probes and the sign-in itself.
        {"GET", "/health", A::probe},
        {"GET", "/ready", A::probe},
        {"POST", "/auth/login", A::public_route},
        {"POST", "/auth/logout", A::authenticated},
        {"GET", "/auth/me", A::authenticated},
        // Inference (OpenAI, Tabby, llama.cpp, Copilot proxy).
        {"GET", "/v1/models", A::permission, P::models_read},
        {"GET", "/v1/models/{model}", A::permission, P::models_read},
        {"POST", "/v1/completions", A::permission, P::completion},
        {"POST", "/v1/chat/completions", A::permission, P::chat},
        {"POST", "/v1/embeddings", A::permission, P::embeddings},
        {"POST", "/v1/events", A::permission, P::completion},
        {"GET", "/v1/health", A::permission, P::models_read},
        {"POST", "/v1/health", A::permission, P::models_read},
        {"GET", "/v1beta/server_setting", A::permission, P::models_read},
        {"GET", "/v1beta/models", A::permission, P::models_read},
        {"GET", "/metrics", A::metrics_scrape, P::server_admin},
        {"POST", "/infill", A::permission, P::completion},
        {"POST", "/complete", A::permission, P::completion},
        {"POST", "/v1/code/complete", A::permission, P::completion},
        {"POST", "/v1/engines/{engine}/completions", A::permission, P::completion},
        // Administration.
        {"GET", "/admin/v1/roles", A::authenticated},
        {"GET", "/admin/v1/models", A::permission, P::server_admin},                // state, replicas, errors
        {"PUT", "/admin/v1/models/{model}/canary", A::permission, P::server_admin}, // promote / roll back
        {"POST", "/admin/v1/models", A::permission, P::server_admin},               // register (and load)
        {"POST", "/admin/v1/models/{model}/load", A::permission, P::server_admin},
        {"POST", "/admin/v1/models/{model}/unload", A::permission, P::server_admin}, // drains first
        {"DELETE", "/admin/v1/models/{model}", A::permission, P::server_admin}, // an unloaded registration
        {"GET", "/admin/v1/models/{model}/compare", A::permission, P::server_admin}, // canary vs base
        {"GET", "/admin/v1/tenants/{tenant}/quotas", A::permission, P::tenant_read, "tenant"},
        {"PUT", "/admin/v1/tenants/{tenant}/quotas", A::permission, P::quotas_write, "tenant"},
        // The guard policy: compliance (auditors) and admins read it, admins set it.
        {"GET", "/admin/v1/tenants/{tenant}/guard", A::permission, P::audit_read, "tenant"},
        {"PUT", "/admin/v1/tenants/{tenant}/guard", A::permission, P::guard_write, "tenant"},
        {"DELETE", "/admin/v1/tenants/{tenant}/guard", A::permission, P::guard_write, "tenant"},
        {"POST", "/admin/v1/tenants/{tenant}/guard/scan", A::permission, P::guard_write, "tenant"},
        {"GET", "/admin/v1/usage", A::permission, P::usage_read, "tenant"},
        {"GET", "/admin/v1/usage/events", A::permission, P::usage_read, "tenant"},
        {"GET", "/admin/v1/tenants", A::authenticated}, // lists only what the caller may see
        {"POST", "/admin/v1/tenants", A::permission, P::server_admin},
        {"GET", "/admin/v1/tenants/{tenant}", A::permission, P::tenant_read, "tenant"},
        {"DELETE", "/admin/v1/tenants/{tenant}", A::permission, P::tenant_delete, "tenant"},
        {"GET", "/admin/v1/tenants/{tenant}/members", A::permission, P::tenant_read, "tenant"},
        {"POST", "/admin/v1/tenants/{tenant}/members", A::permission, P::members_write, "tenant"},
        {"PUT", "/admin/v1/tenants/{tenant}/members/{user}", A::permission, P::members_write, "tenant"},
        {"DELETE", "/admin/v1/tenants/{tenant}/members/{user}", A::permission, P::members_write, "tenant"},
        {"GET", "/admin/v1/tenants/{tenant}/keys", A::permission, P::keys_own, "tenant"},
        {"POST", "/admin/v1/tenants/{tenant}/keys", A::permission, P::keys_own, "tenant"},
        {"DELETE", "/admin/v1/tenants/{tenant}/keys/{prefix}", A::permission, P::keys_own, "tenant"},
        // Client-certificate bindings act like keys without expiry: tenant admins and owners only.
        {"GET", "/admin/v1/tenants/{tenant}/certificates", A::permission, P::keys_manage, "tenant"},
        {"POST", "/admin/v1/tenants/{tenant}/certificates", A::permission, P::keys_manage, "tenant"},
        {"DELETE", "/admin/v1/tenants/{tenant}/certificates/{id}", A::permission, P::keys_manage, "tenant"},
        {"GET", "/admin/v1/users/{user}", A::permission, P::server_admin},
        {"POST", "/admin/v1/users", A::permission, P::server_admin},
        {"PATCH", "/admin/v1/users/{user}", A::permission, P::server_admin},
        {"DELETE", "/admin/v1/users/{user}/sessions", A::permission, P::server_admin},
        {"GET", "/admin/v1/settings/{name}", A::permission, P::server_admin},
        {"PUT", "/admin/v1/settings/{name}", A::permission, P::server_admin},
    };
    return rules;
}

const RouteRule* find_route_rule(std::string_view method, std::string_view pattern) {
    for (const auto& r : route_rules())
        if (method == r.method && pattern == r.pattern) return &r;
    return nullptr;
}

} // namespace codepilot::auth
