// Sign-in: POST /auth/login (local password or LDAP) returns a session token usable as a
// Bearer; POST /auth/logout ends it; GET /auth/me says who the caller is and where.
#include "api/sync_reply.h"

#include <spdlog/spdlog.h>

namespace codepilot::api {
namespace {

using server::Exchange;
using server::http::status;
using server::http::verb;

Reply login(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.auth) return reply_error(make_error(ErrorCode::unavailable, "sign-in is not available"));
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto username = required_string(*body, "username");
    if (!username) return reply_error(username.error());
    auto password = required_string(*body, "password");
    if (!password) return reply_error(password.error());
    auto tenant = opt_string(*body, "tenant");
    if (!tenant) return reply_error(tenant.error());
    if (username->size() > 256 || password->size() > 1024)
        return reply_error(make_error(ErrorCode::unauthenticated, "invalid credentials"));

    auto signed_in = ctx.auth->sign_in(*username, *password, tenant->value_or(""));
    if (!signed_in) {
        const auto& e = signed_in.error();
        if (e.code == ErrorCode::unavailable) {
            spdlog::warn("sign-in unavailable: {}", e.message);
            return reply_error(
                make_error(ErrorCode::unavailable,
                           "sign-in is temporarily unavailable (the directory cannot be reached); "
                           "API keys keep working"));
        }
        if (e.code == ErrorCode::not_found) return reply_error(e); // authenticated: may learn its own tenants
        spdlog::info("request {}: sign-in refused: {}", ex.request_id(), e.message);
        Reply r = reply_error(make_error(ErrorCode::unauthenticated, "invalid credentials"));
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"codepilot\"");
        return r;
    }
    const auto& p = signed_in->principal;
    json out = {{"token", signed_in->token},
                {"token_type", "Bearer"},
                {"expires_at", signed_in->expires_at},
                {"user", {{"username", p.username}, {"server_owner", p.server_owner}}},
                {"tenant", p.tenant_name.empty() ? json(nullptr) : json(p.tenant_name)},
                {"role", p.role ? json(std::string(auth::to_string(*p.role))) : json(nullptr)}};
    return reply(out);
}

Reply logout(ApiContext& ctx, const Exchange& ex) {
    const auto& p = caller_of(ex);
    if (!ctx.auth || p.method != "session")
        return reply_error(make_error(ErrorCode::invalid_argument,
                                      "only a session signs out; API keys are revoked with DELETE "
                                      "/admin/v1/tenants/{tenant}/keys/{prefix}"));
    if (auto st = ctx.auth->sign_out(p); !st) return reply_error(st.error());
    return reply(json{{"signed_out", true}});
}

Reply me(ApiContext& ctx, const Exchange& ex) {
    const auto& p = caller_of(ex);
    json tenants = json::array();
    if (ctx.auth && !p.user_id.empty()) {
        auto memberships = ctx.auth->store().memberships_of_user(p.user_id);
        if (!memberships) return reply_error(memberships.error());
        for (const auto& m : *memberships)
            if (p.method == "session" || m.tenant_id == p.tenant_id)
                tenants.push_back(json{{"tenant", m.tenant_name}, {"role", m.role}, {"source", m.source}});
    }
    json perms = json::array();
    auto granted = p.permissions(p.role);
    for (uint32_t b = 1; b != 0 && b <= auth::bit(auth::kLastPermission); b <<= 1)
        if (granted & b) perms.push_back(std::string(auth::to_string(static_cast<auth::Permission>(b))));
    json out = {{"username", p.username},
                {"method", p.method},
                {"server_owner", p.server_owner},
                {"tenant", p.tenant_name.empty() ? json(nullptr) : json(p.tenant_name)},
                {"role", p.role ? json(std::string(auth::to_string(*p.role))) : json(nullptr)},
                {"scopes", auth::scopes_to_string(p.scopes)},
                {"permissions", perms},
                {"memberships", tenants}};
    if (!p.key_prefix.empty()) out["key_prefix"] = p.key_prefix;
    return reply(out);
}

} // namespace

void register_auth_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    add_route(router, verb::post, "/auth/login", context, send_reply<login>);
    add_route(router, verb::post, "/auth/logout", context, send_reply<logout>);
    add_route(router, verb::get, "/auth/me", context, send_reply<me>);
}

} // namespace codepilot::api
