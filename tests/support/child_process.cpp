#include "support/child_process.h"

#include "support/http_client.h"

#include <arpa/inet.h>
#include <csignal>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace codepilot::testenv {

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

int spawn_logged(const std::vector<std::string>& args, const std::string& log_path) {
    pid_t pid = ::fork();
    if (pid == 0) {
        FILE* f = std::freopen(log_path.c_str(), "w", stderr);
        (void)f;
        ::dup2(::fileno(stderr), STDOUT_FILENO);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return pid;
}

ChildServer::ChildServer(const std::vector<std::string>& args, int port, const std::string& log_path,
                         const std::string& health_path, int wait_ms)
    : port_(port), log_path_(log_path) {
    pid_ = spawn_logged(args, log_path);
    for (int waited = 0; waited < wait_ms; waited += 100) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) { // it exited
            pid_ = -1;
            return;
        }
        try {
            if (http(port_, "GET", health_path).status == 200) {
                ready_ = true;
                return;
            }
        } catch (const std::exception&) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

ChildServer::~ChildServer() {
    stop();
}

void ChildServer::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
}

std::string ChildServer::log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

} // namespace codepilot::testenv
