#include "quota/redis_connection.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace codepilot::quota {

void ReplyFree::operator()(redisReply* reply) const {
    if (reply) freeReplyObject(reply);
}

namespace {

using Clock = std::chrono::steady_clock;

std::string timed_out(int timeout_ms) {
    return "timed out after " + std::to_string(timeout_ms) + " ms";
}

// Waits until `fd` is ready for `events` or the deadline passes; "" or what went wrong.
std::string wait_fd(int fd, short events, Clock::time_point deadline, int timeout_ms) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return timed_out(timeout_ms);
        pollfd p{fd, events, 0};
        int n = ::poll(&p, 1, static_cast<int>(left));
        if (n > 0) return "";
        if (n == 0) return timed_out(timeout_ms);
        if (errno != EINTR) return std::string("poll: ") + std::strerror(errno);
    }
}

// The oldest OpenSSL error of this thread, or the system's.
std::string tls_error(int saved_errno) {
    if (unsigned long code = ERR_get_error()) {
        char text[256];
        ERR_error_string_n(code, text, sizeof text);
        ERR_clear_error();
        return text;
    }
    return saved_errno ? std::strerror(saved_errno) : "the connection was closed";
}

// OpenSSL's socket BIO writes with write(2), and a peer that has gone would raise SIGPIPE and
// end the process; this one sends with MSG_NOSIGNAL. The descriptor is the BIO's data.
int fd_of(BIO* bio) {
    return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
}
bool would_block() {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}
int bio_write(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    auto n = ::send(fd_of(bio), data, static_cast<size_t>(size), MSG_NOSIGNAL);
    if (n < 0 && would_block()) BIO_set_retry_write(bio);
    return static_cast<int>(n);
}
int bio_read(BIO* bio, char* data, int size) {
    BIO_clear_retry_flags(bio);
    auto n = ::recv(fd_of(bio), data, static_cast<size_t>(size), 0);
    if (n < 0 && would_block()) BIO_set_retry_read(bio);
    return static_cast<int>(n);
}
long bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}
BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] { // built once, never changed
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "codepilot redis socket");
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
        return m;
    }();
    return method;
}

bool is_ip_literal(const std::string& host) {
    in6_addr any{};
    return ::inet_pton(AF_INET, host.c_str(), &any) == 1 || ::inet_pton(AF_INET6, host.c_str(), &any) == 1;
}

// A TCP connection to one of host's addresses, non-blocking; "" in `why` on success.
int connect_tcp(const std::string& host, int port, Clock::time_point deadline, int timeout_ms,
                std::string& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
        why = std::string("cannot resolve the host: ") + ::gai_strerror(rc);
        return -1;
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
    why = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = std::strerror(errno);
            continue;
        }
        if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                why = std::strerror(errno);
                ::close(fd);
                continue;
            }
            why = wait_fd(fd, POLLOUT, deadline, timeout_ms);
            int err = 0;
            socklen_t len = sizeof err;
            if (why.empty() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
                why = std::strerror(err);
            if (!why.empty()) {
                ::close(fd);
                continue;
            }
        }
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        why.clear();
        return fd;
    }
    return -1;
}

} // namespace

Result<std::shared_ptr<const RedisTls>>
RedisTls::create(const std::string& ca_file, const std::string& cert_file, const std::string& key_file) {
    ERR_clear_error();
    SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
    if (!raw) return make_error(ErrorCode::internal, "redis TLS: " + tls_error(0));
    std::shared_ptr<const RedisTls> tls(new RedisTls(raw));
    SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
    auto bad = [](const std::string& what) {
        return make_error(ErrorCode::invalid_argument, what + ": " + tls_error(errno));
    };
    if (ca_file.empty() ? SSL_CTX_set_default_verify_paths(raw) != 1
                        : SSL_CTX_load_verify_locations(raw, ca_file.c_str(), nullptr) != 1)
        return bad(ca_file.empty() ? "redis TLS: the system's CAs" : "quota.redis_ca_file " + ca_file);
    if (!cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(raw, cert_file.c_str()) != 1)
            return bad("quota.redis_cert_file " + cert_file);
        if (SSL_CTX_use_PrivateKey_file(raw, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            return bad("quota.redis_key_file " + key_file);
        if (SSL_CTX_check_private_key(raw) != 1)
            return bad("quota.redis_key_file " + key_file + " does not belong to quota.redis_cert_file");
    }
    return tls;
}

RedisTls::~RedisTls() {
    SSL_CTX_free(ctx_);
}

RedisConnection::RedisConnection(int fd, int timeout_ms)
    : fd_(fd), timeout_ms_(timeout_ms), reader_(redisReaderCreate()) {}

RedisConnection::~RedisConnection() {
    if (ssl_) SSL_free(ssl_); // no close_notify: the peer sees the socket close, as with hiredis
    if (reader_) redisReaderFree(reader_);
    ::close(fd_);
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::open(const std::string& host, int port,
                                                               std::shared_ptr<const RedisTls> tls,
                                                               int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    const std::string peer =
        (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    std::string why;
    int fd = connect_tcp(host, port, deadline, timeout_ms, why);
    if (fd < 0) return make_error(ErrorCode::unavailable, "redis " + peer + ": " + why);
    std::unique_ptr<RedisConnection> c(new RedisConnection(fd, timeout_ms));
    c->peer_ = peer;
    if (!c->reader_) return make_error(ErrorCode::internal, "redis: out of memory");
    if (tls) {
        c->tls_ = std::move(tls);
        if (auto st = c->handshake(c->tls_->context(), host, deadline); !st) return st.error();
    }
    return c;
}

Status RedisConnection::handshake(ssl_ctx_st* ctx, const std::string& host, Deadline deadline) {
    ERR_clear_error();
    ssl_ = SSL_new(ctx);
    BIO* bio = ssl_ ? BIO_new(socket_method()) : nullptr;
    if (!bio) return fail("TLS: " + tls_error(0));
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd_)));
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // The certificate must name what quota.redis_url names: an IP address, or a host name.
    if (is_ip_literal(host)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
    } else {
        SSL_set_tlsext_host_name(ssl_, host.c_str());
        SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl_, host.c_str());
    }
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(ssl_);
        if (rc == 1) return Ok{};
        const int saved = errno;
        const int err = SSL_get_error(ssl_, rc);
        std::string waited;
        if (err == SSL_ERROR_WANT_READ)
            waited = wait_fd(fd_, POLLIN, deadline, timeout_ms_);
        else if (err == SSL_ERROR_WANT_WRITE)
            waited = wait_fd(fd_, POLLOUT, deadline, timeout_ms_);
        else if (long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK)
            return fail(std::string("TLS: the server's certificate is not accepted: ") +
                        X509_verify_cert_error_string(verify) +
                        " (is it issued by a CA in quota.redis_ca_file, or the system's, and for the host "
                        "in quota.redis_url?)");
        else
            return fail("TLS handshake: " + tls_error(saved));
        if (!waited.empty()) return fail("TLS handshake " + waited);
    }
}

Error RedisConnection::fail(std::string why) {
    broken_ = true;
    return make_error(ErrorCode::unavailable, "redis " + peer_ + ": " + why);
}

Status RedisConnection::wait(short events, Deadline deadline) {
    if (auto why = wait_fd(fd_, events, deadline, timeout_ms_); !why.empty()) return fail(why);
    return Ok{};
}

Status RedisConnection::write_all(const char* data, size_t size, Deadline deadline) {
    size_t done = 0;
    while (done < size) {
        if (ssl_) {
            ERR_clear_error();
            int n = SSL_write(ssl_, data + done, static_cast<int>(size - done));
            if (n > 0) {
                done += static_cast<size_t>(n);
                continue;
            }
            const int saved = errno;
            const int err = SSL_get_error(ssl_, n);
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                return fail("TLS: " + tls_error(saved));
            if (auto st = wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline); !st) return st;
            continue;
        }
        auto n = ::send(fd_, data + done, size - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (!would_block()) return fail(std::strerror(errno));
        if (auto st = wait(POLLOUT, deadline); !st) return st;
    }
    return Ok{};
}

Result<size_t> RedisConnection::read_some(char* data, size_t size, Deadline deadline) {
    for (;;) {
        if (ssl_) {
            ERR_clear_error();
            int n = SSL_read(ssl_, data, static_cast<int>(size));
            if (n > 0) return static_cast<size_t>(n);
            const int saved = errno;
            const int err = SSL_get_error(ssl_, n);
            if (err == SSL_ERROR_ZERO_RETURN) return fail("the connection was closed");
            if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                return fail("TLS: " + tls_error(saved));
            if (auto st = wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline); !st)
                return st.error();
            continue;
        }
        auto n = ::recv(fd_, data, size, 0);
        if (n > 0) return static_cast<size_t>(n);
        if (n == 0) return fail("the connection was closed");
        if (!would_block()) return fail(std::strerror(errno));
        if (auto st = wait(POLLIN, deadline); !st) return st.error();
    }
}

Result<RedisReply> RedisConnection::command(const std::vector<std::string>& args) {
    if (broken_) return fail("the connection is broken");
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* raw = nullptr;
    int size = redisFormatCommandArgv(&raw, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (size < 0) return make_error(ErrorCode::internal, "redis: cannot encode a command");
    std::unique_ptr<char, void (*)(char*)> encoded(raw, redisFreeCommand);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    if (auto st = write_all(encoded.get(), static_cast<size_t>(size), deadline); !st) return st.error();
    for (;;) {
        void* reply = nullptr;
        if (redisReaderGetReply(reader_, &reply) != REDIS_OK)
            return fail(std::string("protocol error: ") + reader_->errstr);
        if (reply) return RedisReply(static_cast<redisReply*>(reply));
        char buffer[16 * 1024];
        auto n = read_some(buffer, sizeof buffer, deadline);
        if (!n) return n.error();
        if (redisReaderFeed(reader_, buffer, *n) != REDIS_OK)
            return fail(std::string("protocol error: ") + reader_->errstr);
    }
}

} // namespace codepilot::quota
