// A fixed set of connections handed out one caller at a time (internal to store/).
#pragma once

#include "store/database.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

namespace codepilot::store {

class ConnectionPool {
public:
    void add(std::unique_ptr<Connection> c) { idle_.push_back(std::move(c)); }
    size_t size() const { return idle_.size(); }

    Status run(const std::function<Status(Connection&)>& work) {
        std::unique_ptr<Connection> c;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return !idle_.empty(); });
            c = std::move(idle_.back());
            idle_.pop_back();
        }
        auto st = work(*c);
        {
            std::lock_guard lock(mu_);
            idle_.push_back(std::move(c));
        }
        cv_.notify_one();
        return st;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Connection>> idle_;
};

} // namespace codepilot::store
