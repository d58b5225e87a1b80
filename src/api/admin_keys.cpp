// API keys of a tenant: list, create (the plaintext is in this one response only), revoke.
// Developers manage their own keys; admins and owners every key of the tenant. A key never
// gets scopes beyond those of the key that created it.
#include "api/sync_reply.h"

namespace codepilot::api {

using server::Exchange;
using server::http::status;
using server::http::verb;

json key_json(const store::ApiKey& k, int64_t now) {
    auto opt = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
    std::string state = k.revoked_at                             ? "revoked"
                        : (k.expires_at && *k.expires_at <= now) ? "expired"
                                                                 : "active";
    return json{{"prefix", k.prefix},
                {"name", k.name},
                {"tenant", k.tenant_name},
                {"user", k.username},
                {"scopes", k.scopes},
                {"state", state},
                {"created_at", k.created_at},
                {"created_by", k.created_by},
                {"expires_at", opt(k.expires_at)},
                {"revoked_at", opt(k.revoked_at)},
                {"last_used_at", opt(k.last_used_at)}};
}

namespace {
bool manages_all(const auth::TenantAccess& access) {
    return access.permissions & auth::bit(auth::Permission::keys_manage);
}
} // namespace

Result<auth::TenantAccess> key_tenant(ApiContext& ctx, const Exchange& ex) {
    auto access = ctx.auth->access_in(caller_of(ex), ex.path_param("tenant"));
    if (!access) return access.error();
    if (!*access)
        return make_error(ErrorCode::not_found, "tenant '" + ex.path_param("tenant") + "' not found");
    return **access;
}

// A key acts with its user's powers, so who may hold one is the rule that keeps a tenant admin
// from becoming anything more: keys only for members of this tenant whose role is not above
// the creator's, and a server owner's keys only by that owner.
Status may_hold_key(ApiContext& ctx, const auth::Principal& creator, const auth::TenantAccess& access,
                    const std::string& username) {
    if (username == creator.username) return Ok{};
    if (!manages_all(access))
        return make_error(ErrorCode::permission_denied, "you may create keys only for yourself", "user");
    auto not_member =
        make_error(ErrorCode::not_found,
                   "'" + username + "' is not a member of tenant '" + access.tenant.name + "'", "user");
    auto members = ctx.auth->store().members_of_tenant(access.tenant.id);
    if (!members) return members.error();
    const store::Membership* target = nullptr;
    for (const auto& m : *members)
        if (m.username == username) target = &m;
    if (!target) return not_member;
    auto user = ctx.auth->store().find_user_by_id(target->user_id);
    if (!user) return user.error();
    if (!*user) return not_member;
    if ((*user)->server_owner)
        return make_error(ErrorCode::permission_denied,
                          "a server owner's keys are created only by that owner", "user");
    auto target_role = auth::parse_role(target->role);
    const int creator_rank = creator.server_owner ? auth::role_rank(auth::Role::owner)
                             : access.role        ? auth::role_rank(*access.role)
                                                  : 0;
    if (!target_role || auth::role_rank(*target_role) > creator_rank)
        return make_error(ErrorCode::permission_denied,
                          "'" + username + "' is " + target->role +
                              " here, above your role: a key for them would act above it",
                          "user");
    return Ok{};
}

Result<auth::ScopeSet> requested_scopes(const json& body, const auth::Principal& creator) {
    std::string scope_text;
    auto it = body.find("scopes");
    if (it == body.end()) return field_error("scopes", "is required (completion, chat, embeddings, admin)");
    if (it->is_string()) {
        scope_text = it->get<std::string>();
    } else if (it->is_array()) {
        for (const auto& s : *it) {
            if (!s.is_string()) return field_error("scopes", "must be strings");
            scope_text += (scope_text.empty() ? "" : ",") + s.get<std::string>();
        }
    } else {
        return field_error("scopes", "must be an array of strings or a comma-separated string");
    }
    std::string bad;
    auto scopes = auth::parse_scopes(scope_text, &bad);
    if (!scopes)
        return field_error("scopes", bad.empty() ? "must name at least one scope"
                                                 : "has an unknown scope '" + bad +
                                                       "' (completion, chat, embeddings, admin)");
    if ((*scopes & ~creator.scopes) != 0)
        return make_error(ErrorCode::permission_denied,
                          "a credential cannot get scopes its creator lacks (yours: " +
                              auth::scopes_to_string(creator.scopes) + ")",
                          "scopes");
    return *scopes;
}

namespace {

Reply list_keys(ApiContext& ctx, const Exchange& ex) {
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto keys = ctx.auth->store().list_keys(access->tenant.id);
    if (!keys) return reply_error(keys.error());
    const auto& p = caller_of(ex);
    json data = json::array();
    for (const auto& k : *keys)
        if (manages_all(*access) || k.user_id == p.user_id)
            data.push_back(key_json(k, ctx.auth->store().now()));
    return reply(json{{"data", data}});
}

Reply create_key(ApiContext& ctx, const Exchange& ex) {
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    const auto& p = caller_of(ex);
    auto user = opt_string(*body, "user");
    if (!user) return reply_error(user.error());
    std::string username = user->value_or(p.username);
    if (auto allowed = may_hold_key(ctx, p, *access, username); !allowed) return reply_error(allowed.error());

    auto scopes = requested_scopes(*body, p);
    if (!scopes) return reply_error(scopes.error());
    std::optional<int64_t> ttl;
    if (auto e = body->find("expires_in"); e != body->end() && !e->is_null()) {
        if (e->is_number_integer() && e->get<int64_t>() > 0)
            ttl = e->get<int64_t>();
        else if (e->is_string())
            ttl = auth::parse_duration_seconds(e->get<std::string>());
        if (!ttl)
            return reply_error(
                field_error("expires_in", "must be a positive duration like \"30d\", \"12h\" or seconds"));
    }
    auto name = opt_string(*body, "name");
    if (!name) return reply_error(name.error());
    auto issued = auth::issue_api_key(ctx.auth->store(), access->tenant.name, username, *scopes, ttl,
                                      name->value_or(""), p.username);
    if (!issued) return reply_error(issued.error());
    json out = key_json(issued->record, ctx.auth->store().now());
    record_admin_change(ctx, ex, "key.create", issued->record.prefix, nullptr,
                        out); // before the secret is added
    out["key"] = issued->plaintext;
    return reply(out, status::created);
}

Reply revoke_key(ApiContext& ctx, const Exchange& ex) {
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto key = ctx.auth->store().find_key_by_prefix(ex.path_param("prefix"));
    if (!key) return reply_error(key.error());
    // Keys of other tenants, and other people's keys for a developer, do not exist here.
    const auto& p = caller_of(ex);
    if (!*key || (*key)->tenant_id != access->tenant.id ||
        (!manages_all(*access) && (*key)->user_id != p.user_id))
        return reply_error(
            make_error(ErrorCode::not_found, "key '" + ex.path_param("prefix") + "' not found"));
    if (auto allowed = may_hold_key(ctx, p, *access, (*key)->username);
        !allowed && allowed.error().code == ErrorCode::permission_denied) // a former member's key may go
        return reply_error(
            make_error(ErrorCode::permission_denied,
                       "key '" + (*key)->prefix + "' belongs to someone above your role here"));
    auto revoked = ctx.auth->store().revoke_key((*key)->id);
    if (!revoked) return reply_error(revoked.error());
    auto after = ctx.auth->store().find_key_by_prefix((*key)->prefix);
    if (!after || !*after) return reply_error(make_error(ErrorCode::internal, "key vanished while revoking"));
    json shown = key_json(**after, ctx.auth->store().now());
    record_admin_change(ctx, ex, "key.revoke", (*key)->prefix, key_json(**key, ctx.auth->store().now()),
                        shown);
    return reply(shown);
}

} // namespace

void register_admin_key_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    add_route(router, verb::get, "/admin/v1/tenants/{tenant}/keys", context, send_reply<list_keys>);
    add_route(router, verb::post, "/admin/v1/tenants/{tenant}/keys", context, send_reply<create_key>);
    add_route(router, verb::delete_, "/admin/v1/tenants/{tenant}/keys/{prefix}", context,
              send_reply<revoke_key>);
}

} // namespace codepilot::api
