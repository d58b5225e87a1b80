// Bad input: each case gets a clear HTTP status and OpenAI-style error, and the server keeps
// serving afterwards.
#include <gtest/gtest.h>
#include <thread>

#include "support/http_client.h"
#include "support/test_env.h"

using namespace codepilot::testenv;
using json = nlohmann::json;

class BadInput : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto c = test_config();
        c.server.read_timeout_s = 1;
        c.server.keep_alive_timeout_s = 1;
        c.server.max_body_bytes = 64 * 1024;
        c.model.max_tokens_cap = 256;
        c.model.ctx = 4 * 512;  // 512 tokens per request
        server_ = new TestServer(c);
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    int port() const { return server_->port(); }
    // Asserts an OpenAI-style error; returns it.
    json expect_error(const HttpResponse& r, int status, const std::string& param = "") {
        EXPECT_EQ(r.status, status) << r.body;
        json j = json::parse(r.body, nullptr, false);
        EXPECT_TRUE(j.is_object() && j.contains("error")) << r.body;
        if (!j.is_object() || !j.contains("error")) return {};
        EXPECT_TRUE(j["error"]["message"].is_string());
        EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
        EXPECT_TRUE(j["error"]["type"].is_string());
        if (!param.empty()) {
            EXPECT_EQ(j["error"]["param"], param) << r.body;
        }
        return j["error"];
    }
    void expect_still_serving() {
        auto r = post_json(port(), "/v1/completions", {{"prompt", "ok"}, {"max_tokens", 2}});
        EXPECT_EQ(r.status, 200) << r.body;
    }
    static TestServer* server_;
};
TestServer* BadInput::server_ = nullptr;

TEST_F(BadInput, MalformedJson) {
    auto e = expect_error(http(port(), "POST", "/v1/completions", "{\"prompt\": \"x\",,}"), 400);
    EXPECT_NE(e["message"].get<std::string>().find("not valid JSON"), std::string::npos);
    expect_error(http(port(), "POST", "/v1/completions", "[1,2]"), 400);
    expect_error(http(port(), "POST", "/v1/chat/completions", ""), 400);
    expect_still_serving();
}

TEST_F(BadInput, WrongFieldTypesNameTheField) {
    expect_error(post_json(port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", "ten"}}), 400, "max_tokens");
    expect_error(post_json(port(), "/v1/completions", {{"prompt", "x"}, {"temperature", "hot"}}), 400, "temperature");
    expect_error(post_json(port(), "/v1/completions", {{"prompt", "x"}, {"stop", 5}}), 400, "stop");
    expect_error(post_json(port(), "/v1/completions", {{"prompt", "x"}, {"stream", "yes"}}), 400, "stream");
    expect_error(post_json(port(), "/v1/completions", {{"prompt", 42}}), 400, "prompt");
    expect_error(post_json(port(), "/v1/chat/completions", {{"messages", "hi"}}), 400, "messages");
    expect_error(post_json(port(), "/v1/chat/completions", {{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), 400, "messages[0].role");
    expect_error(post_json(port(), "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", 3}}}}}), 400, "messages[0].content");
    expect_error(post_json(port(), "/v1/embeddings", {{"input", {1.5}}}), 400, "input");
    expect_error(post_json(port(), "/v1/embeddings", {{"input", "x"}, {"encoding_format", "hex"}}), 400, "encoding_format");
}

TEST_F(BadInput, MissingOrEmptyPromptAndMessages) {
    expect_error(post_json(port(), "/v1/completions", {{"max_tokens", 3}}), 400, "prompt");
    expect_error(post_json(port(), "/v1/completions", {{"prompt", ""}}), 400, "prompt");
    expect_error(post_json(port(), "/v1/completions", {{"prompt", json::array()}}), 400, "prompt");
    expect_error(post_json(port(), "/v1/chat/completions", {{"max_tokens", 3}}), 400, "messages");
    expect_error(post_json(port(), "/v1/chat/completions", {{"messages", json::array()}}), 400, "messages");
    expect_error(post_json(port(), "/v1/embeddings", {{"model", "x"}}), 400, "input");
    expect_error(post_json(port(), "/v1/embeddings", {{"input", ""}}), 400, "input");
}

TEST_F(BadInput, MaxTokensOutOfRange) {
    for (int bad : {0, -1, 257}) {
        auto e = expect_error(post_json(port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", bad}}), 400, "max_tokens");
        EXPECT_NE(e["message"].get<std::string>().find("between 1 and 256"), std::string::npos);
    }
    expect_error(post_json(port(), "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"max_completion_tokens", 0}}), 400, "max_completion_tokens");
}

TEST_F(BadInput, PromptLongerThanTheContext) {
    std::string prompt;
    for (int i = 0; i < 400; ++i) prompt += "word" + std::to_string(i) + " ";
    auto e = expect_error(post_json(port(), "/v1/completions", {{"prompt", prompt}, {"max_tokens", 4}}), 400, "prompt");
    EXPECT_EQ(e["code"], "context_length_exceeded");
    EXPECT_NE(e["message"].get<std::string>().find("context"), std::string::npos);
    expect_still_serving();
}

TEST_F(BadInput, InvalidUtf8) {
    auto e = expect_error(http(port(), "POST", "/v1/completions", "{\"prompt\": \"bad \xff\xfe bytes\"}"), 400);
    EXPECT_NE(e["message"].get<std::string>().find("UTF-8"), std::string::npos) << e.dump();
    expect_still_serving();
}

TEST_F(BadInput, BodyOverTheLimitIs413) {
    std::string big = "{\"prompt\": \"" + std::string(100 * 1024, 'a') + "\"}";
    auto e = expect_error(http(port(), "POST", "/v1/completions", big), 413);
    EXPECT_NE(e["message"].get<std::string>().find("larger than"), std::string::npos);
    expect_still_serving();
}

TEST_F(BadInput, UnknownRouteAndWrongMethod) {
    expect_error(http(port(), "GET", "/v1/nope"), 404);
    auto r = http(port(), "GET", "/v1/completions");
    expect_error(r, 405);
    EXPECT_EQ(r.header("allow"), "POST");
    expect_error(http(port(), "DELETE", "/v1/models"), 405);
}

TEST_F(BadInput, ExpectContinueIsAnswered) {
    RawConnection conn(port());
    std::string body = json{{"prompt", "x"}, {"max_tokens", 1}}.dump();
    conn.send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
              "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
    std::string interim = conn.receive(std::chrono::seconds(5));
    EXPECT_NE(interim.find("100 Continue"), std::string::npos) << interim;
    conn.send(body);
    std::string raw = interim.substr(interim.find("\r\n\r\n") + 4);
    for (std::string part; !(part = conn.receive(std::chrono::seconds(10))).empty();) raw += part;
    EXPECT_EQ(parse_response(raw).status, 200) << raw;
}

TEST_F(BadInput, ClientDisconnectingMidStreamCancelsItsGeneration) {
    auto& engine = server_->app().engine();
    {
        SseStream stream(port(), "/v1/completions", {{"prompt", "forever"}, {"max_tokens", 256}, {"stream", true}, {"ignore_eos", true}});
        ASSERT_EQ(stream.status(), 200);
        ASSERT_TRUE(stream.next_event().has_value());
        stream.close();
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (engine.stats().running > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(engine.stats().running, 0);
    expect_still_serving();
}

TEST_F(BadInput, SilentConnectionsTimeOutWhileOthersAreServed) {
    std::vector<std::unique_ptr<RawConnection>> idle;
    for (int i = 0; i < 200; ++i) idle.push_back(std::make_unique<RawConnection>(port()));
    idle[0]->send("POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro");  // half a request
    expect_still_serving();
    for (int i = 0; i < 200; i += 20) EXPECT_TRUE(idle[i]->closed_by_peer(std::chrono::seconds(5))) << "connection " << i;
    expect_still_serving();
}

TEST_F(BadInput, MalformedHttpIs400) {
    RawConnection conn(port());
    conn.send("THIS IS NOT HTTP\r\n\r\n");
    std::string raw;
    for (std::string part; !(part = conn.receive(std::chrono::seconds(5))).empty();) raw += part;
    ASSERT_FALSE(raw.empty());
    EXPECT_EQ(parse_response(raw).status, 400);
    expect_still_serving();
}
