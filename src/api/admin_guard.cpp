// A tenant's guard policy and own rules (docs/guard.md):
//   GET    /admin/v1/tenants/{tenant}/guard        the stored policy and the one in force
//   PUT    /admin/v1/tenants/{tenant}/guard        set it (validated, audited, in force at once)
//   DELETE /admin/v1/tenants/{tenant}/guard        back to the configuration's policy
//   POST   /admin/v1/tenants/{tenant}/guard/scan   what a policy finds in a sample text
// Findings name rules, lines and byte ranges, never the values.
#include "api/guard_policies.h"
#include "api/sync_reply.h"
#include "store/guard_store.h"

namespace codepilot::api {

using server::Exchange;
using server::http::status;
using server::http::verb;

namespace {

Reply no_guard() {
    return reply_error(make_error(ErrorCode::unavailable, "the guard is not configured on this server"));
}

json stored_json(const std::optional<store::GuardPolicyRow>& row) {
    if (!row) return nullptr;
    json spec = json::parse(row->spec, nullptr, false);
    return json{{"policy", spec.is_discarded() ? json(nullptr) : spec},
                {"updated_at", row->updated_at},
                {"updated_by", row->updated_by}};
}

Reply answer(ApiContext& ctx, const auth::TenantAccess& access,
             const std::optional<store::GuardPolicyRow>& row, status st = status::ok) {
    const std::string& tenant = access.tenant.name;
    json out{{"tenant", tenant},
             {"stored", stored_json(row)},
             {"effective", describe(*ctx.guard->policy_for(tenant), *ctx.guard->configured().rules)}};
    if (auto error = ctx.guard->stored_error(tenant)) out["error"] = *error;
    return reply(out, st);
}

Reply get_guard(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.guard) return no_guard();
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto row = store::GuardStore(ctx.auth->store().database()).policy_of(access->tenant.id);
    if (!row) return reply_error(row.error());
    return answer(ctx, *access, *row);
}

Reply put_guard(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.guard) return no_guard();
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto spec = parse_guard_spec(*body);
    if (!spec) return reply_error(spec.error());
    if (to_json(*spec).empty())
        return reply_error(make_error(ErrorCode::invalid_argument,
                                      "the policy sets nothing; DELETE it to return to the configuration's"));
    // Refused here, with the rule's name, rather than found broken by the next request.
    if (auto policy = ctx.guard->compile(access->tenant.name, *spec); !policy)
        return reply_error(policy.error());
    store::GuardStore guard_store(ctx.auth->store().database());
    auto before = guard_store.policy_of(access->tenant.id);
    if (!before) return reply_error(before.error());
    const json stored = to_json(*spec);
    store::GuardPolicyRow row{access->tenant.id, access->tenant.name, stored.dump(), 0,
                              caller_of(ex).username};
    if (auto st = guard_store.set_policy(row); !st) return reply_error(st.error());
    if (auto st = ctx.guard->reload(ctx.auth->store().database()); !st) return reply_error(st.error());
    record_admin_change(ctx, ex, "guard.set", "tenant " + access->tenant.name,
                        *before ? json::parse((*before)->spec, nullptr, false) : json(nullptr), stored);
    auto after = guard_store.policy_of(access->tenant.id);
    if (!after) return reply_error(after.error());
    return answer(ctx, *access, *after);
}

Reply delete_guard(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.guard) return no_guard();
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    store::GuardStore guard_store(ctx.auth->store().database());
    auto before = guard_store.policy_of(access->tenant.id);
    if (!before) return reply_error(before.error());
    if (!*before)
        return reply_error(make_error(ErrorCode::not_found,
                                      "tenant '" + access->tenant.name + "' has no guard policy of its own"));
    if (auto removed = guard_store.remove_policy(access->tenant.id); !removed)
        return reply_error(removed.error());
    if (auto st = ctx.guard->reload(ctx.auth->store().database()); !st) return reply_error(st.error());
    record_admin_change(ctx, ex, "guard.clear", "tenant " + access->tenant.name,
                        json::parse((*before)->spec, nullptr, false), nullptr);
    return answer(ctx, *access, std::nullopt);
}

json findings_json(const std::vector<guard::Finding>& found) {
    json out = json::array();
    for (const auto& f : found)
        out.push_back(json{{"rule", f.rule}, {"line", f.line}, {"start", f.begin}, {"end", f.end}});
    return out;
}

// A dry run: the text under the policy in force, or under a proposed one ("policy").
Reply scan_guard(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.guard) return no_guard();
    auto access = key_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    for (const auto& [k, _] : body->items())
        if (k != "text" && k != "policy")
            return reply_error(field_error(k, "is not a field of a scan (text, policy)"));
    auto text = body->find("text");
    if (text == body->end() || !text->is_string())
        return reply_error(field_error("text", "must be a string"));
    std::shared_ptr<const GuardPolicy> policy = ctx.guard->policy_for(access->tenant.name);
    if (auto proposed = body->find("policy"); proposed != body->end()) {
        auto spec = parse_guard_spec(*proposed);
        if (!spec) return reply_error(spec.error());
        auto compiled = ctx.guard->compile(access->tenant.name, *spec);
        if (!compiled) return reply_error(compiled.error());
        policy = std::make_shared<const GuardPolicy>(std::move(*compiled));
    }
    guard::ScanOptions options;
    options.pii = policy->settings.pii;
    const std::string& sample = text->get_ref<const std::string&>();
    json out{{"tenant", access->tenant.name},
             {"prompts", to_string(policy->settings.prompts)},
             {"output", to_string(policy->settings.output)},
             {"findings", findings_json(policy->rules ? policy->rules->scan(sample, options)
                                                      : std::vector<guard::Finding>{})}};
    if (policy->output) out["output_findings"] = findings_json(policy->output->rules->scan(sample, options));
    return reply(out);
}

} // namespace

void register_admin_guard_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    add_route(router, verb::get, "/admin/v1/tenants/{tenant}/guard", context, send_reply<get_guard>);
    add_route(router, verb::put, "/admin/v1/tenants/{tenant}/guard", context, send_reply<put_guard>);
    add_route(router, verb::delete_, "/admin/v1/tenants/{tenant}/guard", context, send_reply<delete_guard>);
    add_route(router, verb::post, "/admin/v1/tenants/{tenant}/guard/scan", context, send_reply<scan_guard>);
}

} // namespace codepilot::api
