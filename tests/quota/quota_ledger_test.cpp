// Quota arithmetic with a fake clock on a real (SQLite) store: every kind of limit, the
// tightest scope winning, isolation between tenants, budgets across days, usage rows.
#include "quota/quota.h"
#include "store/store.h"

#include <gtest/gtest.h>

namespace codepilot::quota {
namespace {

constexpr int64_t kDay = 86'400'000;

class QuotaLedgerTest : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = std::move(*store::open_and_migrate("sqlite::memory:", 2));
        ids_ = std::make_unique<store::IdentityStore>(*db_);
        acme_ = *ids_->create_tenant("acme");
        globex_ = *ids_->create_tenant("globex");
        store::User u;
        u.username = "dana";
        dana_ = *ids_->create_user(u);
        qs_ = std::make_unique<store::QuotaStore>(*db_);
        ledger_ = std::make_unique<QuotaLedger>(*qs_, nullptr, [this] { return now_; });
    }
    void limit(const store::Tenant& t, const std::string& scope, const std::string& subject,
               store::QuotaLimits l) {
        ASSERT_TRUE(qs_->set_quota(store::QuotaRow{t.id, scope, subject, l, 0}));
        ASSERT_TRUE(ledger_->reload());
    }
    Subject dana(const std::string& key = "cpk_AAAAAAAA") {
        return Subject{acme_.id, "acme", dana_.id, "dana", key};
    }
    std::string header(const Decision& d, const std::string& name) {
        for (const auto& [k, v] : d.headers)
            if (k == name) return v;
        return "";
    }

    int64_t now_ = 1'795'000'000'000; // 2026-11-18T…Z
    std::unique_ptr<store::Database> db_;
    std::unique_ptr<store::IdentityStore> ids_;
    std::unique_ptr<store::QuotaStore> qs_;
    std::unique_ptr<QuotaLedger> ledger_;
    store::Tenant acme_, globex_;
    store::User dana_;
};

TEST_F(QuotaLedgerTest, RequestsPerMinuteRefillOverTheMinute) {
    limit(acme_, "tenant", "", {.rpm = 3});
    for (int i = 0; i < 3; ++i) {
        auto d = ledger_->admit(dana());
        ASSERT_TRUE(d.allowed) << i;
        EXPECT_EQ(header(d, "x-ratelimit-remaining-requests"), std::to_string(2 - i));
        EXPECT_EQ(header(d, "x-ratelimit-limit-requests"), "3");
    }
    auto refused = ledger_->admit(dana());
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.kind, Kind::requests);
    EXPECT_EQ(refused.retry_after_s, 20); // one request comes back every 20 s
    EXPECT_EQ(refused.message, "tenant 'acme' is over its 3 requests per minute");
    now_ += 20'000;
    EXPECT_TRUE(ledger_->admit(dana()).allowed);
    EXPECT_FALSE(ledger_->admit(dana()).allowed);
}

TEST_F(QuotaLedgerTest, TheTightestScopeAppliesAndOthersAreUnaffected) {
    limit(acme_, "tenant", "", {.rpm = 100});
    limit(acme_, "key", "cpk_AAAAAAAA", {.rpm = 2});
    EXPECT_TRUE(ledger_->admit(dana()).allowed);
    EXPECT_TRUE(ledger_->admit(dana()).allowed);
    auto refused = ledger_->admit(dana());
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.message, "key cpk_AAAAAAAA is over its 2 requests per minute");
    EXPECT_TRUE(ledger_->admit(dana("cpk_BBBBBBBB")).allowed); // another key of the tenant
    EXPECT_TRUE(ledger_->admit(Subject{globex_.id, "globex", dana_.id, "dana", "cpk_CCCCCCCC"})
                    .allowed);                  // another tenant
    limit(acme_, "user", dana_.id, {.rpm = 1}); // now the user's limit is the tightest (a fresh bucket)
    EXPECT_TRUE(ledger_->admit(dana("cpk_BBBBBBBB")).allowed);
    auto user_refused = ledger_->admit(dana("cpk_BBBBBBBB"));
    ASSERT_FALSE(user_refused.allowed);
    EXPECT_EQ(user_refused.message, "user 'dana' in tenant 'acme' is over its 1 requests per minute");
}

TEST_F(QuotaLedgerTest, ConcurrencySlotsComeBackWhenACallFinishes) {
    limit(acme_, "user", dana_.id, {.concurrency = 1});
    auto first = ledger_->admit(dana());
    ASSERT_TRUE(first.allowed);
    auto second = ledger_->admit(dana());
    ASSERT_FALSE(second.allowed);
    EXPECT_EQ(second.kind, Kind::concurrency);
    first.ticket->finish(10);
    EXPECT_TRUE(ledger_->admit(dana()).allowed); // and that ticket's destructor frees its slot too
    EXPECT_TRUE(ledger_->admit(dana()).allowed);
}

TEST_F(QuotaLedgerTest, TokensPerMinuteAreDebitedAsTheEngineCountsThem) {
    limit(acme_, "tenant", "", {.tpm = 100});
    auto d = ledger_->admit(dana());
    ASSERT_TRUE(d.allowed);
    d.ticket->finish(150); // a call may overdraw; the next waits for the refill
    auto refused = ledger_->admit(dana());
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.kind, Kind::tokens);
    EXPECT_EQ(refused.retry_after_s, 31); // 51 tokens at 100/min
    now_ += 31'000;
    EXPECT_TRUE(ledger_->admit(dana()).allowed);
}

TEST_F(QuotaLedgerTest, DailyBudgetsWarnAt80PercentAndResetAtMidnight) {
    limit(acme_, "tenant", "", {.daily_tokens = 100});
    ASSERT_TRUE(qs_->add_usage({{day_of(now_), "acme", "dana", "cpk_AAAAAAAA", "m", 1, 60, 25, 0}}));
    auto warned = ledger_->admit(dana());
    ASSERT_TRUE(warned.allowed);
    EXPECT_EQ(header(warned, "x-codepilot-budget-warning"),
              "daily token budget of tenant 'acme' is 85% used");
    warned.ticket->finish(20);
    auto refused = ledger_->admit(dana());
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.kind, Kind::daily_tokens);
    EXPECT_EQ(refused.message, "tenant 'acme' has used its daily budget of 100 tokens");
    EXPECT_GT(refused.retry_after_s, 0);
    EXPECT_LE(refused.retry_after_s, 86'400);
    now_ += kDay; // a new day
    EXPECT_TRUE(ledger_->admit(dana()).allowed);
    // Other tenants never see acme's budget.
    EXPECT_TRUE(ledger_->admit(Subject{globex_.id, "globex", dana_.id, "dana", ""}).allowed);
}

TEST_F(QuotaLedgerTest, MonthlyBudgetsCountEveryDayOfTheMonth) {
    limit(acme_, "user", dana_.id, {.monthly_tokens = 1000});
    ASSERT_TRUE(
        qs_->add_usage({{month_of(now_) + "-01", "acme", "dana", "k", "m", 1, 600, 300, 0},
                        {month_of(now_) + "-02", "acme", "dana", "k", "m", 1, 60, 50, 0},
                        {month_of(now_) + "-02", "acme", "erin", "k", "m", 1, 5000, 0, 0}})); // someone else
    auto refused = ledger_->admit(dana());
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.kind, Kind::monthly_tokens);
}

TEST_F(QuotaLedgerTest, UsageIsWrittenPerDayTenantUserKeyAndModel) {
    ledger_->account(dana(), "coder-1.5b", 10, 5, 8);
    ledger_->account(dana(), "coder-1.5b", 20, 7, 0);
    ledger_->account(dana("cpk_BBBBBBBB"), "chat-7b", 3, 4, 0);
    ASSERT_TRUE(ledger_->flush_usage());
    auto by_model = qs_->usage("acme", "2026-01-01", "2026-12-31", "model");
    ASSERT_TRUE(by_model);
    ASSERT_EQ(by_model->size(), 2u);
    EXPECT_EQ((*by_model)[1].group, "coder-1.5b");
    EXPECT_EQ((*by_model)[1].requests, 2);
    EXPECT_EQ((*by_model)[1].prompt_tokens, 30);
    EXPECT_EQ((*by_model)[1].completion_tokens, 12);
    EXPECT_EQ((*by_model)[1].cached_tokens, 8);
    auto by_key = qs_->usage("acme", "2026-01-01", "2026-12-31", "key");
    ASSERT_TRUE(by_key);
    EXPECT_EQ(by_key->size(), 2u);
    EXPECT_FALSE(qs_->usage("acme", "2026-01-01", "2026-12-31", "color"));
}

} // namespace
} // namespace codepilot::quota
