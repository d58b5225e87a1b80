// Sign-in: POST /auth/login (local password or LDAP) returns a session token usable as a
// Bearer; POST /auth/logout ends it; GET /auth/me says who the caller is and where.
#include "api/sync_reply.h"

#include <spdlog/spdlog.h>

namespace codepilot::api {
namespace {

using server::Exchange;
using server::http::status;
using server::http::verb;

struct LoginRequest {
    std::string username, password, tenant;
};

Result<LoginRequest> parse_login(const std::string& body) {
    auto parsed = parse_object(body);
    if (!parsed) return parsed.error();
    auto username = required_string(*parsed, "username");
    if (!username) return username.error();
    auto password = required_string(*parsed, "password");
    if (!password) return password.error();
    auto tenant = opt_string(*parsed, "tenant");
    if (!tenant) return tenant.error();
    return LoginRequest{auth::canonical_username(*username), *password, tenant->value_or("")};
}

Reply invalid_credentials() {
    Reply r = reply_error(make_error(ErrorCode::unauthenticated, "invalid credentials"));
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"codepilot\"");
    return r;
}

// Runs on the sign-in lane: Argon2 and the directory never hold an I/O thread.
Reply sign_in(ApiContext& ctx, const Exchange& ex, const LoginRequest& req) {
    if (req.username.size() > 256 || req.password.size() > 1024) return invalid_credentials();
    auto signed_in = ctx.auth->sign_in(req.username, req.password, req.tenant);
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
        if (ctx.throttle) ctx.throttle->failed(ex.remote_address(), req.username);
        return invalid_credentials();
    }
    if (ctx.throttle) ctx.throttle->succeeded(req.username);
    const auto& p = signed_in->principal;
    json out = {{"token", signed_in->token},
                {"token_type", "Bearer"},
                {"expires_at", signed_in->expires_at},
                {"user", {{"username", p.username}, {"server_owner", p.server_owner}}},
                {"tenant", p.tenant_name.empty() ? json(nullptr) : json(p.tenant_name)},
                {"role", p.role ? json(std::string(auth::to_string(*p.role))) : json(nullptr)}};
    return reply(out);
}

// Everything before the sign-in itself; nullopt: go on and sign in.
std::optional<Reply> refuse_login(ApiContext& ctx, Exchange& ex, const Result<LoginRequest>& req) {
    if (!ctx.auth) return reply_error(make_error(ErrorCode::unavailable, "sign-in is not available"));
    if (!req) return reply_error(req.error());
    ex.usage.attempted_user = req->username.substr(0, 128); // failed sign-ins are audited with the name tried
    const int64_t wait = ctx.throttle ? ctx.throttle->retry_after(ex.remote_address(), req->username) : 0;
    if (wait <= 0) return std::nullopt;
    Reply r = reply_error(
        make_error(ErrorCode::rate_limited,
                   "too many failed sign-ins from this address or for this account; try again in " +
                       std::to_string(wait) + " s"));
    r.headers.emplace_back("Retry-After", std::to_string(wait));
    return r;
}

// One response at the end, from named values: GCC 12 may destroy temporaries handed to a
// coroutine twice.
server::asio::awaitable<void> login(Exchange& ex, ApiContext& ctx) {
    const auto req = parse_login(ex.request().body());
    std::optional<Reply> reply = refuse_login(ctx, ex, req);
    if (!reply) {
        reply = co_await blocking(ctx, Lane::sign_in, [&ctx, &ex, &req] { return sign_in(ctx, ex, *req); });
        if (!reply) reply = busy_reply();
    }
    co_await ex.respond(reply->status, std::move(reply->body), "application/json", reply->headers);
}

Reply logout(ApiContext& ctx, const Exchange& ex) {
    const auto& p = caller_of(ex);
    auto body =
        ex.request().body().empty() ? Result<json>(json::object()) : parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    if (!ctx.auth || p.method != "session")
        return reply_error(make_error(ErrorCode::invalid_argument,
                                      "only a session signs out; API keys are revoked with DELETE "
                                      "/admin/v1/tenants/{tenant}/keys/{prefix}"));
    auto everywhere = opt_bool(*body, "everywhere");
    if (!everywhere) return reply_error(everywhere.error());
    if (everywhere->value_or(false)) { // every session of this person, on every device
        auto ended = ctx.auth->store().revoke_sessions_of_user(p.user_id);
        if (!ended) return reply_error(ended.error());
        return reply(json{{"signed_out", true}, {"sessions_ended", *ended}});
    }
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
    add_route(router, verb::post, "/auth/login", context, login);
    add_route(router, verb::post, "/auth/logout", context, send_reply<logout>);
    add_route(router, verb::get, "/auth/me", context, send_reply<me>);
}

} // namespace codepilot::api
