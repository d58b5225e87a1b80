// Sign-in throttling on a fake clock: free attempts, doubling waits, a lock, and what clears them.
#include "auth/sign_in_throttle.h"

#include <gtest/gtest.h>

namespace codepilot::auth {
namespace {

class SignInThrottleTest : public ::testing::Test {
protected:
    int64_t now = 1'000'000;
    ThrottleSettings settings() {
        ThrottleSettings s;
        s.free_failures = 3;
        s.base_delay_s = 1;
        s.max_delay_s = 8;
        s.lock_failures = 10;
        s.lock_s = 900;
        return s;
    }
    SignInThrottle throttle{settings(), [this] { return now; }};
};

TEST_F(SignInThrottleTest, TheFirstFailuresAreFreeThenWaitsDoubleUpToTheCap) {
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(throttle.retry_after("10.0.0.1", "pat"), 0);
        throttle.failed("10.0.0.1", "pat");
    }
    EXPECT_EQ(throttle.retry_after("10.0.0.1", "pat"), 1);
    std::vector<int64_t> waits;
    for (int i = 0; i < 5; ++i) {
        now += throttle.retry_after("10.0.0.1", "pat");
        throttle.failed("10.0.0.1", "pat");
        waits.push_back(throttle.retry_after("10.0.0.1", "pat"));
    }
    EXPECT_EQ(waits, (std::vector<int64_t>{2, 4, 8, 8, 8}));
}

TEST_F(SignInThrottleTest, ManyFailuresLockTheAccountFromEveryAddress) {
    for (int i = 0; i < 10; ++i) {
        now += throttle.retry_after("10.0.0." + std::to_string(i), "pat") + 1;
        throttle.failed("10.0.0." + std::to_string(i), "pat"); // a spray from many addresses
    }
    EXPECT_EQ(throttle.retry_after("192.168.1.1", "pat"), 900);
    EXPECT_EQ(throttle.retry_after("192.168.1.1", "someone-else"), 0);
    now += 900;
    EXPECT_EQ(throttle.retry_after("192.168.1.1", "pat"), 0);
}

TEST_F(SignInThrottleTest, SuccessClearsTheAccountButNotTheAddress) {
    for (int i = 0; i < 3; ++i) throttle.failed("10.0.0.1", "pat");
    throttle.succeeded("pat");
    EXPECT_EQ(throttle.retry_after("10.0.0.2", "pat"), 0);
    EXPECT_EQ(throttle.retry_after("10.0.0.1", "other"), 1); // the address still waits
}

TEST_F(SignInThrottleTest, OldFailuresAreForgotten) {
    for (int i = 0; i < 5; ++i) throttle.failed("10.0.0.1", "pat");
    now += 3600;
    EXPECT_EQ(throttle.retry_after("10.0.0.1", "pat"), 0);
    throttle.failed("10.0.0.1", "pat");
    EXPECT_EQ(throttle.retry_after("10.0.0.1", "pat"), 0); // counting starts again
}

TEST_F(SignInThrottleTest, AFloodOfNamesStaysBounded) {
    ThrottleSettings s = settings();
    s.max_keys = 100;
    SignInThrottle small{s, [this] { return now; }};
    for (int i = 0; i < 1000; ++i) {
        ++now;
        small.failed("10.0.0.1", "name-" + std::to_string(i));
    }
    EXPECT_EQ(small.retry_after("10.9.9.9", "name-0"), 0);   // the oldest were forgotten
    EXPECT_GT(small.retry_after("10.0.0.1", "name-999"), 0); // the address is still held
}

} // namespace
} // namespace codepilot::auth
