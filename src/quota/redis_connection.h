// One connection to Redis over TCP, optionally TLS. hiredis 0.14 has no TLS, so the socket and
// OpenSSL are ours and hiredis only encodes commands and parses replies (RESP). Connecting
// (TCP and the TLS handshake) and each command must finish within the timeout.
#pragma once

#include "core/result.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

struct redisReader;
struct redisReply;
struct ssl_ctx_st;
struct ssl_st;

namespace codepilot::quota {

struct ReplyFree {
    void operator()(redisReply* reply) const;
};
using RedisReply = std::unique_ptr<redisReply, ReplyFree>;

// What rediss:// trusts and presents, loaded once at start: a file that cannot be read is a
// configuration error then, not a failure of every later call.
class RedisTls {
public:
    // ca_file "": the system's CAs. cert_file and key_file: a client certificate (tls-auth-clients).
    static Result<std::shared_ptr<const RedisTls>>
    create(const std::string& ca_file, const std::string& cert_file, const std::string& key_file);
    ~RedisTls();
    RedisTls(const RedisTls&) = delete;
    RedisTls& operator=(const RedisTls&) = delete;
    ssl_ctx_st* context() const { return ctx_; }

private:
    explicit RedisTls(ssl_ctx_st* ctx) : ctx_(ctx) {}
    ssl_ctx_st* ctx_;
};

class RedisConnection {
public:
    // Connects to host:port; with `tls`, completes a handshake that verifies the certificate
    // against its CAs and against `host` (a DNS name or an IP address).
    static Result<std::unique_ptr<RedisConnection>> open(const std::string& host, int port,
                                                         std::shared_ptr<const RedisTls> tls, int timeout_ms);
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    // Sends one command and reads its reply; an error reply is a reply. A failure (timeout,
    // closed, protocol) leaves the connection broken.
    Result<RedisReply> command(const std::vector<std::string>& args);
    bool broken() const { return broken_; }

private:
    using Deadline = std::chrono::steady_clock::time_point;
    RedisConnection(int fd, int timeout_ms);
    Status handshake(ssl_ctx_st* ctx, const std::string& host, Deadline deadline);
    Status write_all(const char* data, size_t size, Deadline deadline);
    Result<size_t> read_some(char* data, size_t size, Deadline deadline);
    Status wait(short events, Deadline deadline);
    Error fail(std::string why);

    int fd_;
    int timeout_ms_;
    std::shared_ptr<const RedisTls> tls_; // keeps the SSL_CTX alive while ssl_ uses it
    ssl_st* ssl_ = nullptr;
    redisReader* reader_;
    std::string peer_; // host:port, for messages
    bool broken_ = false;
};

} // namespace codepilot::quota
