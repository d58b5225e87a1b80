// Handlers that do blocking store work as plain functions returning a Reply; a one-line
// coroutine sends it. Keeps the admin and sign-in logic out of coroutine frames.
#pragma once

#include "api/api.h"
#include "api/errors.h"
#include "api/request_fields.h"

namespace codepilot::api {

struct Reply {
    server::http::status status = server::http::status::ok;
    std::string body;
    server::Headers headers;
};

inline Reply reply(const json& body, server::http::status st = server::http::status::ok) {
    return Reply{st, body.dump(-1, ' ', false, json::error_handler_t::replace), {}};
}

inline Reply reply_error(const Error& raw) {
    const Error error = public_error(raw);
    Reply r;
    r.status = status_for(error.code);
    r.body = server::error_body(r.status, error.message, error.param);
    if (error.code == ErrorCode::unavailable || error.code == ErrorCode::overloaded)
        r.headers.emplace_back("Retry-After", "1");
    return r;
}

using SyncHandler = Reply (*)(ApiContext&, const server::Exchange&);

inline Reply busy_reply() {
    return reply_error(make_error(ErrorCode::overloaded, "the server is busy; try again shortly"));
}

// Runs the handler on the lane's worker pool (never on an I/O thread), then sends its reply.
template <SyncHandler handler, Lane lane = Lane::store>
server::asio::awaitable<void> send_reply(server::Exchange& ex, ApiContext& ctx) {
    auto r = co_await blocking(ctx, lane, [&ctx, &ex] { return handler(ctx, ex); });
    if (!r) r = busy_reply();
    co_await ex.respond(r->status, std::move(r->body), "application/json", r->headers);
}

// An admin change: to the log and, as a record with the actor and the object before and
// after (secrets masked by the caller), to the audit trail.
void record_admin_change(ApiContext& ctx, const server::Exchange& ex, const std::string& action,
                         const std::string& object, json before, json after);

json tenant_json(const store::Tenant& t);
json key_json(const store::ApiKey& k, int64_t now);
json user_json(const store::User& u);

// The tenant a /admin/v1/tenants/{tenant}/... call names, as the caller may see it (else not_found).
Result<auth::TenantAccess> key_tenant(ApiContext& ctx, const server::Exchange& ex);
// Whether `creator` may give `username` a credential in that tenant (keys, certificate bindings):
// members only, not above the creator's role, a server owner's only by that owner.
Status may_hold_key(ApiContext& ctx, const auth::Principal& creator, const auth::TenantAccess& access,
                    const std::string& username);

// The "scopes" of a request body (array or comma-separated), never beyond the creator's.
Result<auth::ScopeSet> requested_scopes(const json& body, const auth::Principal& creator);

void register_admin_key_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_admin_certificate_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_admin_quota_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_admin_guard_routes(server::Router& router, std::shared_ptr<ApiContext> context);

} // namespace codepilot::api
