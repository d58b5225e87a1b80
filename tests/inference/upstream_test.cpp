// Upstream backends against real servers on loopback: llama-server built from the pinned tree
// and a second `codepilot serve` process (with an API key), plus the faults no real server
// shows on demand (refused connections, a hang after the headers, malformed events, a stream
// cut short), from a fake that speaks just enough HTTP.
#include "support/child_process.h"
#include "support/http_client.h"
#include "support/test_env.h"

#include <arpa/inet.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <regex>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace codepilot;
using namespace codepilot::testenv;
using json = nlohmann::json;

namespace {

// Answers GET /health with 200 and every POST the way `mode` says. secret_in_output stands in
// for a model that writes a credential (no model can be made to): the key arrives split over
// three events, as tokens do.
class FakeUpstream {
public:
    enum class Mode { hang_after_headers, malformed_event, cut_mid_stream, secret_in_output };
    explicit FakeUpstream(Mode mode) : mode_(mode) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        socklen_t len = sizeof addr;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        ::listen(fd_, 16);
        thread_ = std::thread([this] { serve(); });
    }
    ~FakeUpstream() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
        for (auto& t : clients_) t.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    void serve() {
        while (!stop_) {
            int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            clients_.emplace_back([this, c] { answer(c); });
        }
    }
    static void send_all(int c, const std::string& s) { (void)!::send(c, s.data(), s.size(), MSG_NOSIGNAL); }
    void answer(int c) {
        std::string in;
        char buf[4096];
        for (;;) { // one request: headers, then Content-Length bytes
            auto end = in.find("\r\n\r\n");
            if (end != std::string::npos) {
                std::smatch m;
                size_t length = 0;
                if (std::regex_search(in, m, std::regex("[Cc]ontent-[Ll]ength: *([0-9]+)")))
                    length = std::stoul(m[1]);
                if (in.size() >= end + 4 + length) break;
            }
            ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) {
                ::close(c);
                return;
            }
            in.append(buf, static_cast<size_t>(n));
        }
        if (in.rfind("GET /health", 0) == 0) {
            send_all(c,
                     "HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}");
            ::close(c);
            return;
        }
        const std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        auto chunk = [](const std::string& s) {
            char size[16];
            std::snprintf(size, sizeof size, "%zx\r\n", s.size());
            return std::string(size) + s + "\r\n";
        };
        const std::string good =
            "data: {\"choices\":[{\"index\":0,\"text\":\"hello\",\"finish_reason\":null}]}\n\n";
        switch (mode_) {
        case Mode::hang_after_headers:
            send_all(c, head);
            for (int i = 0; i < 50 && !stop_; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            break;
        case Mode::malformed_event:
            send_all(c, head + chunk(good) + chunk("data: {\"choices\":[{\"text\": nope\n\n") +
                            chunk("data: [DONE]\n\n") + "0\r\n\r\n");
            break;
        case Mode::cut_mid_stream:
            send_all(c, head + chunk(good));
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            break;
        case Mode::secret_in_output: {
            std::string events;
            for (const char* piece :
                 {"aws_key = \\\"AK", "IAQYLPMN5", "HHHFPZAM2\\\"\\n", "print(aws_key)\\n"})
                events += chunk(std::string("data: {\"choices\":[{\"index\":0,\"text\":\"") + piece +
                                "\",\"finish_reason\":null}]}\n\n");
            send_all(
                c,
                head + events +
                    chunk(
                        "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n") +
                    chunk("data: [DONE]\n\n") + "0\r\n\r\n");
            break;
        }
        }
        ::close(c);
    }
    Mode mode_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::vector<std::thread> clients_;
};

std::string temp_dir(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir.string();
}

config::FleetModelConfig upstream(const std::string& id, std::vector<std::string> urls) {
    config::FleetModelConfig m;
    m.id = id;
    m.backend = "upstream";
    m.urls = std::move(urls);
    m.fim = "starcoder"; // tiny_model() has StarCoder's vocabulary
    m.context = 1024;
    m.health_interval_ms = 100;
    m.connect_timeout_ms = 500;
    m.idle_timeout_ms = 400;
    m.breaker_failures = 1;
    m.breaker_cooldown_ms = 60000;
    return m;
}

// A streamed answer's text (llama-server drops a trailing partial UTF-8 sequence when it
// streams, which Codepilot always does upstream, but keeps it in a whole answer).
std::string streamed_text(int port, json body) {
    body["stream"] = true;
    SseStream stream(port, "/v1/completions", body);
    std::string text;
    for (const auto& e : stream.drain()) {
        if (e == "[DONE]") break;
        const json event = json::parse(e);
        for (const auto& c : event["choices"]) text += c["text"].get<std::string>();
    }
    return text;
}

HttpResponse post(int port, const std::string& path, const json& body,
                  std::map<std::string, std::string> headers = {}) {
    headers["Content-Type"] = "application/json";
    return http(port, "POST", path, body.dump(), headers);
}

} // namespace

class Upstream : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
#ifndef CODEPILOT_LLAMA_SERVER
        skip_reason_ = "llama-server is not built (configure with -DCODEPILOT_BUILD_LLAMA_SERVER=ON)";
        return;
#else
        if (!std::filesystem::exists(CODEPILOT_LLAMA_SERVER)) {
            skip_reason_ = std::string("llama-server is missing at ") + CODEPILOT_LLAMA_SERVER;
            return;
        }
        const std::string dir = temp_dir("upstream-test");
        int lport = free_port();
        llama_ = new ChildServer({CODEPILOT_LLAMA_SERVER, "-m", tiny_model(), "--host", "127.0.0.1", "--port",
                                  std::to_string(lport), "-np", "2", "-c", "2048", "-t", "1", "--metrics"},
                                 lport, dir + "/llama-server.log");
        int pport = free_port();
        peer_dir_ = dir + "/peer";
        std::filesystem::remove_all(peer_dir_);
        peer_ = new ChildServer({CODEPILOT_BINARY, "serve", "--model", tiny_model(), "--port",
                                 std::to_string(pport), "--data-dir", peer_dir_, "--threads", "1",
                                 "--parallel", "2", "--ctx", "2048"},
                                pport, dir + "/peer.log");
        if (!llama_->ready() || !peer_->ready()) {
            skip_reason_ = "an upstream did not start: " + llama_->log() + peer_->log();
            return;
        }
        std::ifstream(peer_dir_ + "/bootstrap-owner.key") >> peer_key_;
        ::setenv("CODEPILOT_TEST_PEER_KEY", peer_key_.c_str(), 1);
        hang_ = new FakeUpstream(FakeUpstream::Mode::hang_after_headers);
        malformed_ = new FakeUpstream(FakeUpstream::Mode::malformed_event);
        cut_ = new FakeUpstream(FakeUpstream::Mode::cut_mid_stream);
        leaky_ = new FakeUpstream(FakeUpstream::Mode::secret_in_output);

        auto c = test_config();
        c.models.push_back(upstream("remote", {llama_->url()}));
        c.models.back().roles = {"completion", "chat"};
        const std::string peer_model = std::filesystem::path(tiny_model()).stem().string();
        auto peer = upstream("peer", {peer_->url()});
        peer.upstream_model = peer_model; // the name the peer serves it under
        peer.api_key_env = "CODEPILOT_TEST_PEER_KEY";
        c.models.push_back(peer);
        auto pair = upstream("pair", {llama_->url(), peer_->url()});
        pair.api_key_env = "CODEPILOT_TEST_PEER_KEY";
        pair.upstream_model = peer_model; // llama-server answers to any name
        c.models.push_back(pair);
        auto dead = upstream("dead", {"http://127.0.0.1:" + std::to_string(free_port())});
        dead.fallback = {"remote"};
        c.models.push_back(dead);
        c.models.push_back(upstream("gone", {"http://127.0.0.1:" + std::to_string(free_port())}));
        c.models.push_back(upstream("hang", {hang_->url()}));
        c.models.push_back(upstream("malformed", {malformed_->url()}));
        c.models.push_back(upstream("leaky", {leaky_->url()}));
        c.models.push_back(upstream("cut", {cut_->url()}));
        c.models.back().breaker_failures = 10; // asked twice below
        c.routing.completion = "remote";
        c.guard.policy.deny = {"print\\(aws_key\\)"}; // an output denylist entry (the leaky model writes it)
        front_ = new TestServer(c);
#endif
    }
    static void TearDownTestSuite() {
        delete front_;
        delete hang_;
        delete malformed_;
        delete cut_;
        delete leaky_;
        delete llama_;
        delete peer_;
        front_ = nullptr;
    }
    void SetUp() override {
        if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    }
    static int port() {
        return front_->port();
    }

    static inline std::string skip_reason_, peer_dir_, peer_key_;
    static inline ChildServer *llama_ = nullptr, *peer_ = nullptr;
    static inline FakeUpstream *hang_ = nullptr, *malformed_ = nullptr, *cut_ = nullptr, *leaky_ = nullptr;
    static inline TestServer* front_ = nullptr;
};

TEST_F(Upstream, ACompletionThroughCodepilotIsWhatLlamaServerGivesDirectly) {
    json body = {{"prompt", "def add(a, b):"}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};
    auto direct = post(llama_->port(), "/v1/completions", body);
    ASSERT_EQ(direct.status, 200) << direct.body;
    body["model"] = "remote";
    auto routed = post(port(), "/v1/completions", body);
    ASSERT_EQ(routed.status, 200) << routed.body;
    EXPECT_EQ(routed.json()["choices"][0]["text"], direct.json()["choices"][0]["text"]);
    EXPECT_EQ(routed.json()["model"], "remote");
    EXPECT_EQ(routed.json()["usage"]["completion_tokens"], 8);
    EXPECT_EQ(routed.header("x-codepilot-route"),
              "model=remote; version=1; backend=upstream; reason=requested");
}

TEST_F(Upstream, AKeepAliveConnectionTheUpstreamClosedIsRetriedOnAFreshOne) {
    json body = {{"model", "remote"}, {"prompt", "x = "}, {"max_tokens", 2}};
    ASSERT_EQ(post(port(), "/v1/completions", body).status, 200); // leaves an idle pooled connection
    std::this_thread::sleep_for(std::chrono::milliseconds(5600)); // llama-server closes idle ones after 5 s
    auto again = post(port(), "/v1/completions", body);
    EXPECT_EQ(again.status, 200) << again.body;
}

TEST_F(Upstream, StreamsTheSameTextAsTheWholeAnswer) {
    json body = {{"model", "remote"},
                 {"prompt", "for i in"},
                 {"max_tokens", 10},
                 {"temperature", 0},
                 {"ignore_eos", true}};
    auto whole = post(port(), "/v1/completions", body).json();
    body["stream"] = true;
    SseStream stream(port(), "/v1/completions", body);
    ASSERT_EQ(stream.status(), 200);
    auto events = stream.drain();
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text, finish;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
        const json event = json::parse(events[i]);
        for (const auto& c : event["choices"]) {
            text += c["text"].get<std::string>();
            if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
        }
    }
    EXPECT_EQ(text, whole["choices"][0]["text"]);
    EXPECT_EQ(finish, "length");
}

TEST_F(Upstream, CodepilotBuildsTheFimPromptAndSendsARawCompletion) {
    const std::string prefix = "def f(x):\n    y = ", suffix = "\n    return y\n";
    const std::string direct = streamed_text(
        llama_->port(), {{"prompt", "<fim_prefix>" + prefix + "<fim_suffix>" + suffix + "<fim_middle>"},
                         {"max_tokens", 6},
                         {"temperature", 0},
                         {"ignore_eos", true}});
    auto routed = post(port(), "/v1/completions",
                       {{"model", "remote"},
                        {"prompt", prefix},
                        {"suffix", suffix},
                        {"max_tokens", 6},
                        {"temperature", 0},
                        {"ignore_eos", true}});
    ASSERT_EQ(routed.status, 200) << routed.body;
    EXPECT_EQ(routed.json()["choices"][0]["text"], direct);
    EXPECT_EQ(routed.json()["usage"]["completion_tokens"], 6);
    // The IDE paths too: llama.vscode's /infill and Tabby's segments, on the default model.
    auto infill =
        post(port(), "/infill", {{"input_prefix", prefix}, {"input_suffix", suffix}, {"n_predict", 4}});
    ASSERT_EQ(infill.status, 200) << infill.body;
    EXPECT_EQ(infill.json()["model"], "remote");
    auto tabby = post(port(), "/v1/completions",
                      {{"language", "python"},
                       {"segments", {{"prefix", prefix}, {"suffix", suffix}}},
                       {"debug_options", {{"return_prompt", true}}}});
    ASSERT_EQ(tabby.status, 200) << tabby.body;
    auto prompt = tabby.json()["debug_data"]["prompt"].get<std::string>();
    EXPECT_NE(prompt.find("<fim_prefix>"), std::string::npos) << prompt;
    EXPECT_NE(prompt.find("<fim_middle>"), std::string::npos) << prompt;
}

TEST_F(Upstream, ChatGoesAsMessagesForTheUpstreamToTemplate) {
    auto r = post(port(), "/v1/chat/completions",
                  {{"model", "remote"},
                   {"messages", json::array({{{"role", "user"}, {"content", "hello"}}})},
                   {"max_tokens", 4}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["object"], "chat.completion");
    EXPECT_TRUE(r.json()["choices"][0]["message"]["content"].is_string());
    // Log-probabilities are relayed from the upstream, in OpenAI's chat form.
    auto logprobs = post(port(), "/v1/chat/completions",
                         {{"model", "remote"},
                          {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                          {"max_tokens", 3},
                          {"logprobs", true},
                          {"top_logprobs", 2}});
    ASSERT_EQ(logprobs.status, 200) << logprobs.body;
    const json content = logprobs.json()["choices"][0]["logprobs"]["content"];
    ASSERT_TRUE(content.is_array()) << logprobs.body;
    ASSERT_FALSE(content.empty()) << logprobs.body;
    for (const auto& t : content) {
        EXPECT_LE(t["logprob"].get<double>(), 0.0) << t;
        EXPECT_GE(t["top_logprobs"].size(), 1u) << t;
        EXPECT_LE(t["top_logprobs"].size(), 2u) << t;
    }
}

TEST_F(Upstream, TokenIdPromptsGoAsTheyAreAndLogprobsComeBack) {
    // The remote model's own ids, from the remote itself.
    auto tok = post(llama_->port(), "/tokenize", {{"content", "def add(a, b):"}});
    ASSERT_EQ(tok.status, 200) << tok.body;
    json ids = tok.json()["tokens"];
    ASSERT_GT(ids.size(), 2u);
    json body = {{"prompt", ids}, {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}};
    auto direct = post(llama_->port(), "/v1/completions", body);
    ASSERT_EQ(direct.status, 200) << direct.body;
    body["model"] = "remote";
    auto routed = post(port(), "/v1/completions", body);
    ASSERT_EQ(routed.status, 200) << routed.body;
    EXPECT_EQ(routed.json()["choices"][0]["text"], direct.json()["choices"][0]["text"]);
    EXPECT_EQ(routed.json()["usage"]["prompt_tokens"], ids.size());
    body["echo"] = true; // the ids cannot be read back as text here
    auto echo = post(port(), "/v1/completions", body);
    EXPECT_EQ(echo.status, 400) << echo.body;
    EXPECT_EQ(echo.json()["error"]["param"], "echo");

    json lp = {{"model", "remote"}, {"prompt", "def add(a, b):"}, {"max_tokens", 4},
               {"temperature", 0},  {"ignore_eos", true},         {"logprobs", 2}};
    auto mine = post(port(), "/v1/completions", lp);
    ASSERT_EQ(mine.status, 200) << mine.body;
    const json l = mine.json()["choices"][0]["logprobs"];
    ASSERT_EQ(l["tokens"].size(), 4u) << mine.body;
    lp.erase("model");
    auto theirs = post(llama_->port(), "/v1/completions", lp);
    ASSERT_EQ(theirs.status, 200) << theirs.body;
    const json direct_lp = theirs.json()["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(direct_lp.size(), 4u) << theirs.body;
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(l["token_logprobs"][i].get<double>(), direct_lp[i]["logprob"].get<double>(), 1e-3) << i;
        EXPECT_EQ(l["top_logprobs"][i].size(), 2u) << i;
    }
}

TEST_F(Upstream, ASecondCodepilotIsAnUpstreamWithItsApiKey) {
    json body = {{"prompt", "class Stack:"}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};
    auto direct = post(peer_->port(), "/v1/completions", body, {{"Authorization", "Bearer " + peer_key_}});
    ASSERT_EQ(direct.status, 200) << direct.body;
    EXPECT_EQ(post(peer_->port(), "/v1/completions", body).status, 401); // the key is what lets the front in
    body["model"] = "peer";
    auto routed = post(port(), "/v1/completions", body);
    ASSERT_EQ(routed.status, 200) << routed.body;
    EXPECT_EQ(routed.json()["choices"][0]["text"], direct.json()["choices"][0]["text"]);
    EXPECT_EQ(routed.json()["usage"]["completion_tokens"], 8);
}

TEST_F(Upstream, LeastOutstandingRequestsSpreadsLoadOverReplicas) {
    auto peer_calls = [] {
        auto text = http(peer_->port(), "GET", "/metrics").body;
        std::smatch m;
        std::regex re("codepilot_http_requests_total\\{route=\"/v1/"
                      "completions\",method=\"POST\",status=\"200\"\\} ([0-9]+)");
        return std::regex_search(text, m, re) ? std::stoi(m[1]) : 0;
    };
    const int before = peer_calls();
    std::vector<std::future<HttpResponse>> calls;
    for (int i = 0; i < 8; ++i)
        calls.push_back(std::async(std::launch::async, [] {
            return post(port(), "/v1/completions",
                        {{"model", "pair"}, {"prompt", "x = "}, {"max_tokens", 24}, {"ignore_eos", true}});
        }));
    for (auto& c : calls) EXPECT_EQ(c.get().status, 200);
    const int to_peer = peer_calls() - before;
    EXPECT_GE(to_peer, 2) << "the Codepilot replica got " << to_peer << " of 8";
    EXPECT_LE(to_peer, 6) << "the Codepilot replica got " << to_peer << " of 8";
}

TEST_F(Upstream, ADownModelFallsBackAndWithoutFallbackIs503WithRetryAfter) {
    for (int i = 0;
         i < 50 && http(port(), "GET", "/admin/v1/models").body.find("\"down\"") == std::string::npos; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto fallback = post(port(), "/v1/completions", {{"model", "dead"}, {"prompt", "x"}, {"max_tokens", 2}});
    ASSERT_EQ(fallback.status, 200) << fallback.body;
    EXPECT_EQ(fallback.json()["model"], "remote");
    EXPECT_NE(fallback.header("x-codepilot-route").find("reason=fallback:dead"), std::string::npos);
    auto gone = post(port(), "/v1/completions", {{"model", "gone"}, {"prompt", "x"}, {"max_tokens", 2}});
    ASSERT_EQ(gone.status, 503) << gone.body;
    EXPECT_EQ(gone.header("retry-after"), "1");
    EXPECT_EQ(gone.body.find("127.0.0.1"), std::string::npos)
        << "replica addresses are for admins: " << gone.body;
    auto admin = http(port(), "GET", "/admin/v1/models").json();
    bool listed = false;
    for (const auto& m : admin["data"])
        if (m["id"] == "gone") {
            listed = true;
            EXPECT_EQ(m["state"], "down");
            EXPECT_FALSE(m["serving"].get<bool>());
        }
    EXPECT_TRUE(listed);
    EXPECT_EQ(http(port(), "GET", "/ready").status, 200); // the defaults are serving
}

TEST_F(Upstream, BrokenUpstreamsGiveAClearErrorNeverAHang) {
    auto started = std::chrono::steady_clock::now();
    auto hang = post(port(), "/v1/completions", {{"model", "hang"}, {"prompt", "x"}, {"max_tokens", 4}});
    EXPECT_EQ(hang.status, 502) << hang.body;
    EXPECT_NE(hang.body.find("sent nothing for 400 ms"), std::string::npos) << hang.body;
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
    // One failure opens its circuit (breaker_failures = 1): the next call is refused at once.
    auto open = post(port(), "/v1/completions", {{"model", "hang"}, {"prompt", "x"}, {"max_tokens", 4}});
    EXPECT_EQ(open.status, 503) << open.body;
    EXPECT_EQ(open.header("retry-after"), "1");
    auto malformed =
        post(port(), "/v1/completions", {{"model", "malformed"}, {"prompt", "x"}, {"max_tokens", 4}});
    EXPECT_EQ(malformed.status, 502) << malformed.body;
    EXPECT_NE(malformed.body.find("not JSON"), std::string::npos) << malformed.body;
    auto cut = post(port(), "/v1/completions", {{"model", "cut"}, {"prompt", "x"}, {"max_tokens", 4}});
    EXPECT_EQ(cut.status, 502) << cut.body;
    EXPECT_NE(cut.body.find("closed"), std::string::npos) << cut.body;
    // Streamed: the text so far, then an error event and the end of the stream.
    SseStream stream(port(), "/v1/completions",
                     {{"model", "cut"}, {"prompt", "x"}, {"max_tokens", 4}, {"stream", true}});
    ASSERT_EQ(stream.status(), 200);
    auto events = stream.drain();
    ASSERT_GE(events.size(), 2u);
    EXPECT_EQ(events.back(), "[DONE]");
    EXPECT_NE(events[events.size() - 2].find("\"error\""), std::string::npos) << events[events.size() - 2];
}

TEST_F(Upstream, ASecretInTheModelsOutputNeverReachesTheClientStreamedOrNot) {
    const std::string key = "AKIAQYLPMN5HHHFPZAM2";
    json body = {{"model", "leaky"}, {"prompt", "x = "}, {"max_tokens", 16}};
    auto whole = post(port(), "/v1/completions", body);
    ASSERT_EQ(whole.status, 200) << whole.body;
    const std::string text = whole.json()["choices"][0]["text"];
    EXPECT_EQ(text, "aws_key = \"<SECRET:aws_access_key_id>\"\n<SECRET:deny_1>\n");
    EXPECT_EQ(whole.body.find(key), std::string::npos);
    const std::string streamed = streamed_text(port(), body);
    EXPECT_EQ(streamed, text); // the key came in three pieces; none of them went out
    auto chat =
        post(port(), "/v1/chat/completions",
             {{"model", "leaky"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}});
    // (the fake answers chat with completion events: text, not delta; Codepilot relays what it reads)
    EXPECT_EQ(chat.body.find(key), std::string::npos) << chat.body;
}

TEST_F(Upstream, WithTheEndPolicyTheAnswerStopsBeforeTheSecretAsContentFilter) {
    auto c = test_config();
    c.models.push_back(upstream("leaky", {leaky_->url()}));
    c.guard.policy.output = "end";
    TestServer strict(c);
    json body = {{"model", "leaky"}, {"prompt", "x = "}, {"max_tokens", 16}};
    auto whole = post(strict.port(), "/v1/completions", body);
    ASSERT_EQ(whole.status, 200) << whole.body;
    EXPECT_EQ(whole.json()["choices"][0]["text"], "aws_key = \"");
    EXPECT_EQ(whole.json()["choices"][0]["finish_reason"], "content_filter");
    body["stream"] = true;
    SseStream stream(strict.port(), "/v1/completions", body);
    std::string text, finish;
    for (const auto& e : stream.drain()) {
        if (e == "[DONE]") break;
        const json event = json::parse(e);
        for (const auto& ch : event["choices"]) {
            text += ch["text"].get<std::string>();
            if (ch["finish_reason"].is_string()) finish = ch["finish_reason"];
        }
    }
    EXPECT_EQ(text, "aws_key = \"");
    EXPECT_EQ(finish, "content_filter");
}
