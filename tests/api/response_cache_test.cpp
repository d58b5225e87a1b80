// The exact-response cache: a greedy generation asked again by the same tenant is answered from
// memory (same text and usage, x-codepilot-cache: hit, audited, counted), never for another
// tenant, never for a sampled request, streamed or not; and the key and eviction rules as pure
// functions (a new model version, prompt or parameter is a new key; only answers the model
// ended itself are kept; least recently used out first).
#include "api/response_cache.h"
#include "support/auth_fixture.h"

#include <gtest/gtest.h>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

class ResponseCacheApi : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        c.cache.responses = 100;
        c.audit.durability = "sync";
    }
    void SetUp() override {
        AuthServerTest::SetUp();
        member("acme", "dev-a", "developer");
        member("beta", "dev-b", "developer");
        acme_ = key("acme", "dev-a", "completion,chat");
        beta_ = key("beta", "dev-b", "completion,chat");
    }
    double lookups(const std::string& result) {
        const std::string metrics = call("GET", "/metrics", owner_key_).body;
        const std::string name = "codepilot_response_cache_lookups_total{result=\"" + result + "\"} ";
        auto at = metrics.find(name);
        return at == std::string::npos ? -1 : std::stod(metrics.substr(at + name.size()));
    }
    std::string acme_, beta_;
};

const json kGreedy = {
    {"prompt", "def fibonacci(n):"}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};

TEST_F(ResponseCacheApi, AGreedyAnswerIsServedAgainToTheSameTenantOnly) {
    auto first = call("POST", "/v1/completions", acme_, kGreedy);
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(first.header("x-codepilot-cache"), "");
    EXPECT_EQ(lookups("miss"), 1);

    auto again = call("POST", "/v1/completions", acme_, kGreedy);
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.header("x-codepilot-cache"), "hit");
    EXPECT_EQ(again.json()["choices"][0]["text"], first.json()["choices"][0]["text"]);
    EXPECT_EQ(again.json()["choices"][0]["finish_reason"], "length");
    const json usage = again.json()["usage"];
    EXPECT_EQ(usage["completion_tokens"], 8);
    EXPECT_EQ(usage["prompt_tokens"], first.json()["usage"]["prompt_tokens"]);
    EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"]); // nothing evaluated
    EXPECT_EQ(lookups("hit"), 1);

    // Another tenant asks the same: the model answers it (the same text: it is greedy).
    auto other = call("POST", "/v1/completions", beta_, kGreedy);
    ASSERT_EQ(other.status, 200);
    EXPECT_EQ(other.header("x-codepilot-cache"), "");
    EXPECT_EQ(other.json()["choices"][0]["text"], first.json()["choices"][0]["text"]);
    EXPECT_EQ(lookups("hit"), 1);

    // A different parameter is a different answer.
    json longer = kGreedy;
    longer["max_tokens"] = 9;
    EXPECT_EQ(call("POST", "/v1/completions", acme_, longer).header("x-codepilot-cache"), "");

    // Both calls of acme are in the audit trail, the hit with what it delivered.
    auto rows = app().identities().database().query("SELECT body FROM audit_log ORDER BY seq");
    ASSERT_TRUE(rows);
    int audited = 0;
    for (const auto& row : *rows) {
        auto body = json::parse(row.text(0));
        if (body["request_id"] == again.header("x-request-id")) {
            ++audited;
            EXPECT_EQ(body["completion_tokens"], 8);
            EXPECT_EQ(body["status"], 200);
        }
    }
    EXPECT_EQ(audited, 1);
}

TEST_F(ResponseCacheApi, SampledRequestsAreNeverCached) {
    json sampled = kGreedy;
    sampled["temperature"] = 0.8;
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(call("POST", "/v1/completions", acme_, sampled).header("x-codepilot-cache"), "") << i;
    EXPECT_EQ(lookups("hit"), 0);
    EXPECT_EQ(lookups("miss"), 0) << "not even looked up";
}

TEST_F(ResponseCacheApi, ChatAndStreamsReplayTheSameText) {
    const json chat = {{"messages", json::array({{{"role", "user"}, {"content", "Say something."}}})},
                       {"max_tokens", 6},
                       {"temperature", 0},
                       {"ignore_eos", true}};
    auto first = call("POST", "/v1/chat/completions", acme_, chat);
    ASSERT_EQ(first.status, 200) << first.body;
    auto again = call("POST", "/v1/chat/completions", acme_, chat);
    EXPECT_EQ(again.header("x-codepilot-cache"), "hit");
    EXPECT_EQ(again.json()["choices"][0]["message"]["content"],
              first.json()["choices"][0]["message"]["content"]);

    auto streamed = [&](const std::string& token) {
        json body = kGreedy;
        body["stream"] = true;
        SseStream stream(port(), "/v1/completions", body, {{"Authorization", "Bearer " + token}});
        EXPECT_EQ(stream.status(), 200);
        std::string text;
        for (const auto& event : stream.drain()) {
            if (event == "[DONE]") break;
            auto j = json::parse(event);
            if (!j["choices"].empty()) text += j["choices"][0].value("text", "");
        }
        return text;
    };
    // Tabby's code completion (greedy by default) through the completion service.
    const json tabby = {{"language", "python"},
                        {"segments", {{"prefix", "def add(a, b):\n    return "}, {"suffix", "\n"}}}};
    auto tab1 = call("POST", "/v1/completions", acme_, tabby);
    ASSERT_EQ(tab1.status, 200) << tab1.body;
    auto tab2 = call("POST", "/v1/completions", acme_, tabby);
    EXPECT_EQ(tab2.header("x-codepilot-cache"), "hit");
    EXPECT_EQ(tab2.json()["choices"][0]["text"], tab1.json()["choices"][0]["text"]);

    const double hits = lookups("hit");
    const std::string live = streamed(beta_); // beta's first: the model
    const std::string replayed = streamed(beta_);
    EXPECT_EQ(replayed, live);
    EXPECT_FALSE(live.empty());
    EXPECT_EQ(lookups("hit"), hits + 1);
}

// ---- the key and the store, as pure functions ----

inference::GenerationRequest greedy(std::vector<engine::Token> prompt) {
    inference::GenerationRequest r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0;
    r.max_tokens = 8;
    return r;
}

TEST(ResponseCacheKeys, EveryInputThatShapesTheAnswerIsInTheKey) {
    using api::ResponseCache;
    const auto base = greedy({1, 2, 3});
    const auto key = *ResponseCache::key_of(base, "t1", "m@1");
    EXPECT_EQ(*ResponseCache::key_of(base, "t1", "m@1"), key);
    EXPECT_NE(*ResponseCache::key_of(base, "t2", "m@1"), key) << "tenant";
    EXPECT_NE(*ResponseCache::key_of(base, "t1", "m@2"), key) << "a new model version starts cold";
    auto changed = [&](auto edit) {
        auto r = base;
        edit(r);
        return *ResponseCache::key_of(r, "t1", "m@1") != key;
    };
    EXPECT_TRUE(changed([](auto& r) { r.prompt.push_back(4); }));
    EXPECT_TRUE(changed([](auto& r) { r.max_tokens = 9; }));
    EXPECT_TRUE(changed([](auto& r) { r.stop = {"\n"}; }));
    EXPECT_TRUE(changed([](auto& r) { r.ignore_eos = true; }));
    EXPECT_TRUE(changed([](auto& r) { r.logprobs = 2; }));
    EXPECT_TRUE(changed([](auto& r) { r.sampling.repeat_penalty = 1.1f; }));
    EXPECT_TRUE(changed([](auto& r) { r.messages = {{"user", "hi"}}; }));
    EXPECT_TRUE(changed([](auto& r) { r.prompt_ids_are_remote = true; }));
    // ("ab","c") and ("a","bc") as stop lists are different keys: fields are length-prefixed.
    auto r1 = base, r2 = base;
    r1.stop = {"ab", "c"};
    r2.stop = {"a", "bc"};
    EXPECT_NE(*ResponseCache::key_of(r1, "t", "m@1"), *ResponseCache::key_of(r2, "t", "m@1"));

    auto sampled = base;
    sampled.sampling.temperature = 0.7f;
    EXPECT_FALSE(ResponseCache::key_of(sampled, "t1", "m@1"));
    auto warmup = base;
    warmup.max_tokens = 0;
    EXPECT_FALSE(ResponseCache::key_of(warmup, "t1", "m@1"))
        << "a prompt-only request is for its side effect";
}

TEST(ResponseCacheKeys, OnlyAnswersTheModelEndedItselfAreKept) {
    using api::ResponseCache;
    engine::GenerationEvent done;
    done.kind = engine::GenerationEvent::Kind::done;
    done.finish = engine::FinishReason::stop;
    EXPECT_TRUE(ResponseCache::keepable(8, done));
    done.finish = engine::FinishReason::length;
    done.usage.completion_tokens = 8;
    EXPECT_TRUE(ResponseCache::keepable(8, done));
    done.usage.completion_tokens = 5; // a deadline cut it
    EXPECT_FALSE(ResponseCache::keepable(8, done));
    for (auto f : {engine::FinishReason::cancelled, engine::FinishReason::error,
                   engine::FinishReason::content_filter}) {
        done.finish = f;
        EXPECT_FALSE(ResponseCache::keepable(8, done));
    }
}

TEST(ResponseCacheKeys, TheLeastRecentlyUsedGoesFirstByEntriesAndByBytes) {
    api::ResponseCache cache(2, 1 << 20, nullptr);
    cache.store("a", {"alpha", {}, engine::FinishReason::stop, {}});
    cache.store("b", {"beta", {}, engine::FinishReason::stop, {}});
    ASSERT_TRUE(cache.find("a")); // a is now the most recent
    cache.store("c", {"gamma", {}, engine::FinishReason::stop, {}});
    EXPECT_TRUE(cache.find("a"));
    EXPECT_FALSE(cache.find("b"));
    EXPECT_EQ(cache.find("c")->text, "gamma");
    EXPECT_EQ(cache.entries(), 2u);

    api::ResponseCache small(100, 4096, nullptr);
    small.store("big", {std::string(8192, 'x'), {}, engine::FinishReason::stop, {}});
    EXPECT_FALSE(small.find("big")) << "larger than the whole cache: not kept";
    for (int i = 0; i < 20; ++i) small.store("k" + std::to_string(i), {std::string(500, 'y'), {}, {}, {}});
    EXPECT_LE(small.bytes(), 4096u);
    EXPECT_TRUE(small.find("k19"));
    EXPECT_FALSE(small.find("k0"));
}

} // namespace
} // namespace codepilot::testenv
