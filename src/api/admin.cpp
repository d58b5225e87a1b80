// Admin REST under /admin/v1: tenants, members, users, roles and the LDAP/OIDC settings. The
// gate has already checked the route's permission in the tenant the path names; handlers add
// the finer rules (only owners make owners, the last owner stays, secrets never leave).
#include "api/sync_reply.h"
#include "auth/password.h"
#include "auth/settings_json.h"
#include "core/clock.h"

#include <spdlog/spdlog.h>

namespace codepilot::api {

using server::Exchange;
using server::http::status;
using server::http::verb;

void record_admin_change(ApiContext& ctx, const Exchange& ex, const std::string& action,
                         const std::string& object, json before, json after) {
    const auto& p = caller_of(ex);
    spdlog::info("admin: {} {} by {} ({}{}) request {}", action, object, p.username, p.method,
                 p.key_prefix.empty() ? "" : " " + p.key_prefix, ex.request_id());
    if (!ctx.audit) return;
    audit::Record r;
    r.kind = "admin";
    r.at_ms = unix_millis();
    r.request_id = ex.request_id();
    r.tenant = p.tenant_name;
    r.username = p.username;
    r.key_prefix = p.key_prefix;
    r.auth_method = p.method;
    r.client_ip = ex.remote_address();
    r.user_agent = std::string(ex.request()[server::http::field::user_agent].substr(0, 256));
    r.action = action;
    r.object = object;
    r.before = std::move(before);
    r.after = std::move(after);
    // Queued ahead of the call's own record, which the response waits for under `sync`.
    if (!ctx.audit->append(std::move(r)))
        spdlog::error("audit: buffer full, admin change {} {} not recorded", action, object);
}

json tenant_json(const store::Tenant& t) {
    return json{{"name", t.name}, {"created_at", t.created_at}};
}

json user_json(const store::User& u) {
    return json{{"username", u.username},
                {"kind", u.kind},
                {"source", u.source},
                {"display_name", u.display_name},
                {"email", u.email},
                {"disabled", u.disabled},
                {"server_owner", u.server_owner},
                {"created_at", u.created_at},
                {"last_login_at", u.last_login_at ? json(*u.last_login_at) : json(nullptr)}};
}

namespace {

Error not_found(const std::string& what) {
    return make_error(ErrorCode::not_found, what + " not found");
}

// The tenant the path names, and the caller's standing there (the gate admitted it).
Result<auth::TenantAccess> path_tenant(ApiContext& ctx, const Exchange& ex) {
    auto access = ctx.auth->access_in(caller_of(ex), ex.path_param("tenant"));
    if (!access) return access.error();
    if (!*access) return not_found("tenant '" + ex.path_param("tenant") + "'");
    return **access;
}

bool may_grant(const auth::Principal& p, const auth::TenantAccess& access, auth::Role role) {
    if (role != auth::Role::owner) return true;
    return p.server_owner || access.role == auth::Role::owner;
}

Reply roles(ApiContext&, const Exchange&) {
    json out = json::array();
    for (const auto& name : config::role_names()) {
        json perms = json::array();
        auto set = auth::role_permissions(*auth::parse_role(name));
        for (uint32_t b = 1; b <= auth::bit(auth::kLastPermission); b <<= 1)
            if (set & b) perms.push_back(std::string(auth::to_string(static_cast<auth::Permission>(b))));
        out.push_back(json{{"name", name}, {"permissions", perms}});
    }
    return reply(
        json{{"roles", out}, {"scopes", json::array({"completion", "chat", "embeddings", "admin"})}});
}

Reply list_tenants(ApiContext& ctx, const Exchange& ex) {
    const auto& p = caller_of(ex);
    auto tenants = ctx.auth->store().list_tenants();
    if (!tenants) return reply_error(tenants.error());
    json data = json::array();
    for (const auto& t : *tenants) {
        auto access = ctx.auth->access_in(p, t.name);
        if (!access) return reply_error(access.error());
        if (!*access || !((*access)->permissions & auth::bit(auth::Permission::tenant_read))) continue;
        json item = tenant_json(t);
        item["role"] = (*access)->role ? json(std::string(auth::to_string(*(*access)->role))) : json(nullptr);
        data.push_back(item);
    }
    return reply(json{{"data", data}});
}

Reply create_tenant(ApiContext& ctx, const Exchange& ex) {
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto name = required_string(*body, "name");
    if (!name) return reply_error(name.error());
    if (!auth::valid_tenant_name(*name))
        return reply_error(field_error(
            "name",
            "must be 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"));
    auto tenant = ctx.auth->store().create_tenant(*name);
    if (!tenant) return reply_error(tenant.error());
    record_admin_change(ctx, ex, "tenant.create", *name, nullptr, tenant_json(*tenant));
    return reply(tenant_json(*tenant), status::created);
}

Reply get_tenant(ApiContext& ctx, const Exchange& ex) {
    auto access = path_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto members = ctx.auth->store().members_of_tenant(access->tenant.id);
    if (!members) return reply_error(members.error());
    json out = tenant_json(access->tenant);
    out["members"] = members->size();
    out["role"] = access->role ? json(std::string(auth::to_string(*access->role))) : json(nullptr);
    return reply(out);
}

Reply delete_tenant(ApiContext& ctx, const Exchange& ex) {
    auto access = path_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    if (auto st = ctx.auth->store().delete_tenant(access->tenant.id); !st) return reply_error(st.error());
    record_admin_change(ctx, ex, "tenant.delete", access->tenant.name, tenant_json(access->tenant), nullptr);
    return reply(json{{"name", access->tenant.name}, {"deleted", true}});
}

Reply list_members(ApiContext& ctx, const Exchange& ex) {
    auto access = path_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto members = ctx.auth->store().members_of_tenant(access->tenant.id);
    if (!members) return reply_error(members.error());
    json data = json::array();
    for (const auto& m : *members) {
        auto user = ctx.auth->store().find_user_by_id(m.user_id);
        if (!user) return reply_error(user.error());
        json item = *user ? user_json(**user) : json{{"username", m.username}};
        item["role"] = m.role;
        item["membership_source"] = m.source;
        data.push_back(item);
    }
    return reply(json{{"data", data}});
}

Result<auth::Role> role_field(const json& body) {
    auto role = required_string(body, "role");
    if (!role) return role.error();
    auto parsed = auth::parse_role(*role);
    if (!parsed) return field_error("role", "must be one of owner, admin, developer, auditor, viewer");
    return *parsed;
}

// Refuses to leave a tenant without an owner.
Status keeps_an_owner(ApiContext& ctx, const std::string& tenant_id, const std::string& user_id) {
    auto members = ctx.auth->store().members_of_tenant(tenant_id);
    if (!members) return members.error();
    int other_owners = 0;
    bool is_owner = false;
    for (const auto& m : *members) {
        if (m.role != "owner") continue;
        if (m.user_id == user_id)
            is_owner = true;
        else
            ++other_owners;
    }
    if (is_owner && other_owners == 0)
        return make_error(ErrorCode::invalid_argument,
                          "a tenant keeps at least one owner: make another member owner first");
    return Ok{};
}

Result<store::User> create_local_user(ApiContext& ctx, const json& body, const std::string& username) {
    auto kind = opt_string(body, "kind");
    if (!kind) return kind.error();
    auto password = opt_string(body, "password");
    if (!password) return password.error();
    auto display = opt_string(body, "display_name");
    if (!display) return display.error();
    auto email = opt_string(body, "email");
    if (!email) return email.error();
    store::User u;
    u.username = username;
    u.kind = kind->value_or("person");
    if (u.kind != "person" && u.kind != "service")
        return field_error("kind", "must be 'person' or 'service'");
    if (*password) {
        if (u.kind == "service")
            return field_error("password", "service accounts sign in with API keys only");
        if (auto problem = auth::password_problem(**password); !problem.empty())
            return field_error("password", problem);
        auto hash = auth::hash_password(**password);
        if (!hash) return hash.error();
        u.password_hash = *hash;
    }
    u.display_name = display->value_or("");
    u.email = email->value_or("");
    return ctx.auth->store().create_user(u);
}

Result<std::string> username_field(const json& body) {
    auto username = required_string(body, "username");
    if (!username) return username.error();
    std::string name = auth::canonical_username(*username);
    if (!auth::valid_username(name))
        return field_error("username", "must be 1-128 printable characters without spaces or '/'");
    return name;
}

Reply add_member(ApiContext& ctx, const Exchange& ex) {
    auto access = path_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto username = username_field(*body);
    if (!username) return reply_error(username.error());
    auto role = role_field(*body);
    if (!role) return reply_error(role.error());
    if (!may_grant(caller_of(ex), *access, *role))
        return reply_error(make_error(ErrorCode::permission_denied, "only an owner can make owners"));
    auto user = ctx.auth->store().find_user(*username);
    if (!user) return reply_error(user.error());
    store::User member;
    bool created = false;
    if (*user) {
        // Only a server owner sees every account; a tenant admin learns nothing about people
        // outside the tenant beyond that the name is taken.
        if (!caller_of(ex).server_owner) {
            auto members = ctx.auth->store().members_of_tenant(access->tenant.id);
            if (!members) return reply_error(members.error());
            for (const auto& m : *members)
                if (m.user_id == (*user)->id)
                    return reply_error(make_error(ErrorCode::invalid_argument,
                                                  "'" + *username +
                                                      "' is already a member; change the role with PUT "
                                                      "/admin/v1/tenants/" +
                                                      access->tenant.name + "/members/" + *username,
                                                  "username"));
            return reply_error(
                make_error(ErrorCode::invalid_argument,
                           "the username '" + *username +
                               "' is taken: choose another for a new account, or ask a server owner "
                               "to add an existing account to this tenant",
                           "username"));
        }
        member = **user;
    } else {
        auto fresh = create_local_user(ctx, *body, *username);
        if (!fresh) return reply_error(fresh.error());
        member = *fresh;
        created = true;
    }
    if (auto st = ctx.auth->store().set_membership(access->tenant.id, member.id,
                                                   std::string(auth::to_string(*role)));
        !st)
        return reply_error(st.error());
    record_admin_change(ctx, ex, "member.add", access->tenant.name + "/" + *username, nullptr,
                        json{{"role", auth::to_string(*role)}, {"created_user", created}});
    json out = user_json(member);
    out["role"] = std::string(auth::to_string(*role));
    out["created_user"] = created;
    return reply(out, status::created);
}

// The member the path names, or 404 (also for users that exist but are not members here).
Result<store::Membership> path_member(ApiContext& ctx, const Exchange& ex, const auth::TenantAccess& access) {
    auto members = ctx.auth->store().members_of_tenant(access.tenant.id);
    if (!members) return members.error();
    for (const auto& m : *members)
        if (m.username == ex.path_param("user")) return m;
    return not_found("member '" + ex.path_param("user") + "' of tenant '" + access.tenant.name + "'");
}

Reply change_member(ApiContext& ctx, const Exchange& ex) {
    auto access = path_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto member = path_member(ctx, ex, *access);
    if (!member) return reply_error(member.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto role = role_field(*body);
    if (!role) return reply_error(role.error());
    const auto& p = caller_of(ex);
    if (!may_grant(p, *access, *role) ||
        (member->role == "owner" && !may_grant(p, *access, auth::Role::owner)))
        return reply_error(
            make_error(ErrorCode::permission_denied, "only an owner can make or unmake owners"));
    if (*role != auth::Role::owner)
        if (auto st = keeps_an_owner(ctx, access->tenant.id, member->user_id); !st)
            return reply_error(st.error());
    if (auto st = ctx.auth->store().set_membership(access->tenant.id, member->user_id,
                                                   std::string(auth::to_string(*role)));
        !st)
        return reply_error(st.error());
    record_admin_change(ctx, ex, "member.role", access->tenant.name + "/" + member->username,
                        json{{"role", member->role}}, json{{"role", auth::to_string(*role)}});
    return reply(json{{"username", member->username}, {"role", auth::to_string(*role)}});
}

Reply remove_member(ApiContext& ctx, const Exchange& ex) {
    auto access = path_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto member = path_member(ctx, ex, *access);
    if (!member) return reply_error(member.error());
    if (member->role == "owner" && !may_grant(caller_of(ex), *access, auth::Role::owner))
        return reply_error(make_error(ErrorCode::permission_denied, "only an owner can remove an owner"));
    if (auto st = keeps_an_owner(ctx, access->tenant.id, member->user_id); !st)
        return reply_error(st.error());
    auto removed = ctx.auth->store().remove_membership(access->tenant.id, member->user_id);
    if (!removed) return reply_error(removed.error());
    record_admin_change(ctx, ex, "member.remove", access->tenant.name + "/" + member->username,
                        json{{"role", member->role}}, nullptr);
    return reply(json{{"username", member->username}, {"removed", true}});
}

// The user the path names (a server admin's route: any account), or 404.
Result<store::User> path_user(ApiContext& ctx, const Exchange& ex) {
    auto user = ctx.auth->store().find_user(auth::canonical_username(ex.path_param("user")));
    if (!user) return user.error();
    if (!*user) return not_found("user '" + ex.path_param("user") + "'");
    return **user;
}

Reply create_user(ApiContext& ctx, const Exchange& ex) {
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto username = username_field(*body);
    if (!username) return reply_error(username.error());
    auto user = create_local_user(ctx, *body, *username);
    if (!user) return reply_error(user.error());
    record_admin_change(ctx, ex, "user.create", *username, nullptr, user_json(*user));
    return reply(user_json(*user), status::created);
}

Reply get_user(ApiContext& ctx, const Exchange& ex) {
    auto user = path_user(ctx, ex);
    if (!user) return reply_error(user.error());
    auto memberships = ctx.auth->store().memberships_of_user(user->id);
    if (!memberships) return reply_error(memberships.error());
    json out = user_json(*user);
    out["memberships"] = json::array();
    for (const auto& m : *memberships)
        out["memberships"].push_back(json{{"tenant", m.tenant_name}, {"role", m.role}, {"source", m.source}});
    return reply(out);
}

Reply update_user(ApiContext& ctx, const Exchange& ex) {
    auto user = path_user(ctx, ex);
    if (!user) return reply_error(user.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    store::User u = *user;
    for (const auto& [key, _] : body->items())
        if (key != "disabled" && key != "password" && key != "display_name" && key != "email")
            return reply_error(field_error(
                key, "is not a user field that can be changed (disabled, password, display_name, email)"));
    auto disabled = opt_bool(*body, "disabled");
    if (!disabled) return reply_error(disabled.error());
    auto password = opt_string(*body, "password");
    if (!password) return reply_error(password.error());
    auto display = opt_string(*body, "display_name");
    if (!display) return reply_error(display.error());
    auto email = opt_string(*body, "email");
    if (!email) return reply_error(email.error());
    if (*disabled) u.disabled = **disabled;
    if (*display) u.display_name = **display;
    if (*email) u.email = **email;
    if (*password) {
        if (u.source != "local" || u.kind != "person")
            return reply_error(field_error("password", "only local people have passwords here"));
        if (auto problem = auth::password_problem(**password); !problem.empty())
            return reply_error(field_error("password", problem));
        auto hash = auth::hash_password(**password);
        if (!hash) return reply_error(hash.error());
        u.password_hash = *hash;
    }
    if (auto st = ctx.auth->store().update_user(u); !st) return reply_error(st.error());
    json after = user_json(u);
    if (*password || u.disabled) { // a new password, or a disabled account, ends every session
        auto ended = ctx.auth->store().revoke_sessions_of_user(u.id);
        if (!ended) return reply_error(ended.error());
        after["sessions_ended"] = *ended;
    }
    if (*password) after["password"] = "(changed)"; // never the password or its hash
    record_admin_change(ctx, ex, "user.update", u.username, user_json(*user), after);
    return reply(user_json(u));
}

Reply end_user_sessions(ApiContext& ctx, const Exchange& ex) {
    auto user = path_user(ctx, ex);
    if (!user) return reply_error(user.error());
    auto ended = ctx.auth->store().revoke_sessions_of_user(user->id);
    if (!ended) return reply_error(ended.error());
    record_admin_change(ctx, ex, "user.sign_out_everywhere", user->username, nullptr,
                        json{{"sessions_ended", *ended}});
    return reply(json{{"username", user->username}, {"sessions_ended", *ended}});
}

Reply get_setting(ApiContext& ctx, const Exchange& ex) {
    const auto& name = ex.path_param("name");
    if (name == "ldap") return reply(auth::ldap_to_json(ctx.auth->ldap_settings()));
    if (name == "oidc") return reply(auth::oidc_to_json(ctx.auth->oidc_settings()));
    return reply_error(not_found("setting '" + name + "' (ldap, oidc)"));
}

Reply put_setting(ApiContext& ctx, const Exchange& ex) {
    const auto& name = ex.path_param("name");
    if (name != "ldap" && name != "oidc")
        return reply_error(not_found("setting '" + name + "' (ldap, oidc)"));
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    std::string stored;
    json shown;
    const json before = name == "ldap" ? auth::ldap_to_json(ctx.auth->ldap_settings())
                                       : auth::oidc_to_json(ctx.auth->oidc_settings());
    if (name == "ldap") {
        auto parsed = auth::ldap_from_json(*body, ctx.auth->ldap_settings());
        if (!parsed) return reply_error(parsed.error());
        if (auto st = auth::check_bind_password(*parsed); !st) return reply_error(st.error());
        shown = auth::ldap_to_json(*parsed);
        stored = shown.dump();
        if (auto st = ctx.auth->store().put_setting(name, stored, caller_of(ex).username); !st)
            return reply_error(st.error());
        ctx.auth->set_ldap(*parsed);
    } else {
        auto parsed = auth::oidc_from_json(*body, ctx.auth->oidc_settings());
        if (!parsed) return reply_error(parsed.error());
        stored = auth::oidc_to_json(*parsed).dump();
        shown = auth::oidc_to_json(*parsed);
        if (auto st = ctx.auth->store().put_setting(name, stored, caller_of(ex).username); !st)
            return reply_error(st.error());
        ctx.auth->set_oidc(*parsed);
    }
    record_admin_change(ctx, ex, "settings.update", name, before, shown);
    return reply(shown);
}

} // namespace

void register_admin_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    auto route = [&](verb method, const char* path, ContextHandler fn) {
        add_route(router, method, path, context, fn);
    };
    route(verb::get, "/admin/v1/roles", send_reply<roles>);
    route(verb::get, "/admin/v1/tenants", send_reply<list_tenants>);
    route(verb::post, "/admin/v1/tenants", send_reply<create_tenant>);
    route(verb::get, "/admin/v1/tenants/{tenant}", send_reply<get_tenant>);
    route(verb::delete_, "/admin/v1/tenants/{tenant}", send_reply<delete_tenant>);
    route(verb::get, "/admin/v1/tenants/{tenant}/members", send_reply<list_members>);
    route(verb::post, "/admin/v1/tenants/{tenant}/members", send_reply<add_member>);
    route(verb::put, "/admin/v1/tenants/{tenant}/members/{user}", send_reply<change_member>);
    route(verb::delete_, "/admin/v1/tenants/{tenant}/members/{user}", send_reply<remove_member>);
    route(verb::post, "/admin/v1/users", send_reply<create_user>);
    route(verb::get, "/admin/v1/users/{user}", send_reply<get_user>);
    route(verb::patch, "/admin/v1/users/{user}", send_reply<update_user>);
    route(verb::delete_, "/admin/v1/users/{user}/sessions", send_reply<end_user_sessions>);
    route(verb::get, "/admin/v1/settings/{name}", send_reply<get_setting>);
    route(verb::put, "/admin/v1/settings/{name}", send_reply<put_setting>);
    register_admin_key_routes(router, context);
    register_admin_certificate_routes(router, context);
    register_admin_quota_routes(router, context);
    register_admin_guard_routes(router, context);
}

} // namespace codepilot::api
