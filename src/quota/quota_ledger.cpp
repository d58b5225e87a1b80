#include "core/clock.h"
#include "quota/quota.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <spdlog/spdlog.h>

namespace codepilot::quota {

std::string_view to_string(Kind kind) {
    switch (kind) {
    case Kind::requests:
        return "requests";
    case Kind::tokens:
        return "tokens";
    case Kind::daily_tokens:
        return "daily_tokens";
    case Kind::monthly_tokens:
        return "monthly_tokens";
    case Kind::concurrency:
        return "concurrency";
    }
    return "?";
}

namespace {

std::string format_time(int64_t ms, const char* format) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, format, &tm);
    return buf;
}

// OpenAI's reset format: "1s", "6m0s".
std::string duration_text(double seconds) {
    int64_t s = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(seconds)));
    if (s < 60) return std::to_string(s) + "s";
    return std::to_string(s / 60) + "m" + std::to_string(s % 60) + "s";
}

int64_t seconds_to_next_day(int64_t now_ms) {
    return 86400 - (now_ms / 1000) % 86400;
}

int64_t seconds_to_next_month(int64_t now_ms) {
    std::time_t t = static_cast<std::time_t>(now_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    tm.tm_mon += 1;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return static_cast<int64_t>(timegm(&tm)) - now_ms / 1000;
}

std::string limit_key(const std::string& tenant_id, const std::string& scope, const std::string& subject) {
    return tenant_id + "|" + scope + "|" + subject;
}

} // namespace

std::string day_of(int64_t ms) {
    return format_time(ms, "%Y-%m-%d");
}
std::string month_of(int64_t ms) {
    return format_time(ms, "%Y-%m");
}

Ticket::~Ticket() {
    finish(0);
}

void Ticket::finish(int64_t tokens) {
    if (finished_ || !ledger_) return;
    finished_ = true;
    if (!shared_scopes_.empty())
        ledger_->release_shared(*this, tokens);
    else
        ledger_->release(scopes_, tokens, slots_);
}

Decision Ticket::widen(int64_t extra) {
    if (finished_ || !ledger_ || extra <= 0) return Decision{};
    return ledger_->widen(*this, extra);
}

void QuotaLedger::set_default_key_concurrency(int64_t limit) {
    std::lock_guard lock(mu_);
    default_key_concurrency_ = limit;
}

Decision QuotaLedger::widen(Ticket& ticket, int64_t extra) {
    auto over = [&](size_t i) {
        return refused(Kind::concurrency,
                       ticket.labels_[i] + " may run " + std::to_string(*ticket.concurrency_[i]) +
                           " generations at once (prompts × n count one each)",
                       1);
    };
    if (!ticket.shared_scopes_.empty()) {
        auto widened = redis_->widen(ticket.shared_scopes_, extra);
        if (!widened) {
            redis_state(false, widened.error().message);
            if (fail_open_) return Decision{};
            Decision d = refused(Kind::concurrency, "quota counters are unavailable; try again shortly", 1);
            d.unavailable = true;
            return d;
        }
        redis_state(true, "");
        if (*widened && **widened < ticket.labels_.size()) return over(**widened);
        ticket.slots_ += extra;
        return Decision{};
    }
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < ticket.scopes_.size(); ++i)
        if (ticket.concurrency_[i] && in_flight_[ticket.scopes_[i]] + extra > *ticket.concurrency_[i])
            return over(i);
    for (const auto& key : ticket.scopes_) in_flight_[key] += extra;
    ticket.slots_ += extra;
    return Decision{};
}

void QuotaLedger::share_counters(std::unique_ptr<RedisCounters> redis, bool fail_open) {
    std::lock_guard lock(mu_);
    redis_ = std::move(redis);
    fail_open_ = fail_open;
}

void QuotaLedger::redis_state(bool ok, const std::string& why) {
    std::lock_guard lock(mu_);
    if (ok == redis_ok_) return;
    redis_ok_ = ok;
    if (ok)
        spdlog::info("quota: Redis is reachable again; shared limits are enforced");
    else
        spdlog::error("quota: Redis unavailable ({}); inference calls are {} until it returns", why,
                      fail_open_ ? "admitted without limits (fail open)" : "refused with 503 (fail closed)");
}

Decision QuotaLedger::refused(Kind kind, std::string message, int64_t retry_after_s) {
    Decision d;
    d.allowed = false;
    d.kind = kind;
    d.message = std::move(message);
    d.retry_after_s = std::max<int64_t>(1, retry_after_s);
    if (metrics_)
        metrics_
            ->counter("codepilot_quota_rejections_total", "Inference calls refused by a quota, by kind",
                      {{"kind", std::string(to_string(kind))}})
            .inc();
    return d;
}

Decision QuotaLedger::admit_shared(const Subject& subject, std::vector<Scope> scopes, int64_t now) {
    const std::string day = day_of(now), month = month_of(now);
    std::vector<ScopeCounters> counters;
    for (const auto& s : scopes) counters.push_back(ScopeCounters{s.key, s.limits});
    for (int attempt = 0; attempt < 4; ++attempt) {
        auto a = redis_->admit(counters, now, day, month);
        if (!a) {
            redis_state(false, a.error().message);
            if (fail_open_) return Decision{};
            Decision d;
            d.allowed = false;
            d.unavailable = true;
            d.message = "quota counters are unavailable; try again shortly";
            d.retry_after_s = 1;
            return d;
        }
        redis_state(true, "");
        if (a->budget_missing) { // first call of the period anywhere: start from the usage rows
            const auto& s = scopes[*a->budget_missing];
            const std::string& period = a->monthly_missing ? month : day;
            Result<int64_t> used = int64_t{0};
            {
                std::lock_guard lock(mu_);
                used = budget_used(s, subject, a->monthly_missing, period);
            }
            if (!used) return Decision{}; // cannot tell: admitted, as without budgets
            (void)redis_->init_budget(s.key, a->monthly_missing, period, *used);
            continue;
        }
        if (!a->allowed) {
            const auto& s = scopes[a->refused_scope];
            if (a->kind == "concurrency")
                return refused(Kind::concurrency,
                               s.label + " already has " + std::to_string(*s.limits.concurrency) +
                                   " requests running (its limit)",
                               1);
            if (a->kind == "requests")
                return refused(Kind::requests,
                               s.label + " is over its " + std::to_string(*s.limits.rpm) +
                                   " requests per minute",
                               (a->retry_after_ms + 999) / 1000);
            if (a->kind == "tokens")
                return refused(Kind::tokens,
                               s.label + " is over its " + std::to_string(*s.limits.tpm) +
                                   " tokens per minute",
                               (a->retry_after_ms + 999) / 1000);
            const bool monthly = a->kind == "monthly_tokens";
            return refused(monthly ? Kind::monthly_tokens : Kind::daily_tokens,
                           s.label + " has used its " + (monthly ? "monthly" : "daily") + " budget of " +
                               std::to_string(monthly ? *s.limits.monthly_tokens : *s.limits.daily_tokens) +
                               " tokens",
                           monthly ? seconds_to_next_month(now) : seconds_to_next_day(now));
        }
        Decision d;
        auto ticket = std::make_shared<Ticket>();
        ticket->ledger_ = this;
        for (const auto& s : scopes) {
            ticket->labels_.push_back(s.label);
            ticket->concurrency_.push_back(s.limits.concurrency);
        }
        ticket->shared_scopes_ = std::move(counters);
        ticket->day_ = day;
        ticket->month_ = month;
        std::optional<size_t> rpm_at, tpm_at; // headers for the tightest request and token limits
        for (size_t i = 0; i < a->levels.size() && i < scopes.size(); ++i) {
            if (scopes[i].limits.rpm && (!rpm_at || a->levels[i].first < a->levels[*rpm_at].first))
                rpm_at = i;
            if (scopes[i].limits.tpm && (!tpm_at || a->levels[i].second < a->levels[*tpm_at].second))
                tpm_at = i;
        }
        if (rpm_at) {
            double cap = static_cast<double>(*scopes[*rpm_at].limits.rpm),
                   left = a->levels[*rpm_at].first - 1;
            d.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(*scopes[*rpm_at].limits.rpm));
            d.headers.emplace_back("x-ratelimit-remaining-requests",
                                   std::to_string(static_cast<int64_t>(std::max(0.0, left))));
            d.headers.emplace_back("x-ratelimit-reset-requests", duration_text((cap - left) / (cap / 60.0)));
        }
        if (tpm_at) {
            double cap = static_cast<double>(*scopes[*tpm_at].limits.tpm), left = a->levels[*tpm_at].second;
            d.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(*scopes[*tpm_at].limits.tpm));
            d.headers.emplace_back("x-ratelimit-remaining-tokens",
                                   std::to_string(static_cast<int64_t>(std::max(0.0, left))));
            d.headers.emplace_back("x-ratelimit-reset-tokens", duration_text((cap - left) / (cap / 60.0)));
        }
        for (size_t i = 0; i < a->budgets_used.size() && i < scopes.size(); ++i) {
            const auto& l = scopes[i].limits;
            for (bool monthly : {false, true}) {
                const auto& limit = monthly ? l.monthly_tokens : l.daily_tokens;
                int64_t used = monthly ? a->budgets_used[i].second : a->budgets_used[i].first;
                if (limit && used >= 0 && used * 10 >= *limit * 8)
                    d.headers.emplace_back("x-codepilot-budget-warning",
                                           std::string(monthly ? "monthly" : "daily") + " token budget of " +
                                               scopes[i].label + " is " +
                                               std::to_string(used * 100 / *limit) + "% used");
            }
        }
        d.ticket = std::move(ticket);
        return d;
    }
    return Decision{}; // budget counters kept vanishing (expiry races): admit rather than loop
}

void QuotaLedger::release_shared(const Ticket& ticket, int64_t tokens) {
    auto st =
        redis_->release(ticket.shared_scopes_, clock_(), tokens, ticket.day_, ticket.month_, ticket.slots_);
    redis_state(st.ok(), st ? "" : st.error().message);
}

QuotaLedger::QuotaLedger(store::QuotaStore& store, metrics::Registry* metrics, Clock clock)
    : store_(store), metrics_(metrics), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return unix_millis(); };
    if (metrics_)
        for (auto k :
             {Kind::requests, Kind::tokens, Kind::daily_tokens, Kind::monthly_tokens, Kind::concurrency})
            metrics_->counter("codepilot_quota_rejections_total",
                              "Inference calls refused by a quota, by kind",
                              {{"kind", std::string(to_string(k))}});
    if (auto st = reload(); !st) spdlog::error("quota: cannot read limits: {}", st.error().message);
    worker_ = std::thread([this] { run(); });
}

QuotaLedger::~QuotaLedger() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (worker_.joinable()) worker_.join();
    if (auto st = flush_usage(); !st)
        spdlog::error("quota: usage not written at shutdown: {}", st.error().message);
}

void QuotaLedger::run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        wake_.wait_for(lock, std::chrono::seconds(1));
        if (stopping_) break;
        lock.unlock();
        if (auto st = reload(); !st) spdlog::warn("quota: cannot reload limits: {}", st.error().message);
        if (auto st = flush_usage(); !st)
            spdlog::warn("quota: usage kept for the next write: {}", st.error().message);
        lock.lock();
    }
}

Status QuotaLedger::reload() {
    auto rows = store_.quotas();
    if (!rows) return rows.error();
    std::map<std::string, store::QuotaLimits> fresh;
    for (const auto& q : *rows) fresh[limit_key(q.tenant_id, q.scope, q.subject)] = q.limits;
    std::lock_guard lock(mu_);
    limits_.swap(fresh);
    return Ok{};
}

void QuotaLedger::account_event(const Subject& s, const std::string& model, const std::string& language,
                                const std::string& kind) {
    const std::string day = day_of(clock_());
    std::lock_guard lock(mu_);
    auto& e = pending_events_[day + "|" + s.tenant + "|" + s.username + "|" + model + "|" + language];
    if (e.day.empty()) e = store::EventDelta{day, s.tenant, s.username, model, language, 0, 0, 0, 0};
    if (kind == "view")
        ++e.views;
    else if (kind == "select")
        ++e.selects;
    else if (kind == "select_line")
        ++e.line_selects;
    else if (kind == "dismiss")
        ++e.dismisses;
}

Status QuotaLedger::flush_usage() {
    std::map<std::string, store::UsageDelta> batch;
    std::map<std::string, store::EventDelta> events;
    {
        std::lock_guard lock(mu_);
        batch.swap(pending_usage_);
        events.swap(pending_events_);
    }
    if (!events.empty()) {
        std::vector<store::EventDelta> deltas;
        for (auto& [_, e] : events) deltas.push_back(e);
        if (auto st = store_.add_events(deltas); !st) // acceptance counts are advisory: log, keep going
            spdlog::warn("quota: {} acceptance event rows not written: {}", deltas.size(),
                         st.error().message);
    }
    if (batch.empty()) return Ok{};
    std::vector<store::UsageDelta> deltas;
    for (auto& [_, d] : batch) deltas.push_back(d);
    auto st = store_.add_usage(deltas);
    if (!st) { // keep them: added back to whatever arrived meanwhile
        std::lock_guard lock(mu_);
        for (auto& [k, d] : batch) {
            auto& p = pending_usage_[k];
            if (p.day.empty())
                p = d;
            else {
                p.requests += d.requests;
                p.prompt_tokens += d.prompt_tokens;
                p.completion_tokens += d.completion_tokens;
                p.cached_tokens += d.cached_tokens;
            }
        }
    }
    return st;
}

std::optional<store::QuotaLimits> QuotaLedger::limits_of(const std::string& tenant_id,
                                                         const std::string& scope,
                                                         const std::string& subject) const {
    std::lock_guard lock(mu_);
    auto it = limits_.find(limit_key(tenant_id, scope, subject));
    if (it == limits_.end()) return std::nullopt;
    return it->second;
}

std::vector<QuotaLedger::Scope> QuotaLedger::scopes_for(const Subject& s) const {
    std::vector<Scope> out;
    auto add = [&](const std::string& scope, const std::string& subject, std::string label, std::string user,
                   std::string key) {
        auto it = limits_.find(limit_key(s.tenant_id, scope, subject));
        if (it != limits_.end())
            out.push_back(Scope{limit_key(s.tenant_id, scope, subject), std::move(label), it->second,
                                std::move(user), std::move(key)});
    };
    add("tenant", "", "tenant '" + s.tenant + "'", "", "");
    if (!s.user_id.empty())
        add("user", s.user_id, "user '" + s.username + "' in tenant '" + s.tenant + "'", s.username, "");
    if (!s.key_prefix.empty()) add("key", s.key_prefix, "key " + s.key_prefix, "", s.key_prefix);
    if (!s.key_prefix.empty() && default_key_concurrency_ > 0) { // every key has a ceiling
        const std::string key = limit_key(s.tenant_id, "key", s.key_prefix);
        auto own = std::find_if(out.begin(), out.end(), [&](const Scope& x) { return x.key == key; });
        if (own == out.end()) {
            store::QuotaLimits limits;
            limits.concurrency = default_key_concurrency_;
            out.push_back(Scope{key, "key " + s.key_prefix, limits, "", s.key_prefix});
        } else if (!own->limits.concurrency) {
            own->limits.concurrency = default_key_concurrency_;
        }
    }
    return out;
}

void QuotaLedger::refill(Bucket& b, double capacity, int64_t now) const {
    if (!b.primed) {
        b = Bucket{capacity, now, true};
        return;
    }
    double rate = capacity / 60000.0; // per millisecond: the whole capacity per minute
    b.tokens = std::min(capacity, b.tokens + rate * static_cast<double>(now - b.at_ms));
    b.at_ms = now;
}

Result<int64_t> QuotaLedger::budget_used(const Scope& scope, const Subject& subject, bool monthly,
                                         const std::string& period) {
    // Once per scope and period: what the store has, plus what this process has not written yet.
    const std::string from = monthly ? period + "-01" : period;
    const std::string to = monthly ? period + "-31" : period;
    auto stored = store_.tokens_used(subject.tenant, scope.usage_user, scope.usage_key, from, to);
    if (!stored) return stored.error();
    int64_t used = *stored;
    for (const auto& [_, d] : pending_usage_)
        if (d.tenant == subject.tenant && d.day >= from && d.day <= to &&
            (scope.usage_user.empty() || d.username == scope.usage_user) &&
            (scope.usage_key.empty() || d.key_prefix == scope.usage_key))
            used += d.prompt_tokens + d.completion_tokens;
    return used;
}

Decision QuotaLedger::admit(const Subject& subject) {
    const int64_t now = clock_();
    if (redis_) {
        std::vector<Scope> shared_scopes;
        {
            std::lock_guard lock(mu_);
            shared_scopes = scopes_for(subject);
        }
        if (shared_scopes.empty()) return Decision{};
        return admit_shared(subject, std::move(shared_scopes), now);
    }
    Decision d;
    std::lock_guard lock(mu_);
    auto scopes = scopes_for(subject);
    auto refuse = [&](Kind kind, std::string message, int64_t retry) {
        Decision r = refused(kind, std::move(message), retry);
        r.headers = std::move(d.headers); // x-ratelimit-* of the limit that refused
        return r;
    };
    const std::string day = day_of(now), month = month_of(now);
    std::optional<std::pair<double, Scope*>> tightest_rpm, tightest_tpm;
    for (auto& s : scopes) {
        const auto& l = s.limits;
        if (l.concurrency && in_flight_[s.key] >= *l.concurrency)
            return refuse(Kind::concurrency,
                          s.label + " already has " + std::to_string(*l.concurrency) +
                              " requests running (its limit)",
                          1);
        if (l.rpm) {
            auto& b = requests_[s.key];
            refill(b, static_cast<double>(*l.rpm), now);
            if (b.tokens < 1.0) {
                d.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(*l.rpm));
                d.headers.emplace_back("x-ratelimit-remaining-requests", "0");
                d.headers.emplace_back("x-ratelimit-reset-requests",
                                       duration_text((*l.rpm - b.tokens) / (*l.rpm / 60.0)));
                return refuse(Kind::requests,
                              s.label + " is over its " + std::to_string(*l.rpm) + " requests per minute",
                              static_cast<int64_t>(std::ceil((1.0 - b.tokens) / (*l.rpm / 60.0))));
            }
            if (!tightest_rpm || b.tokens < tightest_rpm->first) tightest_rpm = std::make_pair(b.tokens, &s);
        }
        if (l.tpm) {
            auto& b = tokens_[s.key];
            refill(b, static_cast<double>(*l.tpm), now);
            if (b.tokens <= 0.0) {
                d.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(*l.tpm));
                d.headers.emplace_back("x-ratelimit-remaining-tokens", "0");
                d.headers.emplace_back("x-ratelimit-reset-tokens",
                                       duration_text((*l.tpm - b.tokens) / (*l.tpm / 60.0)));
                return refuse(Kind::tokens,
                              s.label + " is over its " + std::to_string(*l.tpm) + " tokens per minute",
                              static_cast<int64_t>(std::ceil((1.0 - b.tokens) / (*l.tpm / 60.0))));
            }
            if (!tightest_tpm || b.tokens < tightest_tpm->first) tightest_tpm = std::make_pair(b.tokens, &s);
        }
        for (bool monthly : {false, true}) {
            const auto& limit = monthly ? l.monthly_tokens : l.daily_tokens;
            if (!limit) continue;
            auto& budget = (monthly ? monthly_ : daily_)[s.key];
            const std::string& period = monthly ? month : day;
            if (budget.period != period) {
                auto used = budget_used(s, subject, monthly, period);
                if (!used) {
                    spdlog::warn("quota: cannot read usage for {}: {} (not enforced for this call)", s.label,
                                 used.error().message);
                    continue;
                }
                budget = Budget{period, *used};
            }
            const char* what = monthly ? "monthly" : "daily";
            if (budget.used >= *limit)
                return refuse(monthly ? Kind::monthly_tokens : Kind::daily_tokens,
                              s.label + " has used its " + what + " budget of " + std::to_string(*limit) +
                                  " tokens",
                              monthly ? seconds_to_next_month(now) : seconds_to_next_day(now));
            if (budget.used * 10 >= *limit * 8)
                d.headers.emplace_back("x-codepilot-budget-warning",
                                       std::string(what) + " token budget of " + s.label + " is " +
                                           std::to_string(budget.used * 100 / *limit) + "% used");
        }
    }
    auto ticket = std::make_shared<Ticket>();
    ticket->ledger_ = this;
    for (auto& s : scopes) {
        if (s.limits.rpm) requests_[s.key].tokens -= 1.0;
        ++in_flight_[s.key];
        ticket->scopes_.push_back(s.key);
        ticket->labels_.push_back(s.label);
        ticket->concurrency_.push_back(s.limits.concurrency);
    }
    if (tightest_rpm) {
        auto& s = *tightest_rpm->second;
        double left = requests_[s.key].tokens;
        d.headers.emplace_back("x-ratelimit-limit-requests", std::to_string(*s.limits.rpm));
        d.headers.emplace_back("x-ratelimit-remaining-requests",
                               std::to_string(static_cast<int64_t>(std::max(0.0, left))));
        d.headers.emplace_back("x-ratelimit-reset-requests",
                               duration_text((*s.limits.rpm - left) / (*s.limits.rpm / 60.0)));
    }
    if (tightest_tpm) {
        auto& s = *tightest_tpm->second;
        double left = tokens_[s.key].tokens;
        d.headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(*s.limits.tpm));
        d.headers.emplace_back("x-ratelimit-remaining-tokens",
                               std::to_string(static_cast<int64_t>(std::max(0.0, left))));
        d.headers.emplace_back("x-ratelimit-reset-tokens",
                               duration_text((*s.limits.tpm - left) / (*s.limits.tpm / 60.0)));
    }
    d.ticket = std::move(ticket);
    return d;
}

void QuotaLedger::release(const std::vector<std::string>& keys, int64_t tokens, int64_t slots) {
    std::lock_guard lock(mu_);
    for (const auto& key : keys) {
        if (auto it = in_flight_.find(key); it != in_flight_.end())
            it->second = std::max<int64_t>(0, it->second - slots);
        if (tokens <= 0) continue;
        if (auto it = tokens_.find(key); it != tokens_.end())
            it->second.tokens -= static_cast<double>(tokens);
        if (auto it = daily_.find(key); it != daily_.end()) it->second.used += tokens;
        if (auto it = monthly_.find(key); it != monthly_.end()) it->second.used += tokens;
    }
}

void QuotaLedger::account(const Subject& s, const std::string& model, int64_t prompt_tokens,
                          int64_t completion_tokens, int64_t cached_tokens) {
    const std::string day = day_of(clock_());
    std::lock_guard lock(mu_);
    auto& d = pending_usage_[day + "|" + s.tenant + "|" + s.username + "|" + s.key_prefix + "|" + model];
    if (d.day.empty()) d = store::UsageDelta{day, s.tenant, s.username, s.key_prefix, model, 0, 0, 0, 0};
    d.requests += 1;
    d.prompt_tokens += prompt_tokens;
    d.completion_tokens += completion_tokens;
    d.cached_tokens += cached_tokens;
}

} // namespace codepilot::quota
