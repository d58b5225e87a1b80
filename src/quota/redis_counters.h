// Quota counters in Redis, shared by every replica: one Lua script admits a call against all
// of its scopes atomically (buckets, concurrency, budgets), another releases it. The connection
// is plain (loopback, or with the opt-out) or TLS, and authenticates with AUTH when a password
// is named.
#pragma once

#include "config/config.h"
#include "core/result.h"
#include "core/secret_reference.h"
#include "quota/redis_connection.h"
#include "store/quota_store.h"

#include <mutex>
#include <optional>
#include <string>
#include <vector>

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
    // The redis_* settings of [quota]. Fails on what would never work (the URL, the TLS files);
    // a Redis that cannot be reached or refuses AUTH is left to the failure policy, per call.
    static Result<std::unique_ptr<RedisCounters>> connect(const config::QuotaConfig& quota);
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
    RedisCounters(config::RedisAddress address, const config::QuotaConfig& quota,
                  std::shared_ptr<const RedisTls> tls);
    Status ensure_connected();
    Status open_session(); // connect, AUTH, SELECT
    Result<RedisReply> command(const std::vector<std::string>& args);
    std::mutex mu_;
    config::RedisAddress address_;
    std::string peer_; // host:port, for messages
    std::string username_;
    SecretReference password_;
    int timeout_ms_;
    std::shared_ptr<const RedisTls> tls_; // rediss://
    std::unique_ptr<RedisConnection> connection_;
    int64_t retry_at_ms_ = 0;
    std::string last_failure_; // why the last connect failed, repeated while retries wait
};

} // namespace codepilot::quota
