// Quotas shared through a real redis-server (started by the test on a free port): two
// ledgers act as two replicas; Redis going away fails open or closed, and recovery.
#include "quota/quota.h"
#include "store/store.h"

#include <csignal>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace codepilot::quota {
namespace {

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A throw-away redis-server, no persistence.
class RedisServer {
public:
    RedisServer() : port_(free_port()) { start(); }
    ~RedisServer() { stop(); }
    void start() {
        pid_ = ::fork();
        if (pid_ == 0) {
            std::string port = std::to_string(port_);
            ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--loglevel", "warning", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 100; ++i) {
            if (redisContext* c = redisConnect("127.0.0.1", port_); c && !c->err) {
                redisFree(c);
                return;
            } else if (c) {
                redisFree(c);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "redis-server did not start";
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

private:
    int port_;
    pid_t pid_ = -1;
};

class RedisQuota : public ::testing::Test {
protected:
    void SetUp() override {
        db_ = std::move(*store::open_and_migrate("sqlite::memory:", 2));
        ids_ = std::make_unique<store::IdentityStore>(*db_);
        acme_ = *ids_->create_tenant("acme");
        qs_ = std::make_unique<store::QuotaStore>(*db_);
    }
    std::unique_ptr<QuotaLedger> replica(bool fail_open = true) {
        auto ledger = std::make_unique<QuotaLedger>(*qs_, nullptr, [this] { return now_.load(); });
        auto counters = RedisCounters::connect(redis_.url(), 200);
        EXPECT_TRUE(counters);
        ledger->share_counters(std::move(*counters), fail_open);
        return ledger;
    }
    void limit(store::QuotaLimits l) {
        ASSERT_TRUE(qs_->set_quota(store::QuotaRow{acme_.id, "tenant", "", l, 0}));
    }
    Subject who() { return Subject{acme_.id, "acme", "u1", "dana", "cpk_AAAAAAAA"}; }

    RedisServer redis_;
    std::atomic<int64_t> now_{1'795'000'000'000};
    std::unique_ptr<store::Database> db_;
    std::unique_ptr<store::IdentityStore> ids_;
    std::unique_ptr<store::QuotaStore> qs_;
    store::Tenant acme_;
};

TEST_F(RedisQuota, TwoReplicasShareOneRequestBucket) {
    limit({.rpm = 3});
    auto a = replica(), b = replica();
    EXPECT_TRUE(a->admit(who()).allowed);
    EXPECT_TRUE(b->admit(who()).allowed);
    auto third = a->admit(who());
    ASSERT_TRUE(third.allowed);
    bool has_header = false;
    for (const auto& [k, v] : third.headers) has_header |= k == "x-ratelimit-remaining-requests" && v == "0";
    EXPECT_TRUE(has_header);
    auto refused = b->admit(who()); // the other replica sees the same bucket
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.kind, Kind::requests);
    EXPECT_EQ(refused.retry_after_s, 20);
    now_ += 20'000;
    EXPECT_TRUE(b->admit(who()).allowed);
}

TEST_F(RedisQuota, ConcurrencyAndTokensAcrossReplicas) {
    limit({.tpm = 100, .concurrency = 1});
    auto a = replica(), b = replica();
    auto held = a->admit(who());
    ASSERT_TRUE(held.allowed);
    auto busy = b->admit(who());
    ASSERT_FALSE(busy.allowed);
    EXPECT_EQ(busy.kind, Kind::concurrency);
    held.ticket->finish(150); // frees the slot, overdraws the token bucket
    auto tokens = b->admit(who());
    ASSERT_FALSE(tokens.allowed);
    EXPECT_EQ(tokens.kind, Kind::tokens);
    now_ += 31'000;
    EXPECT_TRUE(b->admit(who()).allowed);
}

TEST_F(RedisQuota, BudgetsStartFromTheUsageRowsAndAreShared) {
    limit({.daily_tokens = 100});
    ASSERT_TRUE(qs_->add_usage({{day_of(now_), "acme", "dana", "cpk_AAAAAAAA", "m", 1, 90, 0, 0}}));
    auto a = replica(), b = replica();
    auto first = a->admit(who());
    ASSERT_TRUE(first.allowed);
    bool warned = false;
    for (const auto& [k, v] : first.headers)
        warned |= k == "x-codepilot-budget-warning" && v == "daily token budget of tenant 'acme' is 90% used";
    EXPECT_TRUE(warned);
    first.ticket->finish(15); // 105 of 100
    auto refused = b->admit(who());
    ASSERT_FALSE(refused.allowed);
    EXPECT_EQ(refused.kind, Kind::daily_tokens);
}

TEST_F(RedisQuota, RedisGoingAwayFailsOpenOrClosedAndRecovers) {
    limit({.rpm = 1});
    auto open = replica(true), closed = replica(false);
    EXPECT_TRUE(open->admit(who()).allowed);
    EXPECT_FALSE(closed->admit(who()).allowed); // the shared bucket is empty
    redis_.stop();
    auto during_open = open->admit(who());
    EXPECT_TRUE(during_open.allowed); // fail open: admitted without limits
    auto during_closed = closed->admit(who());
    EXPECT_FALSE(during_closed.allowed);
    EXPECT_TRUE(during_closed.unavailable);                      // fail closed: 503
    redis_.start();                                              // same port, empty: a fresh bucket
    std::this_thread::sleep_for(std::chrono::milliseconds(600)); // past the reconnect back-off
    EXPECT_TRUE(closed->admit(who()).allowed);
    auto again = open->admit(who());
    EXPECT_FALSE(again.allowed); // enforced again
    EXPECT_FALSE(again.unavailable);
}

} // namespace
} // namespace codepilot::quota
