#include "store/quota_store.h"

#include <ctime>

namespace codepilot::store {
namespace {
Value opt(const std::optional<int64_t>& v) {
    return v ? Value(*v) : Value(nullptr);
}
} // namespace

Status QuotaStore::set_quota(const QuotaRow& q) {
    const auto& l = q.limits;
    if (!l.rpm && !l.tpm && !l.daily_tokens && !l.monthly_tokens && !l.concurrency) {
        auto r = db_.execute("DELETE FROM quotas WHERE tenant_id = ? AND scope = ? AND subject = ?",
                             {q.tenant_id, q.scope, q.subject});
        if (!r) return r.error();
        return Ok{};
    }
    auto r = db_.execute(
        "INSERT INTO quotas (tenant_id, scope, subject, rpm, tpm, daily_tokens, monthly_tokens, concurrency, "
        "updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, scope, subject) DO UPDATE SET rpm = "
        "excluded.rpm, "
        "tpm = excluded.tpm, daily_tokens = excluded.daily_tokens, monthly_tokens = excluded.monthly_tokens, "
        "concurrency = excluded.concurrency, updated_at = excluded.updated_at",
        {q.tenant_id, q.scope, q.subject, opt(l.rpm), opt(l.tpm), opt(l.daily_tokens), opt(l.monthly_tokens),
         opt(l.concurrency), static_cast<int64_t>(std::time(nullptr))});
    if (!r) return r.error();
    return Ok{};
}

Result<std::vector<QuotaRow>> QuotaStore::quotas(const std::string& tenant_id) {
    std::string sql =
        "SELECT tenant_id, scope, subject, rpm, tpm, daily_tokens, monthly_tokens, concurrency, updated_at "
        "FROM quotas";
    auto rows = tenant_id.empty()
                    ? db_.query(sql + " ORDER BY tenant_id, scope, subject")
                    : db_.query(sql + " WHERE tenant_id = ? ORDER BY scope, subject", {tenant_id});
    if (!rows) return rows.error();
    std::vector<QuotaRow> out;
    for (const auto& r : *rows) {
        QuotaRow q;
        q.tenant_id = r.text(0);
        q.scope = r.text(1);
        q.subject = r.text(2);
        q.limits = {r.optional_integer(3), r.optional_integer(4), r.optional_integer(5),
                    r.optional_integer(6), r.optional_integer(7)};
        q.updated_at = r.integer(8);
        out.push_back(std::move(q));
    }
    return out;
}

Status QuotaStore::add_usage(const std::vector<UsageDelta>& deltas) {
    if (deltas.empty()) return Ok{};
    return db_.transaction([&](Connection& c) -> Status {
        for (const auto& d : deltas) {
            auto r = c.query(
                "INSERT INTO usage_daily (day, tenant, username, key_prefix, model, requests, prompt_tokens, "
                "completion_tokens, cached_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (day, tenant, username, key_prefix, model) DO UPDATE SET "
                "requests = usage_daily.requests + excluded.requests, "
                "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, "
                "cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens",
                {d.day, d.tenant, d.username, d.key_prefix, d.model, d.requests, d.prompt_tokens,
                 d.completion_tokens, d.cached_tokens});
            if (!r) return r.error();
        }
        return Ok{};
    });
}

Result<int64_t> QuotaStore::tokens_used(const std::string& tenant, const std::string& username,
                                        const std::string& key_prefix, const std::string& from_day,
                                        const std::string& to_day) {
    // Empty username / key prefix: any. Parameters stay bound; only the shape of the filter varies.
    std::string sql = "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_daily "
                      "WHERE tenant = ? AND day >= ? AND day <= ?";
    std::vector<Value> params{tenant, from_day, to_day};
    if (!username.empty()) {
        sql += " AND username = ?";
        params.emplace_back(username);
    }
    if (!key_prefix.empty()) {
        sql += " AND key_prefix = ?";
        params.emplace_back(key_prefix);
    }
    auto rows = db_.query(sql, params);
    if (!rows) return rows.error();
    return rows->front().integer(0);
}

Result<std::vector<UsageTotal>> QuotaStore::usage(const std::string& tenant, const std::string& from_day,
                                                  const std::string& to_day, const std::string& group_by) {
    const char* column = group_by == "user"    ? "username"
                         : group_by == "model" ? "model"
                         : group_by == "key"   ? "key_prefix"
                         : group_by == "day"   ? "day"
                                               : nullptr;
    if (!column)
        return make_error(ErrorCode::invalid_argument, "group_by must be user, model, key or day",
                          "group_by");
    std::string sql =
        std::string("SELECT ") + column +
        ", SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens) FROM usage_daily "
        "WHERE tenant = ? AND day >= ? AND day <= ? GROUP BY " +
        column + " ORDER BY " + column;
    auto rows = db_.query(sql, {tenant, from_day, to_day});
    if (!rows) return rows.error();
    std::vector<UsageTotal> out;
    for (const auto& r : *rows)
        out.push_back(UsageTotal{r.text(0), r.integer(1), r.integer(2), r.integer(3), r.integer(4)});
    return out;
}


Status QuotaStore::add_events(const std::vector<EventDelta>& deltas) {
    if (deltas.empty()) return Ok{};
    return db_.transaction([&](Connection& c) -> Status {
        for (const auto& d : deltas) {
            auto r = c.query(
                "INSERT INTO usage_events (day, tenant, username, model, language, views, selects, line_selects, "
                "dismisses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, tenant, username, model, language) "
                "DO UPDATE SET views = usage_events.views + excluded.views, "
                "selects = usage_events.selects + excluded.selects, "
                "line_selects = usage_events.line_selects + excluded.line_selects, "
                "dismisses = usage_events.dismisses + excluded.dismisses",
                {d.day, d.tenant, d.username, d.model, d.language, d.views, d.selects, d.line_selects, d.dismisses});
            if (!r) return r.error();
        }
        return Ok{};
    });
}

Result<std::vector<EventTotal>> QuotaStore::events(const std::string& tenant, const std::string& from_day,
                                                   const std::string& to_day, const std::string& group_by) {
    const char* column = group_by == "user"       ? "username"
                         : group_by == "model"    ? "model"
                         : group_by == "language" ? "language"
                         : group_by == "day"      ? "day"
                                                  : nullptr;
    if (!column)
        return make_error(ErrorCode::invalid_argument, "group_by must be user, model, language or day", "group_by");
    std::string sql = std::string("SELECT ") + column +
                      ", SUM(views), SUM(selects), SUM(line_selects), SUM(dismisses) FROM usage_events "
                      "WHERE tenant = ? AND day >= ? AND day <= ? GROUP BY " +
                      column + " ORDER BY " + column;
    auto rows = db_.query(sql, {tenant, from_day, to_day});
    if (!rows) return rows.error();
    std::vector<EventTotal> out;
    for (const auto& r : *rows) out.push_back(EventTotal{r.text(0), r.integer(1), r.integer(2), r.integer(3), r.integer(4)});
    return out;
}

}  // namespace codepilot::store
