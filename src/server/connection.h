// Internal: one TCP connection, served by a coroutine on its own strand.
#pragma once

#include "server/server.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace codepilot::server {

struct HttpServer::Shared {
    asio::io_context& io;
    ServerOptions options;
    std::shared_ptr<Router> router;
    asio::ip::tcp::acceptor acceptor;
    std::atomic<bool> draining{false};
    std::atomic<int> in_flight{0};
    std::atomic<uint64_t> next_id{1};
    std::mutex mu;
    std::unordered_map<uint64_t, std::weak_ptr<Connection>> connections;
    std::unordered_map<std::string, int> per_address; // open connections by client address

    Shared(asio::io_context& io_, ServerOptions o, std::shared_ptr<Router> r)
        : io(io_), options(std::move(o)), router(std::move(r)), acceptor(io_) {}
};

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(std::shared_ptr<HttpServer::Shared> shared, asio::ip::tcp::socket socket, uint64_t id);
    asio::awaitable<void> run();
    // Closes the connection if it is between requests (on its strand).
    void close_if_idle();
    void close();
    // A shutdown's grace period is over: the request in flight is cancelled as if its client
    // had gone, and settles as 503 (on its strand).
    void cut_request();

    beast::tcp_stream& stream() { return stream_; }
    HttpServer::Shared& shared() { return *shared_; }
    bool keep_alive = true;
    std::string remote;
    bool gone = false;
    bool cut = false;
    std::function<void()> gone_callback;

private:
    asio::awaitable<void> handle(Request& request, const std::string& request_id);
    asio::awaitable<void> watch_disconnect();
    asio::awaitable<void> write_error(http::status status, std::string_view message);
    asio::awaitable<void> write_response_and_close(const HeaderVerdict& verdict,
                                                   const std::string& request_id);

    std::shared_ptr<HttpServer::Shared> shared_;
    beast::tcp_stream stream_;
    uint64_t id_;
    bool idle_ = true;
    bool handling_ = false;
    // The client sent requests ahead of our answers (pipelining). Its end of stream then
    // means "no more requests" (a half-close), not "gone": what it sent is still answered.
    bool pipelined_ = false;
    bool peer_done_ = false;
};

} // namespace codepilot::server
