// Quotas shared through a real redis-server (started by the test on a free port): two
// ledgers act as two replicas; Redis going away fails open or closed, and recovery; AUTH with
// a password or an ACL user; rediss:// with the test CA (scripts/test_services.sh), client
// certificates, and certificates that must be refused.
#include "core/private_files.h"
#include "quota/quota.h"
#include "store/store.h"
#include "support/log_capture.h"
#include "support/test_services.h"

#include <chrono>
#include <csignal>
#include <filesystem>
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

// How a throw-away redis-server is started: plain, or also TLS (optionally asking for client
// certificates), with a password or an ACL user.
struct RedisSetup {
    std::string requirepass;
    std::string acl_user, acl_password; // a user allowed everything, beside `default`
    bool tls = false;
    bool client_certificates = false; // tls-auth-clients yes
    std::string cert = "server";      // server.pem/.key of the test CA (tests/support/test_services.h)
};

// A throw-away redis-server, no persistence. It always has a plain loopback port (so the test
// sees it is up); with TLS, the counters go to its TLS port.
class RedisServer {
public:
    explicit RedisServer(RedisSetup setup = {})
        : setup_(std::move(setup)), port_(free_port()), tls_port_(setup_.tls ? free_port() : 0) {
        start();
    }
    ~RedisServer() { stop(); }
    void start() {
        std::vector<std::string> args = {
            "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no",     "--loglevel",          "warning"};
        if (!setup_.requirepass.empty()) args.insert(args.end(), {"--requirepass", setup_.requirepass});
        if (!setup_.acl_user.empty())
            args.insert(args.end(),
                        {"--user", setup_.acl_user, "on", ">" + setup_.acl_password, "~*", "&*", "+@all"});
        if (setup_.tls)
            args.insert(args.end(), {"--tls-port", std::to_string(tls_port_), "--tls-cert-file",
                                     testenv::tls_file(setup_.cert + ".pem"), "--tls-key-file",
                                     testenv::tls_file(setup_.cert + ".key"), "--tls-ca-cert-file",
                                     testenv::tls_file("ca.pem"), "--tls-auth-clients",
                                     setup_.client_certificates ? "yes" : "no"});
        pid_ = ::fork();
        if (pid_ == 0) {
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv("/usr/bin/redis-server", argv.data());
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
    std::string url() const {
        return setup_.tls ? "rediss://127.0.0.1:" + std::to_string(tls_port_)
                          : "redis://127.0.0.1:" + std::to_string(port_);
    }
    int tls_port() const { return tls_port_; }

private:
    RedisSetup setup_;
    int port_, tls_port_;
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
    config::QuotaConfig settings(const RedisServer& redis) {
        config::QuotaConfig q;
        q.redis_url = redis.url();
        q.redis_timeout_ms = 200;
        if (redis.url().rfind("rediss", 0) == 0) q.redis_ca_file = testenv::tls_file("ca.pem");
        return q;
    }
    std::unique_ptr<QuotaLedger> replica(const config::QuotaConfig& q, bool fail_open = true) {
        auto ledger = std::make_unique<QuotaLedger>(*qs_, nullptr, [this] { return now_.load(); });
        EXPECT_TRUE(config::validate_quota(q));
        auto counters = RedisCounters::connect(q);
        EXPECT_TRUE(counters) << counters.error().message;
        if (!counters) return nullptr;
        ledger->share_counters(std::move(*counters), fail_open);
        return ledger;
    }
    std::unique_ptr<QuotaLedger> replica(bool fail_open = true) {
        return replica(settings(redis_), fail_open);
    }
    void limit(store::QuotaLimits l) {
        ASSERT_TRUE(qs_->set_quota(store::QuotaRow{acme_.id, "tenant", "", l, 0}));
    }
    Subject who() { return Subject{acme_.id, "acme", "u1", "dana", "cpk_AAAAAAAA"}; }
    // A 0600 file under a directory of this test's own, removed with the fixture.
    std::string secret_file(const std::string& content) {
        if (secrets_.empty()) {
            secrets_ = std::filesystem::temp_directory_path() / ("cp-redis-" + std::to_string(::getpid()));
            std::filesystem::remove_all(secrets_);
            EXPECT_TRUE(make_private_dir(secrets_.string()));
        }
        auto path = (secrets_ / ("secret-" + std::to_string(++files_))).string();
        EXPECT_TRUE(write_private_file(path, content));
        return path;
    }
    void TearDown() override {
        if (!secrets_.empty()) std::filesystem::remove_all(secrets_);
    }

    RedisServer redis_;
    std::filesystem::path secrets_;
    int files_ = 0;
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

TEST_F(RedisQuota, AuthWithAPasswordFileOrAnAclUserFromTheEnvironment) {
    RedisServer redis(
        {.requirepass = "counter-secret", .acl_user = "codepilot", .acl_password = "acl-secret"});
    limit({.rpm = 1});
    auto by_file = settings(redis);
    by_file.redis_password_file = secret_file("counter-secret\n");
    auto by_acl = settings(redis);
    by_acl.redis_username = "codepilot";
    ::setenv("CODEPILOT_TEST_REDIS_PASSWORD", "acl-secret", 1);
    by_acl.redis_password_env = "CODEPILOT_TEST_REDIS_PASSWORD";
    testenv::LogCapture log;
    auto a = replica(by_file, false), b = replica(by_acl, false);
    EXPECT_TRUE(a->admit(who()).allowed);
    auto second = b->admit(who()); // the same bucket, reached as the ACL user
    EXPECT_FALSE(second.allowed);
    EXPECT_FALSE(second.unavailable);
    EXPECT_EQ(second.kind, Kind::requests);
    EXPECT_EQ(log.count("quota"), 0) << log.text(); // loopback, a 0600 file: nothing to say
    EXPECT_EQ(log.text().find("acl-secret"), std::string::npos) << log.text();
}

TEST_F(RedisQuota, AWrongOrMissingPasswordIsAClearErrorAndTheFailurePolicyApplies) {
    RedisServer redis({.requirepass = "counter-secret"});
    limit({.rpm = 100});
    auto wrong = settings(redis);
    ::setenv("CODEPILOT_TEST_WRONG_REDIS_PASSWORD", "not-the-secret", 1);
    wrong.redis_password_env = "CODEPILOT_TEST_WRONG_REDIS_PASSWORD";
    testenv::LogCapture log;
    auto closed = replica(wrong, false);
    auto refused = closed->admit(who());
    EXPECT_FALSE(refused.allowed);
    EXPECT_TRUE(refused.unavailable); // fail closed: 503
    EXPECT_GE(log.count("redis 127.0.0.1:"), 1) << log.text();
    EXPECT_GE(log.count("AUTH refused: WRONGPASS"), 1) << log.text();
    auto open = replica(wrong, true);
    auto admitted = open->admit(who());
    EXPECT_TRUE(admitted.allowed); // fail open: admitted without limits
    // No password where Redis wants one: NOAUTH, and the settings that fix it.
    auto none = replica(settings(redis), false);
    EXPECT_TRUE(none->admit(who()).unavailable);
    EXPECT_GE(log.count("(set quota.redis_password_file or quota.redis_password_env)"), 1) << log.text();
    EXPECT_EQ(log.text().find("not-the-secret"), std::string::npos) << log.text();
    EXPECT_EQ(log.text().find("counter-secret"), std::string::npos) << log.text();
}

TEST_F(RedisQuota, RedissWithTheCompanyCaSharesCountersEndToEnd) {
    RedisServer redis({.requirepass = "counter-secret", .tls = true});
    limit({.rpm = 1});
    auto by_address = settings(redis); // rediss://127.0.0.1: the certificate's IP address
    by_address.redis_password_file = secret_file("counter-secret");
    auto by_name = by_address; // and its DNS name, in another database
    by_name.redis_url = "rediss://localhost:" + std::to_string(redis.tls_port()) + "/3";
    testenv::LogCapture log;
    auto a = replica(by_address, false), b = replica(by_name, false), c = replica(by_name, false);
    EXPECT_TRUE(a->admit(who()).allowed);
    auto held = b->admit(who()); // db 3 has a bucket of its own
    ASSERT_TRUE(held.allowed) << held.message;
    held.ticket->finish(10);
    for (auto* replica : {a.get(), c.get()}) { // c shares b's bucket; a its own, already used
        auto refused = replica->admit(who());
        EXPECT_FALSE(refused.allowed);
        EXPECT_FALSE(refused.unavailable);
        EXPECT_EQ(refused.kind, Kind::requests);
    }
    EXPECT_EQ(log.count("quota:"), 0) << log.text(); // nothing failed, nothing insecure
}

TEST_F(RedisQuota, ARedisThatAsksForClientCertificatesGetsOne) {
    RedisServer redis({.tls = true, .client_certificates = true});
    limit({.rpm = 5});
    auto with = settings(redis);
    with.redis_cert_file = testenv::tls_file("client.pem");
    with.redis_key_file = testenv::tls_file("client.key");
    auto mutual = replica(with, false);
    EXPECT_TRUE(mutual->admit(who()).allowed);
    testenv::LogCapture log;
    auto anonymous = replica(settings(redis), false);
    EXPECT_TRUE(anonymous->admit(who()).unavailable);
    // TLS 1.3: the client's handshake ends before Redis checks for its certificate, so Redis's
    // "certificate required" alert may lose the race with its closing the socket.
    EXPECT_GE(log.count("certificate required") + log.count("TLS: Connection reset by peer"), 1)
        << log.text();
}

TEST_F(RedisQuota, AnUntrustedOrMisnamedCertificateIsRefusedAndTheFailurePolicyApplies) {
    RedisServer redis({.tls = true});
    limit({.rpm = 5});
    auto other_ca = settings(redis);
    other_ca.redis_ca_file = testenv::tls_file("other-ca.pem");
    testenv::LogCapture log;
    auto closed = replica(other_ca, false);
    EXPECT_TRUE(closed->admit(who()).unavailable);
    EXPECT_GE(log.count("the server's certificate is not accepted: "), 1) << log.text();
    EXPECT_GE(log.count("(is it issued by a CA in quota.redis_ca_file"), 1) << log.text();
    auto open = replica(other_ca, true);
    EXPECT_TRUE(open->admit(who()).allowed);
    // The test CA's certificate, but for elsewhere.test: the address in the URL is checked.
    RedisServer impostor({.tls = true, .cert = "elsewhere"});
    auto misnamed = replica(settings(impostor), false);
    EXPECT_TRUE(misnamed->admit(who()).unavailable);
    EXPECT_GE(log.count("not accepted: IP address mismatch"), 1) << log.text();
    auto by_name = settings(impostor);
    by_name.redis_url = "rediss://localhost:" + std::to_string(impostor.tls_port());
    EXPECT_TRUE(replica(by_name, false)->admit(who()).unavailable);
    EXPECT_GE(log.count("not accepted: hostname mismatch"), 1) << log.text();
}

TEST_F(RedisQuota, AServerThatNeverAnswersTheHandshakeCostsOneTimeout) {
    // A listening socket nobody accepts from: TCP connects (the backlog), TLS never answers.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 8), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    config::QuotaConfig q;
    q.redis_url = "rediss://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    q.redis_ca_file = testenv::tls_file("ca.pem");
    q.redis_timeout_ms = 200;
    limit({.rpm = 5});
    testenv::LogCapture log;
    const auto start = std::chrono::steady_clock::now();
    auto ledger = replica(q, false);
    auto refused = ledger->admit(who());
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(refused.unavailable);
    EXPECT_GE(took, std::chrono::milliseconds(200));
    EXPECT_LT(took, std::chrono::milliseconds(1500)); // one timeout, then the back-off answers at once
    EXPECT_GE(log.count("TLS handshake timed out after 200 ms"), 1) << log.text();
    ::close(fd);
}

TEST_F(RedisQuota, PlainRedisOnAnotherHostIsSaidAtStart) {
    config::QuotaConfig q;
    q.redis_url = "redis://192.0.2.1:6379"; // TEST-NET-1: not loopback, never answers
    q.redis_timeout_ms = 50;
    ASSERT_FALSE(config::validate_quota(q));
    q.redis_allow_insecure = true;
    ASSERT_TRUE(config::validate_quota(q));
    testenv::LogCapture log;
    auto counters = RedisCounters::connect(q);
    ASSERT_TRUE(counters) << counters.error().message; // unreachable is the failure policy's, not fatal
    EXPECT_EQ(log.count("quota: redis_allow_insecure: redis://192.0.2.1:6379 is not TLS"), 1) << log.text();
    EXPECT_EQ(log.count("quota: Redis at 192.0.2.1:6379 without AUTH"), 1) << log.text();
}

TEST_F(RedisQuota, TlsFilesThatCannotBeReadFailAtStart) {
    config::QuotaConfig q;
    q.redis_url = "rediss://127.0.0.1:1";
    q.redis_ca_file = "/nonexistent/ca.pem";
    auto missing = RedisCounters::connect(q);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("quota.redis_ca_file /nonexistent/ca.pem"), std::string::npos)
        << missing.error().message;
    q.redis_ca_file = testenv::tls_file("ca.pem");
    q.redis_cert_file = testenv::tls_file("client.pem");
    q.redis_key_file = testenv::tls_file("server.key");
    auto mismatched = RedisCounters::connect(q);
    ASSERT_FALSE(mismatched);
    EXPECT_NE(mismatched.error().message.find("quota.redis_key_file"), std::string::npos)
        << mismatched.error().message;
    EXPECT_NE(mismatched.error().message.find("key values mismatch"), std::string::npos)
        << mismatched.error().message;
}

} // namespace
} // namespace codepilot::quota
