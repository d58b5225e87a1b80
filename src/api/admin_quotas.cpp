// Quotas of a tenant (GET/PUT /admin/v1/tenants/{tenant}/quotas) and usage reports
// (GET /admin/v1/usage?tenant=…&from=…&to=…&group_by=user|model|key|day[&format=csv]).
#include "api/sync_reply.h"
#include "core/clock.h"
#include "quota/quota.h"

#include <set>

namespace codepilot::api {

using server::Exchange;
using server::http::status;
using server::http::verb;

namespace {

constexpr int64_t kMaxLimit = int64_t{1} << 40; // beyond any real use: a typo, not a limit

json limits_json(const store::QuotaLimits& l) {
    auto v = [](const std::optional<int64_t>& x) { return x ? json(*x) : json(nullptr); };
    return json{{"rpm", v(l.rpm)},
                {"tpm", v(l.tpm)},
                {"daily_tokens", v(l.daily_tokens)},
                {"monthly_tokens", v(l.monthly_tokens)},
                {"concurrency", v(l.concurrency)}};
}

Result<auth::TenantAccess> quota_tenant(ApiContext& ctx, const Exchange& ex) {
    auto access = ctx.auth->access_in(caller_of(ex), ex.path_param("tenant"));
    if (!access) return access.error();
    if (!*access)
        return make_error(ErrorCode::not_found, "tenant '" + ex.path_param("tenant") + "' not found");
    return **access;
}

Reply get_quotas(ApiContext& ctx, const Exchange& ex) {
    auto access = quota_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    store::QuotaStore qs(ctx.auth->store().database());
    auto rows = qs.quotas(access->tenant.id);
    if (!rows) return reply_error(rows.error());
    json data = json::array();
    for (const auto& q : *rows) {
        json item = limits_json(q.limits);
        item["scope"] = q.scope;
        if (q.scope == "user") {
            auto user = ctx.auth->store().find_user_by_id(q.subject);
            item["user"] = user && *user ? json((*user)->username) : json(q.subject);
        } else if (q.scope == "key") {
            item["key"] = q.subject;
        }
        item["updated_at"] = q.updated_at;
        data.push_back(item);
    }
    return reply(json{{"tenant", access->tenant.name}, {"data", data}});
}

Reply put_quotas(ApiContext& ctx, const Exchange& ex) {
    auto access = quota_tenant(ctx, ex);
    if (!access) return reply_error(access.error());
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    static const std::set<std::string> known = {"user",           "key",        "rpm", "tpm", "daily_tokens",
                                                "monthly_tokens", "concurrency"};
    for (const auto& [k, _] : body->items())
        if (!known.count(k))
            return reply_error(field_error(
                k, "is not a quota field (user, key, rpm, tpm, daily_tokens, monthly_tokens, concurrency)"));
    store::QuotaRow row;
    row.tenant_id = access->tenant.id;
    row.scope = "tenant";
    auto user = opt_string(*body, "user");
    if (!user) return reply_error(user.error());
    auto key = opt_string(*body, "key");
    if (!key) return reply_error(key.error());
    if (*user && *key)
        return reply_error(field_error("key", "set a quota for a user or for a key, not both"));
    std::string label = "tenant " + access->tenant.name;
    if (*user) { // a member of this tenant, else not found (as for other tenants' people)
        auto members = ctx.auth->store().members_of_tenant(access->tenant.id);
        if (!members) return reply_error(members.error());
        for (const auto& m : *members)
            if (m.username == **user) row.subject = m.user_id;
        if (row.subject.empty())
            return reply_error(make_error(ErrorCode::not_found, "member '" + **user + "' not found", "user"));
        row.scope = "user";
        label = access->tenant.name + "/" + **user;
    }
    if (*key) {
        auto k = ctx.auth->store().find_key_by_prefix(**key);
        if (!k) return reply_error(k.error());
        if (!*k || (*k)->tenant_id != access->tenant.id)
            return reply_error(make_error(ErrorCode::not_found, "key '" + **key + "' not found", "key"));
        row.scope = "key";
        row.subject = **key;
        label = **key;
    }
    // Absent fields keep their value, null removes that limit, a number sets it.
    store::QuotaLimits before;
    if (auto current =
            ctx.quotas ? ctx.quotas->limits_of(row.tenant_id, row.scope, row.subject) : std::nullopt)
        before = *current;
    row.limits = before;
    for (auto [name, field] : {std::pair{"rpm", &row.limits.rpm}, std::pair{"tpm", &row.limits.tpm},
                               std::pair{"daily_tokens", &row.limits.daily_tokens},
                               std::pair{"monthly_tokens", &row.limits.monthly_tokens},
                               std::pair{"concurrency", &row.limits.concurrency}}) {
        auto it = body->find(name);
        if (it == body->end()) continue;
        if (it->is_null()) {
            field->reset();
            continue;
        }
        if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > kMaxLimit)
            return reply_error(
                field_error(name, "must be a whole number from 1 to 1099511627776, or null for no limit"));
        *field = it->get<int64_t>();
    }
    store::QuotaStore qs(ctx.auth->store().database());
    if (auto st = qs.set_quota(row); !st) return reply_error(st.error());
    if (ctx.quotas)
        if (auto st = ctx.quotas->reload(); !st) return reply_error(st.error()); // in force at once here
    record_admin_change(ctx, ex, "quota.set", label, limits_json(before), limits_json(row.limits));
    json out = limits_json(row.limits);
    out["scope"] = row.scope;
    return reply(out);
}

std::optional<std::string> day_param(const std::string& text) {
    if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
    for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
    return text;
}

// RFC 4180 quoting, and no formulas: a cell a spreadsheet would run (=, +, -, @, tab, CR at its
// start) gets a leading apostrophe, so a user or model name cannot become a formula.
std::string csv_field(const std::string& raw) {
    const bool formula =
        !raw.empty() && std::string_view("=+-@\t\r").find(raw.front()) != std::string_view::npos;
    const std::string s = formula ? "'" + raw : raw;
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

// The report's tenant (admitted by the gate), days and grouping from the query string.
struct ReportQuery {
    std::string tenant, from, to, group_by;
    bool csv = false;
};

Result<ReportQuery> report_query(const Exchange& ex) {
    ReportQuery q;
    q.tenant = ex.query_param("tenant");
    const int64_t now_ms = unix_millis();
    std::string from_text = ex.query_param("from"), to_text = ex.query_param("to");
    auto from = from_text.empty() ? std::optional<std::string>(quota::month_of(now_ms) + "-01")
                                  : day_param(from_text);
    auto to = to_text.empty() ? std::optional<std::string>(quota::day_of(now_ms)) : day_param(to_text);
    if (!from) return field_error("from", "must be a day like 2026-11-01");
    if (!to) return field_error("to", "must be a day like 2026-11-30");
    if (*to < *from) return field_error("to", "is before 'from'");
    q.from = *from;
    q.to = *to;
    q.group_by = ex.query_param("group_by");
    if (q.group_by.empty()) q.group_by = "day";
    q.csv = ex.query_param("format") == "csv";
    return q;
}

Reply csv_reply(std::string csv) {
    Reply r{status::ok, std::move(csv), {}};
    r.headers.emplace_back("Content-Type", "text/csv; charset=utf-8");
    return r;
}

Reply usage(ApiContext& ctx, const Exchange& ex) {
    auto q = report_query(ex);
    if (!q) return reply_error(q.error());
    if (ctx.quotas) (void)ctx.quotas->flush_usage(); // include what this server has not written yet
    store::QuotaStore qs(ctx.auth->store().database());
    auto totals = qs.usage(q->tenant, q->from, q->to, q->group_by);
    if (!totals) return reply_error(totals.error());
    if (q->csv) {
        std::string csv = q->group_by + ",requests,prompt_tokens,completion_tokens,cached_tokens\n";
        for (const auto& t : *totals)
            csv += csv_field(t.group) + "," + std::to_string(t.requests) + "," +
                   std::to_string(t.prompt_tokens) + "," + std::to_string(t.completion_tokens) + "," +
                   std::to_string(t.cached_tokens) + "\n";
        return csv_reply(std::move(csv));
    }
    json data = json::array();
    for (const auto& t : *totals)
        data.push_back(json{{q->group_by, t.group},
                            {"requests", t.requests},
                            {"prompt_tokens", t.prompt_tokens},
                            {"completion_tokens", t.completion_tokens},
                            {"cached_tokens", t.cached_tokens}});
    return reply(json{
        {"tenant", q->tenant}, {"from", q->from}, {"to", q->to}, {"group_by", q->group_by}, {"data", data}});
}

Reply events(ApiContext& ctx, const Exchange& ex) {
    auto q = report_query(ex);
    if (!q) return reply_error(q.error());
    if (ctx.quotas) (void)ctx.quotas->flush_usage();
    store::QuotaStore qs(ctx.auth->store().database());
    auto totals = qs.events(q->tenant, q->from, q->to, q->group_by);
    if (!totals) return reply_error(totals.error());
    auto rate = [](const store::EventTotal& t) {
        return t.views > 0 ? static_cast<double>(t.selects + t.line_selects) / static_cast<double>(t.views)
                           : 0.0;
    };
    if (q->csv) {
        std::string csv = q->group_by + ",views,selects,line_selects,dismisses,acceptance_rate\n";
        for (const auto& t : *totals)
            csv += csv_field(t.group) + "," + std::to_string(t.views) + "," + std::to_string(t.selects) +
                   "," + std::to_string(t.line_selects) + "," + std::to_string(t.dismisses) + "," +
                   std::to_string(rate(t)) + "\n";
        return csv_reply(std::move(csv));
    }
    json data = json::array();
    for (const auto& t : *totals)
        data.push_back(json{{q->group_by, t.group},
                            {"views", t.views},
                            {"selects", t.selects},
                            {"line_selects", t.line_selects},
                            {"dismisses", t.dismisses},
                            {"acceptance_rate", rate(t)}});
    return reply(json{
        {"tenant", q->tenant}, {"from", q->from}, {"to", q->to}, {"group_by", q->group_by}, {"data", data}});
}

} // namespace

void register_admin_quota_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    add_route(router, verb::get, "/admin/v1/tenants/{tenant}/quotas", context, send_reply<get_quotas>);
    add_route(router, verb::put, "/admin/v1/tenants/{tenant}/quotas", context, send_reply<put_quotas>);
    add_route(router, verb::get, "/admin/v1/usage", context, send_reply<usage>);
    add_route(router, verb::get, "/admin/v1/usage/events", context, send_reply<events>);
}

} // namespace codepilot::api
