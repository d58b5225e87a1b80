// The binary as a user runs it: flags, config errors, graceful shutdown on SIGTERM, and what a
// first start leaves on disk.
#include "audit/audit.h"
#include "store/store.h"
#include "support/child_process.h"
#include "support/http_client.h"
#include "support/test_env.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <mutex>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace codepilot::testenv;
using json = nlohmann::json;

namespace {

std::string run_capture(const std::string& command, int& status) {
    std::string out;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
    status = ::pclose(p);
    return out;
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    return spawn_logged(args, log);
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The owner key a first start wrote to <data dir>/bootstrap-owner.key ("" when there is none).
std::string owner_key_in(const std::filesystem::path& data_dir) {
    std::string key;
    std::ifstream(data_dir / "bootstrap-owner.key") >> key;
    return key;
}

unsigned mode_of(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 0777;
}

void stop(pid_t pid) {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
}

int wait_port(const std::string& file) {
    for (int i = 0; i < 300; ++i) {
        std::ifstream in(file);
        int port = 0;
        if (in >> port && port > 0) return port;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
}

} // namespace

TEST(Cli, PrintsItsVersion) {
    int status = 0;
    auto out = run_capture(std::string(CODEPILOT_BINARY) + " --version", status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_NE(out.find("codepilot 0."), std::string::npos) << out;
}

TEST(Cli, UnknownConfigKeyIsRejectedByName) {
    std::string path = std::filesystem::temp_directory_path() / "codepilot-bad.toml";
    std::ofstream(path) << "[server]\nport = 1\nverbose = true\n";
    int status = 0;
    auto out = run_capture(std::string(CODEPILOT_BINARY) + " serve --config " + path, status);
    EXPECT_EQ(WEXITSTATUS(status), 2);
    EXPECT_NE(out.find("unknown key 'server.verbose'"), std::string::npos) << out;
}

TEST(Cli, MissingModelFileIsAClearError) {
    int status = 0;
    auto out = run_capture(std::string(CODEPILOT_BINARY) + " serve --model /nonexistent/model.gguf --port 0",
                           status);
    EXPECT_NE(WEXITSTATUS(status), 0);
    EXPECT_NE(out.find("model file not found"), std::string::npos) << out;
}

TEST(Cli, SynthWritesALoadableModel) {
    std::string path =
        std::filesystem::temp_directory_path() / ("cli-synth-" + std::to_string(::getpid()) + ".gguf");
    int status = 0;
    auto out = run_capture(
        std::string(CODEPILOT_BINARY) + " model synth " + path +
            " --vocab deepseek-coder --layers 1 --embd 64 --heads 2 --kv-heads 1 --ff 64 --type f16",
        status);
    ASSERT_EQ(WEXITSTATUS(status), 0) << out;
    EXPECT_GT(std::filesystem::file_size(path), 1000u);
    std::filesystem::remove(path);
}

TEST(Cli, SigtermLetsInFlightRequestsFinishThenExits) {
    auto dir = std::filesystem::temp_directory_path() / ("cli-serve-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::string port_file = (dir / "port").string();
    pid_t pid =
        spawn({CODEPILOT_BINARY, "serve", "--model", tiny_model(), "--port", "0", "--port-file", port_file,
               "--data-dir", dir.string(), "--threads", "1", "--parallel", "2", "--ctx", "2048"},
              (dir / "log").string());
    int port = wait_port(port_file);
    ASSERT_GT(port, 0);
    // Authentication is on by default: the first start wrote the owner's key to a file.
    std::string key = owner_key_in(dir);
    ASSERT_FALSE(key.empty());
    EXPECT_EQ(http(port, "GET", "/v1/models").status, 401);

    SseStream stream(port, "/v1/completions",
                     {{"prompt", "slow"}, {"max_tokens", 600}, {"stream", true}, {"ignore_eos", true}},
                     {{"Authorization", "Bearer " + key}});
    ASSERT_EQ(stream.status(), 200);
    ASSERT_TRUE(stream.next_event().has_value());
    ::kill(pid, SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // New connections are refused while the stream is still finishing.
    EXPECT_THROW(http(port, "GET", "/health"), std::runtime_error);
    auto rest = stream.drain();
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(rest.back(), "[DONE]");
    int finished_tokens = 0;
    for (const auto& e : rest)
        if (e != "[DONE]" && json::parse(e)["choices"][0]["finish_reason"] == "length") finished_tokens = 600;
    EXPECT_EQ(finished_tokens, 600); // it ran to its end, not cut off
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    std::filesystem::remove_all(dir);
}

TEST(Cli, KillNineUnderLoadLosesNoAuditRecordOfAnAnsweredCall) {
    auto dir = std::filesystem::temp_directory_path() / ("cli-kill9-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "codepilot.toml") << "[audit]\ndurability = \"sync\"\n";
    std::string port_file = (dir / "port").string();
    pid_t pid = spawn({CODEPILOT_BINARY, "serve", "--config", (dir / "codepilot.toml").string(), "--model",
                       tiny_model(), "--port", "0", "--port-file", port_file, "--data-dir", dir.string(),
                       "--threads", "1"},
                      (dir / "log").string());
    int port = wait_port(port_file);
    ASSERT_GT(port, 0);
    std::string key = owner_key_in(dir);
    ASSERT_FALSE(key.empty());
    const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + key}};

    // Four clients call as fast as they can; the server is killed without warning meanwhile.
    std::mutex mu;
    std::set<std::string> answered; // request ids of complete 200 responses
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
        clients.emplace_back([&] {
            while (!stop) {
                try {
                    auto r = http(port, "GET", "/v1/models", "", auth);
                    if (r.status == 200) {
                        std::lock_guard lock(mu);
                        answered.insert(r.header("x-request-id"));
                    }
                } catch (const std::exception&) {
                    return; // the server is gone
                }
            }
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    stop = true;
    for (auto& t : clients) t.join();
    ASSERT_GT(answered.size(), 20u);

    auto db = codepilot::store::open_database("sqlite://" + (dir / "codepilot.db").string(), 1);
    ASSERT_TRUE(db);
    auto rows = (*db)->query("SELECT body FROM audit_log WHERE kind = 'call'");
    ASSERT_TRUE(rows);
    std::set<std::string> recorded;
    for (const auto& r : *rows) {
        auto body = json::parse(r.text(0));
        if (body["status"] == 200) recorded.insert(body["request_id"].get<std::string>());
    }
    for (const auto& id : answered) EXPECT_TRUE(recorded.count(id)) << "answered but not audited: " << id;
    // Recorded but never received: at most the calls in flight at the kill, one per client.
    EXPECT_LE(recorded.size(), answered.size() + 4);
    auto keys = codepilot::audit::load_chain_keys("", dir.string(), false); // the one the server generated
    ASSERT_TRUE(keys);
    auto report = codepilot::audit::verify(**db, {&*keys, {}});
    ASSERT_TRUE(report);
    EXPECT_FALSE(report->first_bad_seq) << report->problem;
    std::filesystem::remove_all(dir);
}

TEST(Cli, AFirstStartKeepsItsSecretsInPrivateFilesAndOutOfTheLog) {
    auto dir =
        std::filesystem::temp_directory_path() / ("cli-private-" + std::to_string(::getpid())) / "data";
    std::filesystem::remove_all(dir.parent_path());
    std::filesystem::create_directories(dir.parent_path());
    const auto log = dir.parent_path() / "log";
    std::string port_file = (dir.parent_path() / "port").string();
    const std::vector<std::string> args = {CODEPILOT_BINARY, "serve",      "--model",     tiny_model(),
                                           "--port",         "0",          "--port-file", port_file,
                                           "--data-dir",     dir.string(), "--threads",   "1"};
    // The modes must not depend on a careful umask.
    mode_t umask_before = ::umask(0);
    pid_t pid = spawn(args, log.string());
    ::umask(umask_before);
    int port = wait_port(port_file);
    ASSERT_GT(port, 0) << read_text(log);

    EXPECT_EQ(mode_of(dir), 0700u);
    for (const char* file : {"codepilot.db", "codepilot.db-wal", "codepilot.db-shm", "bootstrap-owner.key"})
        EXPECT_EQ(mode_of(dir / file), 0600u) << file;
    std::string key = owner_key_in(dir);
    ASSERT_FALSE(key.empty());
    auto me = http(port, "GET", "/auth/me", "", {{"Authorization", "Bearer " + key}});
    ASSERT_EQ(me.status, 200) << me.body;
    stop(pid);
    std::string first = read_text(log);
    EXPECT_EQ(first.find("cpk_"), std::string::npos) << first; // neither the key nor its prefix
    EXPECT_NE(first.find((dir / "bootstrap-owner.key").string()), std::string::npos) << first;
    EXPECT_NE(first.find("delete the file"), std::string::npos) << first;
    EXPECT_EQ(first.find("has mode"), std::string::npos) << first; // nothing loose to report

    // Loosened by hand (or left so by an older version): one warning each, and it still starts.
    std::filesystem::remove(port_file);
    ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
    ASSERT_EQ(::chmod((dir / "codepilot.db").c_str(), 0644), 0);
    ASSERT_EQ(::chmod((dir / "bootstrap-owner.key").c_str(), 0640), 0);
    pid = spawn(args, log.string());
    port = wait_port(port_file);
    ASSERT_GT(port, 0) << read_text(log);
    EXPECT_EQ(http(port, "GET", "/auth/me", "", {{"Authorization", "Bearer " + key}}).status, 200);
    stop(pid);
    std::string second = read_text(log);
    auto lines_with = [&second](const std::string& needle) {
        std::istringstream lines(second);
        int n = 0;
        for (std::string line; std::getline(lines, line);) n += line.find(needle) != std::string::npos;
        return n;
    };
    EXPECT_EQ(lines_with(dir.string() + " has mode 0755"), 1) << second;
    EXPECT_EQ(lines_with((dir / "codepilot.db").string() + " has mode 0644"), 1) << second;
    EXPECT_EQ(lines_with((dir / "bootstrap-owner.key").string() + " has mode 0640"), 1) << second;
    // -wal and -shm, recreated now, take the main file's mode: loose too, when they exist yet.
    EXPECT_EQ(lines_with("has mode"),
              3 + lines_with("codepilot.db-wal has mode 0644") + lines_with("codepilot.db-shm has mode 0644"))
        << second;
    EXPECT_EQ(lines_with("bootstrap-owner.key still exists"), 1) << second; // a nudge to delete it
    EXPECT_EQ(second.find("cpk_"), std::string::npos) << second;
    std::filesystem::remove_all(dir.parent_path());
}
