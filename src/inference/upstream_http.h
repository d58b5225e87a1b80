// Internal: the HTTP(S) client side of upstream backends: replicas of one model, their
// keep-alive connections, deadlines, health checks, circuit breakers, and the choice of a
// replica per call (least outstanding requests).
#pragma once

#include "inference/inference.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace codepilot::inference {

template <typename T> using Co = boost::asio::awaitable<T>;

struct Endpoint {
    std::string url; // as configured (for health reports; never carries credentials)
    bool tls = false;
    std::string host, port, base; // base: path prefix without a trailing slash
};
// http[s]://host[:port][/base]; a trailing /v1 is dropped (paths are added per call).
Result<Endpoint> parse_endpoint(const std::string& url);

// Each server-sent event's data; false stops reading (the connection is then closed).
using StreamSink = std::function<bool(const std::string& data)>;
// Thrown by a sink for an event that makes no sense; ends the call with that message.
struct UpstreamError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Reply {
    int status = 0;
    std::string body;          // a non-streamed answer (or an error answer)
    double connected_ms = 0;   // from the call to a connection being ready
    bool stream_ended = false; // data: [DONE] arrived
};

class ReplicaPool {
public:
    ReplicaPool(const UpstreamOptions& options, std::vector<Endpoint> endpoints);
    ~ReplicaPool();
    void start();
    void stop();

    // Runs a coroutine on a strand of the pool's threads.
    template <typename F> void spawn(F f) {
        boost::asio::co_spawn(boost::asio::make_strand(io_), std::move(f), boost::asio::detached);
    }

    // POSTs `body` to `path` on the least-loaded available replica, trying another one (up to
    // max_attempts) while no byte of an answer has come; with `sink`, the 200 answer is read
    // as server-sent events. `interrupted` is polled while waiting (cancellation, deadlines).
    // Errors: unavailable (no replica answered), bad_gateway (a broken answer), or the
    // upstream's own 4xx as invalid_argument.
    Co<Result<Reply>> call(const std::string& path, const std::string& body, StreamSink* sink,
                           std::function<bool()> interrupted);

    bool any_available() const;
    Health health() const;

private:
    struct Conn;
    struct Replica;
    std::optional<size_t> pick(const std::vector<size_t>& tried);
    void record(Replica& r, bool ok, const std::string& error);
    Co<std::shared_ptr<Conn>> connect(const Endpoint& e, std::string& error);
    Co<void> check_health();

    UpstreamOptions options_;
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    boost::asio::ssl::context tls_;
    std::vector<std::unique_ptr<Replica>> replicas_;
    std::vector<std::thread> threads_;
    mutable std::mutex mu_;
    size_t rotation_ = 0;
    std::atomic<bool> stopping_{false};
};

} // namespace codepilot::inference
