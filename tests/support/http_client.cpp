#include "support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace codepilot::testenv {

RawConnection::RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
        throw std::runtime_error("connect to port " + std::to_string(port) + " failed");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

RawConnection::~RawConnection() { close(); }

void RawConnection::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool RawConnection::send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<size_t>(n);
    }
    return true;
}

std::string RawConnection::receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {};
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

bool RawConnection::closed_by_peer(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[4096];
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n <= 0) return true;
    }
    return false;
}

std::string build_request(const std::string& method, const std::string& target, const std::string& body,
                          const std::map<std::string, std::string>& headers, bool keep_alive) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    bool has_type = false;
    for (const auto& [k, v] : headers) {
        req += k + ": " + v + "\r\n";
        has_type |= k == "Content-Type";
    }
    if (!body.empty() && !has_type) req += "Content-Type: application/json\r\n";
    if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (!keep_alive) req += "Connection: close\r\n";
    return req + "\r\n" + body;
}

namespace {

// Decodes as many complete chunks of `raw` as there are into `out`; returns true at the last chunk.
bool dechunk(std::string& raw, std::string& out) {
    for (;;) {
        auto eol = raw.find("\r\n");
        if (eol == std::string::npos) return false;
        size_t size = std::stoul(raw.substr(0, eol), nullptr, 16);
        if (size == 0) return true;
        if (raw.size() < eol + 2 + size + 2) return false;
        out.append(raw, eol + 2, size);
        raw.erase(0, eol + 2 + size + 2);
    }
}

void parse_head(const std::string& head, HttpResponse& res) {
    auto line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    res.status = std::stoi(status_line.substr(status_line.find(' ') + 1, 3));
    size_t pos = line_end + 2;
    while (pos < head.size()) {
        auto end = head.find("\r\n", pos);
        if (end == std::string::npos) end = head.size();
        std::string line = head.substr(pos, end - pos);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            res.headers[name] = value;
        }
        pos = end + 2;
    }
}

}  // namespace

HttpResponse parse_response(const std::string& raw) {
    HttpResponse res;
    auto head_end = raw.find("\r\n\r\n");
    if (head_end == std::string::npos) throw std::runtime_error("incomplete response: " + raw.substr(0, 200));
    parse_head(raw.substr(0, head_end), res);
    std::string rest = raw.substr(head_end + 4);
    if (res.header("transfer-encoding") == "chunked") dechunk(rest, res.body);
    else res.body = rest;
    return res;
}

HttpResponse http(int port, const std::string& method, const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers) {
    RawConnection conn(port);
    conn.send(build_request(method, target, body, headers));
    std::string raw;
    for (;;) {
        std::string part = conn.receive(std::chrono::seconds(120));
        if (part.empty()) break;
        raw += part;
    }
    return parse_response(raw);
}

HttpResponse post_json(int port, const std::string& target, const nlohmann::json& body) {
    return http(port, "POST", target, body.dump());
}

SseStream::SseStream(int port, const std::string& target, const nlohmann::json& body,
                     const std::map<std::string, std::string>& headers)
    : conn_(port) {
    conn_.send(build_request("POST", target, body.dump(), headers));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (raw_.find("\r\n\r\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        std::string part = conn_.receive(std::chrono::seconds(60));
        if (part.empty()) break;
        raw_ += part;
    }
    auto head_end = raw_.find("\r\n\r\n");
    if (head_end == std::string::npos) throw std::runtime_error("no response head");
    HttpResponse head;
    parse_head(raw_.substr(0, head_end), head);
    status_ = head.status;
    raw_.erase(0, head_end + 4);
    if (head.header("transfer-encoding") != "chunked") {
        body_ = raw_;  // an error response
        ended_ = true;
        return;
    }
    // A fast server's whole stream may have come with the head.
    if (!raw_.empty() && dechunk(raw_, body_)) ended_ = true;
}

bool SseStream::fill(std::chrono::milliseconds timeout) {
    if (ended_) return false;
    std::string part = conn_.receive(timeout);
    if (part.empty()) {
        ended_ = true;
        return false;
    }
    raw_ += part;
    if (dechunk(raw_, body_)) ended_ = true;
    return true;
}

std::optional<std::string> SseStream::next_event(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto end = body_.find("\n\n");
        if (end != std::string::npos) {
            std::string event = body_.substr(0, end);
            body_.erase(0, end + 2);
            if (event.rfind("data: ", 0) == 0) return event.substr(6);
            continue;
        }
        if (ended_) return std::nullopt;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        fill(left);
    }
}

std::vector<std::string> SseStream::drain() {
    std::vector<std::string> events;
    while (auto e = next_event()) events.push_back(*e);
    return events;
}

}  // namespace codepilot::testenv
