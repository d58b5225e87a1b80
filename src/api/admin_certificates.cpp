// Client certificates (mTLS) bound to users: list, bind, unbind. A binding is a credential
// like an API key (its user's role in the tenant, its own scopes), so the same rule decides who
// may hold one: members whose role is not above the binder's, a server owner's only by that owner.
#include "api/sync_reply.h"

namespace codepilot::api {

using server::Exchange;
using server::http::status;
using server::http::verb;

namespace {

json binding_json(const store::CertificateBinding& b) {
    return json{{"id", b.id},         {"tenant", b.tenant_name},    {"user", b.username},
                {"match", b.match},   {"value", b.value},           {"name", b.name},
                {"scopes", b.scopes}, {"created_at", b.created_at}, {"created_by", b.created_by}};
}

Reply list_certificates(ApiContext& ctx, const Exchange& ex) {
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto bindings = ctx.auth->store().list_certificate_bindings(access->tenant.id);
    if (!bindings) return reply_error(bindings.error());
    json data = json::array();
    for (const auto& b : *bindings) data.push_back(binding_json(b));
    return reply(json{{"data", data}});
}

// Exactly one of fingerprint, subject and san names what the binding matches.
Result<std::pair<std::string, std::string>> binding_match(const json& body) {
    std::optional<std::pair<std::string, std::string>> found;
    for (const char* kind : {"fingerprint", "subject", "san"}) {
        auto value = opt_string(body, kind);
        if (!value) return value.error();
        if (!*value) continue;
        if (found)
            return field_error(kind, "give exactly one of fingerprint, subject and san (also got " +
                                         found->first + ")");
        auto canonical = auth::canonical_certificate_value(kind, **value);
        if (!canonical) return canonical.error();
        found.emplace(kind, std::move(*canonical));
    }
    if (!found)
        return field_error("fingerprint",
                           "is required (or subject, or san): what identifies the certificate");
    return *found;
}

Reply bind_certificate(ApiContext& ctx, const Exchange& ex) {
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    const auto& p = caller_of(ex);
    auto user = required_string(*body, "user");
    if (!user) return reply_error(user.error());
    const std::string username = auth::canonical_username(*user);
    if (auto allowed = may_hold_key(ctx, p, *access, username); !allowed) return reply_error(allowed.error());
    auto match = binding_match(*body);
    if (!match) return reply_error(match.error());
    auto scopes = requested_scopes(*body, p);
    if (!scopes) return reply_error(scopes.error());
    auto name = opt_string(*body, "name");
    if (!name) return reply_error(name.error());
    auto holder = ctx.auth->store().find_user(username);
    if (!holder) return reply_error(holder.error());
    if (!*holder)
        return reply_error(make_error(ErrorCode::not_found, "user '" + username + "' not found", "user"));

    store::CertificateBinding b;
    b.id = store::IdentityStore::new_id();
    b.tenant_id = access->tenant.id;
    b.tenant_name = access->tenant.name;
    b.user_id = (*holder)->id;
    b.username = username;
    b.match = match->first;
    b.value = match->second;
    b.name = name->value_or("");
    b.scopes = auth::scopes_to_string(*scopes);
    b.created_by = p.username;
    b.created_at = ctx.auth->store().now();
    if (auto st = ctx.auth->store().create_certificate_binding(b); !st) return reply_error(st.error());
    json out = binding_json(b);
    record_admin_change(ctx, ex, "certificate.bind", b.id, nullptr, out);
    return reply(out, status::created);
}

Reply unbind_certificate(ApiContext& ctx, const Exchange& ex) {
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto binding = ctx.auth->store().find_certificate_binding(ex.path_param("id"));
    if (!binding) return reply_error(binding.error());
    if (!*binding || (*binding)->tenant_id != access->tenant.id) // other tenants' bindings do not exist here
        return reply_error(
            make_error(ErrorCode::not_found, "certificate binding '" + ex.path_param("id") + "' not found"));
    if (auto allowed = may_hold_key(ctx, caller_of(ex), *access, (*binding)->username);
        !allowed && allowed.error().code == ErrorCode::permission_denied) // a former member's binding may go
        return reply_error(make_error(ErrorCode::permission_denied,
                                      "this certificate belongs to someone above your role here"));
    auto removed = ctx.auth->store().delete_certificate_binding((*binding)->id);
    if (!removed) return reply_error(removed.error());
    record_admin_change(ctx, ex, "certificate.unbind", (*binding)->id, binding_json(**binding), nullptr);
    return reply(json{{"id", (*binding)->id}, {"removed", true}});
}

} // namespace

void register_admin_certificate_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    add_route(router, verb::get, "/admin/v1/tenants/{tenant}/certificates", context,
              send_reply<list_certificates>);
    add_route(router, verb::post, "/admin/v1/tenants/{tenant}/certificates", context,
              send_reply<bind_certificate>);
    add_route(router, verb::delete_, "/admin/v1/tenants/{tenant}/certificates/{id}", context,
              send_reply<unbind_certificate>);
}

} // namespace codepilot::api
