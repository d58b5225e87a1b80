// Test HTTP client over plain POSIX sockets: full control over what goes on the wire
// (raw bytes, half-sent requests, early disconnects) and incremental SSE reading.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace codepilot::testenv {

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    nlohmann::json json() const { return nlohmann::json::parse(body); }
    std::string header(const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? "" : it->second;
    }
};

class RawConnection {
public:
    explicit RawConnection(int port);
    ~RawConnection();
    RawConnection(const RawConnection&) = delete;
    bool send(const std::string& bytes);
    // Reads what arrives within `timeout`; empty string on EOF or timeout.
    std::string receive(std::chrono::milliseconds timeout);
    // True when the peer closed the connection within `timeout`.
    bool closed_by_peer(std::chrono::milliseconds timeout);
    void close();
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

std::string build_request(const std::string& method, const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers = {}, bool keep_alive = false);

// Parses one complete response (dechunks chunked bodies).
HttpResponse parse_response(const std::string& raw);

HttpResponse http(int port, const std::string& method, const std::string& target, const std::string& body = "",
                  const std::map<std::string, std::string>& headers = {});
HttpResponse post_json(int port, const std::string& target, const nlohmann::json& body);

// A streaming call: events are read as they arrive.
class SseStream {
public:
    SseStream(int port, const std::string& target, const nlohmann::json& body,
              const std::map<std::string, std::string>& headers = {});
    int status() const { return status_; }
    // The next `data:` payload, or nullopt at the end of the stream / on timeout.
    std::optional<std::string> next_event(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // All remaining payloads up to the end of the stream.
    std::vector<std::string> drain();
    void close() { conn_.close(); }

private:
    bool fill(std::chrono::milliseconds timeout);
    RawConnection conn_;
    std::string raw_;      // bytes not yet dechunked
    std::string body_;     // dechunked bytes not yet split into events
    bool ended_ = false;
    int status_ = 0;
};

}  // namespace codepilot::testenv
