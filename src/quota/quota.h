// Quotas and usage: requests/minute, tokens/minute, daily and monthly token budgets and
// concurrent requests per tenant, per user and per key (the tightest applies), and the daily
// usage rows every inference call is debited to. Counters live in this process; limits are
// reloaded from the store every second, so changes apply within one.
#pragma once

#include "metrics/metrics.h"
#include "quota/redis_counters.h"
#include "store/quota_store.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace codepilot::quota {

// Who is calling, as quotas see it.
struct Subject {
    std::string tenant_id, tenant, user_id, username, key_prefix;
};

enum class Kind { requests, tokens, daily_tokens, monthly_tokens, concurrency };
std::string_view to_string(Kind kind);

class Ticket;

struct Decision {
    bool allowed = true;
    bool unavailable = false;   // refused because the shared counters cannot be reached (503)
    Kind kind = Kind::requests; // what refused it
    std::string message;
    int64_t retry_after_s = 0;
    std::vector<std::pair<std::string, std::string>> headers; // x-ratelimit-*, budget warnings
    std::shared_ptr<Ticket> ticket;                           // when allowed
};

// A call that was admitted: gives back its concurrency slot and debits its tokens once.
class Ticket {
public:
    ~Ticket();
    void finish(int64_t tokens);
    // A call with several generations (prompts × n) holds one concurrency slot for each: takes
    // `extra` more. A refusal names the limit and leaves the ticket as it was.
    Decision widen(int64_t extra);

private:
    friend class QuotaLedger;
    class QuotaLedger* ledger_ = nullptr;
    std::vector<std::string> scopes_;                 // counter keys this call holds a slot in / debits
    std::vector<ScopeCounters> shared_scopes_;        // the same, when the counters live in Redis
    std::vector<std::string> labels_;                 // per scope, for refusals
    std::vector<std::optional<int64_t>> concurrency_; // per scope: its limit
    std::string day_, month_;
    int64_t slots_ = 1; // concurrency slots held in every scope
    bool finished_ = false;
};

class QuotaLedger {
public:
    using Clock = std::function<int64_t()>; // unix milliseconds
    QuotaLedger(store::QuotaStore& store, metrics::Registry* metrics, Clock clock = {});
    // Counters in Redis, shared by replicas. While Redis cannot be reached, calls are admitted
    // (`fail_open`) or refused with 503, and a line is logged when that starts and ends.
    void share_counters(std::unique_ptr<RedisCounters> redis, bool fail_open);
    ~QuotaLedger(); // writes the usage still buffered

    Decision admit(const Subject& subject);
    // Keys without a concurrency limit of their own get this one (0: none).
    void set_default_key_concurrency(int64_t limit);
    // Debits a finished call's usage to its day (written by the flusher, at least every second).
    void account(const Subject& subject, const std::string& model, int64_t prompt_tokens,
                 int64_t completion_tokens, int64_t cached_tokens);
    // An acceptance event of a served completion (view | select | select_line | dismiss).
    void account_event(const Subject& subject, const std::string& model, const std::string& language,
                       const std::string& kind);
    // Reads the limits again (also done every second) and writes buffered usage.
    Status reload();
    Status flush_usage();

    // The limits of one scope of a tenant (nullopt: none set).
    std::optional<store::QuotaLimits> limits_of(const std::string& tenant_id, const std::string& scope,
                                                const std::string& subject) const;

private:
    friend class Ticket;
    struct Bucket {
        double tokens = 0;
        int64_t at_ms = 0;
        bool primed = false;
    };
    struct Budget {
        std::string period; // the day or month the count is for
        int64_t used = 0;
    };
    struct Scope {
        std::string key, label; // key: counters; label: "tenant 'acme'", "user 'dana'", ...
        store::QuotaLimits limits;
        std::string usage_user, usage_key; // usage_daily filter for budgets
    };
    std::vector<Scope> scopes_for(const Subject& s) const;
    void refill(Bucket& b, double capacity, int64_t now) const;
    Result<int64_t> budget_used(const Scope& scope, const Subject& subject, bool monthly,
                                const std::string& period);
    void release(const std::vector<std::string>& keys, int64_t tokens, int64_t slots);
    Decision widen(Ticket& ticket, int64_t extra);
    Decision admit_shared(const Subject& subject, std::vector<Scope> scopes, int64_t now);
    void release_shared(const Ticket& ticket, int64_t tokens);
    Decision refused(Kind kind, std::string message, int64_t retry_after_s);
    void redis_state(bool ok, const std::string& why);
    void run();

    store::QuotaStore& store_;
    metrics::Registry* metrics_;
    Clock clock_;
    mutable std::mutex mu_;
    std::map<std::string, store::QuotaLimits> limits_; // "tenant_id|scope|subject"
    std::map<std::string, Bucket> requests_, tokens_;
    std::map<std::string, Budget> daily_, monthly_;
    std::map<std::string, int64_t> in_flight_;
    std::map<std::string, store::UsageDelta> pending_usage_;
    std::map<std::string, store::EventDelta> pending_events_;
    std::map<std::string, double> tpm_capacity_;
    std::unique_ptr<RedisCounters> redis_;
    bool fail_open_ = true;
    int64_t default_key_concurrency_ = 0;
    bool redis_ok_ = true;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread worker_;
};

// "2026-11-21" and "2026-11" (UTC) for a unix-ms time.
std::string day_of(int64_t ms);
std::string month_of(int64_t ms);

} // namespace codepilot::quota
