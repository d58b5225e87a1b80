#include "auth/sign_in_throttle.h"

#include <algorithm>
#include <ctime>

namespace codepilot::auth {

SignInThrottle::SignInThrottle(ThrottleSettings settings, Clock clock)
    : settings_(settings), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return static_cast<int64_t>(std::time(nullptr)); };
}

int64_t SignInThrottle::wait_for(const Entry& e, int64_t now) const {
    if (now - e.last_failure >= settings_.forget_after_s) return 0;
    int64_t until = e.last_failure;
    if (e.failures >= settings_.lock_failures) {
        until += settings_.lock_s;
    } else if (e.failures >= settings_.free_failures) {
        const int doublings = std::min(e.failures - settings_.free_failures, 30);
        until += std::min(settings_.max_delay_s, settings_.base_delay_s << doublings);
    }
    return std::max<int64_t>(0, until - now);
}

int64_t SignInThrottle::retry_after(const std::string& address, const std::string& username) {
    const int64_t now = clock_();
    std::lock_guard lock(mu_);
    int64_t wait = 0;
    for (const auto& key : {"a:" + address, "u:" + username})
        if (auto it = entries_.find(key); it != entries_.end())
            wait = std::max(wait, wait_for(it->second, now));
    return wait;
}

void SignInThrottle::fail_key(const std::string& key, int64_t now) {
    if (entries_.size() >= settings_.max_keys && !entries_.count(key)) {
        // Full: forget the key that failed longest ago, so a flood of names cannot grow the map.
        auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
            return a.second.last_failure < b.second.last_failure;
        });
        entries_.erase(oldest);
    }
    auto& e = entries_[key];
    if (now - e.last_failure >= settings_.forget_after_s) e.failures = 0;
    ++e.failures;
    e.last_failure = now;
}

void SignInThrottle::failed(const std::string& address, const std::string& username) {
    const int64_t now = clock_();
    std::lock_guard lock(mu_);
    fail_key("a:" + address, now);
    fail_key("u:" + username, now);
}

void SignInThrottle::succeeded(const std::string& username) {
    std::lock_guard lock(mu_);
    entries_.erase("u:" + username);
}

} // namespace codepilot::auth
