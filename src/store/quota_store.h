// QuotaStore: quota settings and daily usage rows.
#pragma once

#include "store/database.h"

#include <optional>
#include <string>
#include <vector>

namespace codepilot::store {

struct QuotaLimits {
    std::optional<int64_t> rpm, tpm, daily_tokens, monthly_tokens, concurrency;
};

struct QuotaRow {
    std::string tenant_id, scope, subject; // scope: tenant | user | key; subject: user id, key prefix or ""
    QuotaLimits limits;
    int64_t updated_at = 0;
};

struct UsageDelta {
    std::string day, tenant, username, key_prefix, model;
    int64_t requests = 0, prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

struct EventDelta {
    std::string day, tenant, username, model, language;
    int64_t views = 0, selects = 0, line_selects = 0, dismisses = 0;
};

struct EventTotal {
    std::string group;
    int64_t views = 0, selects = 0, line_selects = 0, dismisses = 0;
};

struct UsageTotal {
    std::string group; // the user, model or day, per the grouping
    int64_t requests = 0, prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

class QuotaStore {
public:
    explicit QuotaStore(Database& db) : db_(db) {}
    // Sets (replaces) the limits of one scope; all-empty limits remove the row.
    Status set_quota(const QuotaRow& row);
    Result<std::vector<QuotaRow>> quotas(const std::string& tenant_id = "");
    // Adds the deltas in one transaction.
    Status add_usage(const std::vector<UsageDelta>& deltas);
    // Tokens (prompt + completion) of a tenant, one user or one key, for days in [from_day, to_day].
    Result<int64_t> tokens_used(const std::string& tenant, const std::string& username,
                                const std::string& key_prefix, const std::string& from_day,
                                const std::string& to_day);
    // Totals for a tenant over [from_day, to_day], grouped by "user", "model", "key" or "day".
    Result<std::vector<UsageTotal>> usage(const std::string& tenant, const std::string& from_day,
                                          const std::string& to_day, const std::string& group_by);

    Status add_events(const std::vector<EventDelta>& deltas);
    // Acceptance events of a tenant over [from_day, to_day], grouped by "user", "model", "language" or "day".
    Result<std::vector<EventTotal>> events(const std::string& tenant, const std::string& from_day,
                                           const std::string& to_day, const std::string& group_by);

private:
    Database& db_;
};

} // namespace codepilot::store
