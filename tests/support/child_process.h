// A server started as a child process (llama-server, a second `codepilot serve`) on a free
// loopback port, stopped with SIGTERM (then SIGKILL) on destruction; its output goes to a log.
#pragma once

#include <string>
#include <vector>

namespace codepilot::testenv {

// A TCP port nothing listens on right now (bound and released).
int free_port();

// Forks and execs `args` (args[0] an absolute path) with stdout and stderr in `log_path`.
int spawn_logged(const std::vector<std::string>& args, const std::string& log_path);

class ChildServer {
public:
    // Starts `args` (args[0] an absolute path) and waits until GET `health_path` answers 200.
    ChildServer(const std::vector<std::string>& args, int port, const std::string& log_path,
                const std::string& health_path = "/health", int wait_ms = 60000);
    ~ChildServer();
    ChildServer(const ChildServer&) = delete;
    ChildServer& operator=(const ChildServer&) = delete;
    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    bool ready() const { return ready_; }
    std::string log() const; // for failure messages
    void stop();

private:
    int pid_ = -1;
    int port_ = 0;
    bool ready_ = false;
    std::string log_path_;
};

} // namespace codepilot::testenv
