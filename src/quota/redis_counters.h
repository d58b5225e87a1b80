// Quota counters in Redis, shared by every replica: one Lua script admits a call against all
// of its scopes atomically (buckets, concurrency, budgets), another releases it.
#pragma once

#include "core/result.h"
#include "store/quota_store.h"

#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct redisContext;

namespace codepilot::quota {

struct ScopeCounters {
    std::string key; // "tenant_id|scope|subject"
    store::QuotaLimits limits;
};

struct SharedAdmission {
    bool allowed = false;
    size_t refused_scope = 0;
    std::string kind; // requests | tokens | concurrency | daily_tokens | monthly_tokens
    int64_t retry_after_ms = 0;
    std::vector<std::pair<double, double>>
        levels; // per scope after admission: requests, tokens (-1: no limit)
    std::vector<std::pair<int64_t, int64_t>> budgets_used; // per scope: daily, monthly tokens used (-1: none)
    std::optional<size_t> budget_missing;                  // a budget counter to initialize first
    bool monthly_missing = false;
};

class RedisCounters {
public:
    // redis://host:port[/db]
    static Result<std::unique_ptr<RedisCounters>> connect(const std::string& url, int timeout_ms);
    ~RedisCounters();

    Result<SharedAdmission> admit(const std::vector<ScopeCounters>& scopes, int64_t now_ms,
                                  const std::string& day, const std::string& month);
    // Gives back `slots` concurrency slots (a call's generations) and debits its tokens.
    Status release(const std::vector<ScopeCounters>& scopes, int64_t now_ms, int64_t tokens,
                   const std::string& day, const std::string& month, int64_t slots = 1);
    // Takes `extra` more concurrency slots in every scope at once; the scope over its limit
    // when that would go too far (then none is taken).
    Result<std::optional<size_t>> widen(const std::vector<ScopeCounters>& scopes, int64_t extra);
    // Sets a budget counter unless another replica did first.
    Status init_budget(const std::string& key, bool monthly, const std::string& period, int64_t used);

private:
    RedisCounters(std::string host, int port, int db, int timeout_ms);
    Status ensure_connected();
    Result<void*> command(const std::vector<std::string>& args); // a redisReply*, freed by the caller
    std::mutex mu_;
    std::string host_;
    int port_, db_, timeout_ms_;
    redisContext* ctx_ = nullptr;
    int64_t retry_at_ms_ = 0;
};

} // namespace codepilot::quota
