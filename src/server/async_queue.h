// AsyncQueue: items pushed from any thread (the engine's decode thread), awaited by one
// coroutine on its strand. A push posts a timer cancel to wake the waiter; the waiter always
// checks the queue before waiting, so no wake-up is lost.
#pragma once

#include <boost/asio.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

namespace codepilot::server {

template <typename T>
class AsyncQueue : public std::enable_shared_from_this<AsyncQueue<T>> {
public:
    explicit AsyncQueue(boost::asio::any_io_executor executor) : timer_(executor) {}

    void push(T item) {
        {
            std::lock_guard lock(mu_);
            items_.push_back(std::move(item));
        }
        boost::asio::post(timer_.get_executor(), [self = this->shared_from_this()] { self->timer_.cancel(); });
    }

    // The next item, or nullopt after a wake-up without one (a poke, or a stale wake-up):
    // callers loop and re-check their own conditions.
    boost::asio::awaitable<std::optional<T>> pop() {
        {
            std::lock_guard lock(mu_);
            if (!items_.empty()) {
                T item = std::move(items_.front());
                items_.pop_front();
                co_return item;
            }
        }
        timer_.expires_at(boost::asio::steady_timer::time_point::max());
        co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        std::lock_guard lock(mu_);
        if (items_.empty()) co_return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        co_return item;
    }

    // Wakes the waiter without an item (e.g. the client went away).
    void poke() {
        boost::asio::post(timer_.get_executor(), [self = this->shared_from_this()] { self->timer_.cancel(); });
    }

private:
    std::mutex mu_;
    std::deque<T> items_;
    boost::asio::steady_timer timer_;
};

}  // namespace codepilot::server
