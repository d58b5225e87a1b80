// WorkerPool: a bounded set of threads for blocking work (store reads on a cache miss, LDAP,
// Argon2, HTTP fetches, Redis, admin handlers), so that no I/O thread ever waits on it.
// `co_await offload(pool, fn)` runs fn on the pool and resumes the coroutine on its own
// executor with fn's result; an exception thrown by fn is rethrown there. The queue is
// bounded: when it is full, offload yields nullopt and the caller answers 503.
#pragma once

#include <boost/asio.hpp>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace codepilot {

class WorkerPool {
public:
    WorkerPool(std::string name, int threads, size_t max_queued)
        : name_(std::move(name)), max_queued_(max_queued) {
        for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { run(); });
    }
    ~WorkerPool() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join(); // queued jobs run first: each resumes a waiting request
    }
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Queues a job; false (the job is dropped) when max_queued jobs already wait.
    bool try_submit(std::function<void()> job) {
        {
            std::lock_guard lock(mu_);
            if (stopping_ || jobs_.size() >= max_queued_) return false;
            jobs_.push_back(std::move(job));
        }
        wake_.notify_one();
        return true;
    }
    size_t queued() const {
        std::lock_guard lock(mu_);
        return jobs_.size();
    }
    int busy() const {
        std::lock_guard lock(mu_);
        return busy_;
    }
    int threads() const { return static_cast<int>(threads_.size()); }
    const std::string& name() const { return name_; }

private:
    void run() {
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock lock(mu_);
                wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
                if (jobs_.empty()) return;
                job = std::move(jobs_.front());
                jobs_.pop_front();
                ++busy_;
            }
            job();
            std::lock_guard lock(mu_);
            --busy_;
        }
    }

    std::string name_;
    size_t max_queued_;
    mutable std::mutex mu_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    int busy_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

// Runs `fn` on `pool` (inline when `pool` is null); the awaiting coroutine resumes on its own
// executor. nullopt: the pool's queue was full and fn did not run. A plain function, not a
// coroutine: fn travels inside the operation, never as a coroutine parameter (GCC 12 can
// destroy such temporaries twice).
template <typename F, typename R = std::invoke_result_t<F&>>
boost::asio::awaitable<std::optional<R>> offload(WorkerPool* pool, F fn) {
    static_assert(!std::is_void_v<R>, "offload needs a function that returns its result");
    namespace asio = boost::asio;
    auto initiation = [pool](auto handler, F job) {
        using Handler = decltype(handler);
        auto shared = std::make_shared<Handler>(std::move(handler));
        auto home = asio::get_associated_executor(*shared);
        auto resume = [shared, home](std::exception_ptr error, std::optional<R> result) {
            asio::post(home, [shared, error, result = std::move(result)]() mutable {
                std::move (*shared)(error, std::move(result));
            });
        };
        auto run = [resume, job = std::move(job)]() mutable {
            try {
                std::optional<R> result(job());
                resume(nullptr, std::move(result));
            } catch (...) {
                resume(std::current_exception(), std::nullopt);
            }
        };
        if (!pool) {
            run();
        } else if (!pool->try_submit(std::move(run))) {
            resume(nullptr, std::nullopt);
        }
    };
    return asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr, std::optional<R>)>(
        std::move(initiation), asio::use_awaitable, std::move(fn));
}

} // namespace codepilot
