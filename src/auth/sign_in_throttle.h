// SignInThrottle: failed sign-ins slow down, then lock, the address and the account they came
// from. After `free_failures` failures each further attempt must wait twice as long as the one
// before (from `base_delay_s`, at most `max_delay_s`); after `lock_failures` the key is locked
// for `lock_s`. A success clears the account's count (an address keeps its own: one person's
// success does not clear a spraying neighbour). Bounded: the oldest keys go first.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace codepilot::auth {

struct ThrottleSettings {
    int free_failures = 5;
    int64_t base_delay_s = 1;
    int64_t max_delay_s = 60;
    int lock_failures = 20;
    int64_t lock_s = 900;
    int64_t forget_after_s = 3600; // a key without failures for this long starts afresh
    size_t max_keys = 100000;
};

class SignInThrottle {
public:
    using Clock = std::function<int64_t()>; // unix seconds
    explicit SignInThrottle(ThrottleSettings settings = {}, Clock clock = {});

    // Seconds to wait before `address` or `username` may try again; 0: go ahead.
    int64_t retry_after(const std::string& address, const std::string& username);
    void failed(const std::string& address, const std::string& username);
    void succeeded(const std::string& username);

private:
    struct Entry {
        int failures = 0;
        int64_t last_failure = 0;
    };
    int64_t wait_for(const Entry& e, int64_t now) const;
    void fail_key(const std::string& key, int64_t now);

    ThrottleSettings settings_;
    Clock clock_;
    std::mutex mu_;
    std::unordered_map<std::string, Entry> entries_; // "a:<address>" | "u:<username>"
};

} // namespace codepilot::auth
