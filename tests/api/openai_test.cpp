// The OpenAI-compatible API over real HTTP against an in-process server with a real model.
#include <gtest/gtest.h>
#include <thread>

#include "support/http_client.h"
#include "support/test_env.h"

using namespace codepilot::testenv;
using json = nlohmann::json;

class OpenAiApi : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = new TestServer(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    int port() const { return server_->port(); }
    static TestServer* server_;
};
TestServer* OpenAiApi::server_ = nullptr;

TEST_F(OpenAiApi, ListsTheModel) {
    auto r = http(port(), "GET", "/v1/models");
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    EXPECT_EQ(j["object"], "list");
    ASSERT_EQ(j["data"].size(), 1u);
    EXPECT_EQ(j["data"][0]["id"], "tiny");
    EXPECT_EQ(j["data"][0]["object"], "model");
    EXPECT_TRUE(j["data"][0]["created"].is_number());
    EXPECT_EQ(j["data"][0]["owned_by"], "codepilot");
    EXPECT_EQ(http(port(), "GET", "/v1/models/tiny").status, 200);
    EXPECT_EQ(http(port(), "GET", "/v1/models/other").status, 404);
}

TEST_F(OpenAiApi, HealthAndReadiness) {
    EXPECT_EQ(http(port(), "GET", "/health").json()["status"], "ok");
    auto ready = http(port(), "GET", "/ready");
    EXPECT_EQ(ready.status, 200);
    EXPECT_EQ(ready.json()["model"], "tiny");
}

TEST_F(OpenAiApi, CompletionHasTheOpenAiShape) {
    auto r = post_json(port(), "/v1/completions", {{"model", "tiny"}, {"prompt", "def main():"}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}});
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
    EXPECT_EQ(j["model"], "tiny");
    ASSERT_EQ(j["choices"].size(), 1u);
    EXPECT_EQ(j["choices"][0]["index"], 0);
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_TRUE(j["choices"][0]["text"].is_string());
    EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
    EXPECT_EQ(j["usage"]["completion_tokens"], 8);
    EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 8);
    EXPECT_FALSE(r.header("x-request-id").empty());
}

TEST_F(OpenAiApi, StreamingMatchesNonStreaming) {
    json body = {{"prompt", "for i in range(10):"}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true}};
    auto whole = post_json(port(), "/v1/completions", body).json();
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    SseStream stream(port(), "/v1/completions", body);
    ASSERT_EQ(stream.status(), 200);
    auto events = stream.drain();
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text;
    std::string finish;
    json usage;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
        auto e = json::parse(events[i]);
        EXPECT_EQ(e["object"], "text_completion");
        if (e.contains("usage")) usage = e["usage"];
        for (const auto& c : e["choices"]) {
            text += c["text"].get<std::string>();
            if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
        }
    }
    EXPECT_EQ(text, whole["choices"][0]["text"]);
    EXPECT_EQ(finish, "length");
    EXPECT_EQ(usage["completion_tokens"], 12);
}

TEST_F(OpenAiApi, ChatCompletionAndStreamingChunks) {
    json body = {{"messages", {{{"role", "system"}, {"content", "You write code."}}, {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Say hi"}}})}}}},
                 {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}};
    auto r = post_json(port(), "/v1/chat/completions", body);
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    EXPECT_TRUE(j["choices"][0]["message"]["content"].is_string());
    EXPECT_EQ(j["usage"]["completion_tokens"], 6);

    body["stream"] = true;
    SseStream stream(port(), "/v1/chat/completions", body);
    auto events = stream.drain();
    ASSERT_GE(events.size(), 3u);
    auto first = json::parse(events[0]);
    EXPECT_EQ(first["object"], "chat.completion.chunk");
    EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
    std::string content;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
        auto e = json::parse(events[i]);
        auto& d = e["choices"][0]["delta"];
        if (d.contains("content")) content += d["content"].get<std::string>();
    }
    EXPECT_EQ(content, j["choices"][0]["message"]["content"]);
    EXPECT_EQ(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(events.back(), "[DONE]");
}

TEST_F(OpenAiApi, SeveralPromptsAndChoices) {
    auto r = post_json(port(), "/v1/completions", {{"prompt", {"a = ", "b = "}}, {"n", 2}, {"max_tokens", 3}, {"seed", 7}});
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    ASSERT_EQ(j["choices"].size(), 4u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(j["choices"][i]["index"], i);
}

TEST_F(OpenAiApi, SeededSamplingIsReproducible) {
    json body = {{"prompt", "x"}, {"max_tokens", 10}, {"temperature", 1.0}, {"seed", 1234}, {"ignore_eos", true}};
    auto a = post_json(port(), "/v1/completions", body).json();
    auto b = post_json(port(), "/v1/completions", body).json();
    EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
}

TEST_F(OpenAiApi, EchoAndLogprobs) {
    auto j = post_json(port(), "/v1/completions", {{"prompt", "print("}, {"max_tokens", 3}, {"echo", true}, {"logprobs", 2}, {"temperature", 0}, {"ignore_eos", true}}).json();
    std::string text = j["choices"][0]["text"];
    EXPECT_EQ(text.rfind("print(", 0), 0u);
    auto& lp = j["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 3u);
    ASSERT_EQ(lp["token_logprobs"].size(), 3u);
    EXPECT_LE(lp["token_logprobs"][0].get<double>(), 0.0);
    EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
    EXPECT_EQ(lp["text_offset"][0], 6);
}

TEST_F(OpenAiApi, SuffixBuildsAFimPrompt) {
    auto j = post_json(port(), "/v1/completions", {{"prompt", "def add(a, b):\n    "}, {"suffix", "\n    return c\n"}, {"max_tokens", 4}, {"temperature", 0}}).json();
    ASSERT_TRUE(j.contains("choices")) << j.dump();
    // [<fim_prefix>] prefix [<fim_suffix>] suffix [<fim_middle>]: 3 special tokens around the texts.
    EXPECT_GE(j["usage"]["prompt_tokens"].get<int>(), 3 + 5);
}

TEST_F(OpenAiApi, PrefixReuseShowsInUsageAndTimings) {
    std::string file;
    for (int i = 0; i < 30; ++i) file += "def handler_" + std::to_string(i) + "(request):\n    return respond(" + std::to_string(i) + ")\n";
    auto a = post_json(port(), "/v1/completions", {{"prompt", file + "def next_one("}, {"max_tokens", 2}, {"temperature", 0}}).json();
    auto b = post_json(port(), "/v1/completions", {{"prompt", file + "def next_two(x"}, {"max_tokens", 2}, {"temperature", 0}}).json();
    int prompt = b["usage"]["prompt_tokens"];
    int cached = b["usage"]["prompt_tokens_details"]["cached_tokens"];
    EXPECT_GT(prompt, 300);
    EXPECT_GE(cached, prompt - 8);
    EXPECT_EQ(b["timings"]["prompt_n"].get<int>(), prompt - cached);
    EXPECT_EQ(b["timings"]["cache_n"], cached);
}

TEST_F(OpenAiApi, ConcurrentRequestsReturnTheirSoloTokens) {
    std::vector<std::string> prompts = {"import os\n", "fn main() {", "<?php echo", "package main\n", "val x =", "let y ="};
    std::vector<std::string> alone;
    for (const auto& p : prompts)
        alone.push_back(post_json(port(), "/v1/completions", {{"prompt", p}, {"max_tokens", 16}, {"temperature", 0}, {"ignore_eos", true}}).json()["choices"][0]["text"]);
    std::vector<std::string> together(prompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i)
        threads.emplace_back([&, i] {
            together[i] = post_json(port(), "/v1/completions", {{"prompt", prompts[i]}, {"max_tokens", 16}, {"temperature", 0}, {"ignore_eos", true}}).json()["choices"][0]["text"];
        });
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << prompts[i];
}

TEST_F(OpenAiApi, EmbeddingsFloatAndBase64) {
    auto r = post_json(port(), "/v1/embeddings", {{"input", {"hello", "world"}}, {"model", "tiny"}});
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    EXPECT_EQ(j["object"], "list");
    ASSERT_EQ(j["data"].size(), 2u);
    EXPECT_EQ(j["data"][1]["index"], 1);
    EXPECT_EQ(j["data"][0]["embedding"].size(), 64u);
    EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
    auto b = post_json(port(), "/v1/embeddings", {{"input", "hello"}, {"encoding_format", "base64"}}).json();
    EXPECT_EQ(b["data"][0]["embedding"].get<std::string>().size(), (64 * 4 + 2) / 3 * 4);
}

TEST_F(OpenAiApi, KeepAliveServesSeveralRequestsOnOneConnection) {
    RawConnection conn(port());
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(conn.send(build_request("GET", "/health", "", {}, true)));
        std::string raw;
        while (raw.find("\"ok\"") == std::string::npos) {
            auto part = conn.receive(std::chrono::seconds(5));
            ASSERT_FALSE(part.empty());
            raw += part;
        }
        EXPECT_EQ(parse_response(raw).status, 200);
    }
}

// Abandoned streams must stop costing anything: a server whose sequences and queue were all
// taken by clients that went away serves a new request at once.
TEST(Cancellation, DisconnectedStreamsFreeCapacityForNewRequests) {
    auto c = test_config();
    c.model.max_tokens_cap = 4000;
    c.model.ctx = 4 * 4100;
    TestServer server(c);
    auto& engine = server.app().engine();
    {
        std::vector<std::unique_ptr<SseStream>> streams;
        for (int i = 0; i < 12; ++i)  // three times the sequences: most of them queue
            streams.push_back(std::make_unique<SseStream>(server.port(), "/v1/completions",
                json{{"prompt", "stream " + std::to_string(i)}, {"max_tokens", 4000}, {"stream", true}, {"ignore_eos", true}}));
        for (auto& s : streams) ASSERT_EQ(s->status(), 200);
        ASSERT_TRUE(streams[0]->next_event().has_value());
    }  // all closed
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((engine.stats().running > 0 || engine.stats().queued > 0) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(engine.stats().running, 0);
    EXPECT_EQ(engine.stats().queued, 0);
    // A small part of the 12 x 4000 tokens that were asked for was ever generated.
    EXPECT_LT(engine.stats().generated_tokens, 12 * 4000 / 4);
    auto r = post_json(server.port(), "/v1/completions", {{"prompt", "after"}, {"max_tokens", 4}, {"ignore_eos", true}});
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.json()["usage"]["completion_tokens"], 4);
}

// The unified KV pool (an option) still serves and reuses prefixes.
TEST(UnifiedKv, ServesAndReusesPrefixes) {
    auto c = test_config();
    c.model.kv_unified = true;
    TestServer server(c);
    std::string file;
    for (int i = 0; i < 20; ++i) {
        file += "x";
        file += std::to_string(i);
        file += " = ";
        file += std::to_string(i * i);
        file += "\n";
    }
    auto a = post_json(server.port(), "/v1/completions", {{"prompt", file + "y ="}, {"max_tokens", 3}});
    auto b = post_json(server.port(), "/v1/completions", {{"prompt", file + "z ="}, {"max_tokens", 3}});
    ASSERT_EQ(a.status, 200);
    ASSERT_EQ(b.status, 200);
    EXPECT_GT(b.json()["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 50);
}
