// The engine against a real (synthesized) model: batching is invisible, prefixes are
// reused across sequences, cancellation frees capacity, limits give clear errors.
#include "engine/engine.h"
#include "support/pending_generation.h"
#include "support/test_env.h"

#include <future>
#include <gtest/gtest.h>
#include <thread>

using namespace codepilot;
using namespace codepilot::engine;
using codepilot::testenv::greedy;
using codepilot::testenv::Pending;

namespace {

std::unique_ptr<Engine> load(int parallel = 4, int ctx = 4096, int queue = 64, int draft = 8) {
    EngineOptions o;
    o.speculative_draft = draft;
    o.model_path = testenv::tiny_model();
    o.parallel = parallel;
    o.ctx = ctx;
    o.threads = 2;
    o.queue_size = queue;
    auto e = Engine::load(o);
    if (!e) throw std::runtime_error(e.error().message);
    return std::move(e.value());
}

std::vector<Token> text_prompt(Engine& e, const std::string& text) {
    return e.tokenize(text, true, false);
}

} // namespace

TEST(Engine, BatchingIsInvisibleAtTemperatureZero) {
    auto engine = load(4);
    std::vector<std::string> texts = {"def add(a, b):\n    return", "#include <stdio.h>\nint main() {",
                                      "SELECT name FROM users WHERE",
                                      "function greet(name) {\n  console.log("};
    std::vector<std::vector<Token>> alone;
    for (const auto& t : texts) {
        Pending p(*engine, greedy(text_prompt(*engine, t), 24));
        auto r = p.wait();
        ASSERT_EQ(r.tokens.size(), 24u);
        alone.push_back(r.tokens);
    }
    // Twice, so that the second round also runs with warm caches in other sequences.
    for (int round = 0; round < 2; ++round) {
        std::vector<std::unique_ptr<Pending>> together;
        for (const auto& t : texts)
            together.push_back(std::make_unique<Pending>(*engine, greedy(text_prompt(*engine, t), 24)));
        for (size_t i = 0; i < texts.size(); ++i)
            EXPECT_EQ(together[i]->wait().tokens, alone[i]) << "prompt " << i;
    }
    EXPECT_GT(engine->stats().decode_steps, 0);
}

TEST(Engine, ReusesTheLongestCachedPrefixFromAnySequence) {
    auto engine = load(4);
    std::string shared;
    for (int i = 0; i < 40; ++i)
        shared += "    value_" + std::to_string(i) + " = compute(" + std::to_string(i) + ")\n";
    auto base = text_prompt(*engine, shared);
    ASSERT_GT(base.size(), 200u);

    // A long request keeps its sequence busy...
    auto first = base;
    auto tail1 = engine->tokenize("    result = 1", false, false);
    first.insert(first.end(), tail1.begin(), tail1.end());
    auto busy_request = greedy(first, 400);
    Pending busy(*engine, busy_request);
    busy.wait_first_text();

    // ...so a second request sharing the prefix must copy it from that busy sequence.
    auto second = base;
    auto tail2 = engine->tokenize("    other = 2", false, false);
    second.insert(second.end(), tail2.begin(), tail2.end());
    Pending p2(*engine, greedy(second, 4));
    auto r2 = p2.wait();
    EXPECT_GE(r2.done.usage.cached_tokens, static_cast<int>(base.size()) - 1);
    EXPECT_EQ(r2.done.usage.prompt_tokens, static_cast<int>(second.size()));
    busy.handle().cancel();
    busy.wait();

    // The evaluated-token counter proves only the new tokens were computed.
    auto before = engine->stats().prompt_tokens_evaluated;
    auto third = base;
    auto tail3 = engine->tokenize("    third = 3", false, false);
    third.insert(third.end(), tail3.begin(), tail3.end());
    Pending p3(*engine, greedy(third, 4));
    auto r3 = p3.wait();
    auto evaluated = engine->stats().prompt_tokens_evaluated - before;
    EXPECT_EQ(evaluated, r3.done.usage.prompt_tokens - r3.done.usage.cached_tokens);
    EXPECT_LE(evaluated, static_cast<int64_t>(tail3.size()) + 2);
}

TEST(Engine, ReusedPrefixGivesTheSameTokensAsAColdStart) {
    auto cold_engine = load(1);
    auto warm_engine = load(2);
    auto prompt =
        text_prompt(*cold_engine,
                    "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):");
    auto cold = Pending(*cold_engine, greedy(prompt, 16)).wait();
    // Warm the other engine with a request sharing most of the prompt, then ask the same.
    auto partial = std::vector<Token>(prompt.begin(), prompt.end() - 3);
    Pending(*warm_engine, greedy(partial, 8)).wait();
    auto warm = Pending(*warm_engine, greedy(prompt, 16)).wait();
    EXPECT_GT(warm.done.usage.cached_tokens, 0);
    EXPECT_EQ(warm.tokens, cold.tokens);
}

TEST(Engine, CancellationFreesTheSequenceWithinASingleStep) {
    auto engine = load(2, 8192, 8);
    std::vector<std::unique_ptr<Pending>> runs;
    for (int i = 0; i < 2; ++i)
        runs.push_back(std::make_unique<Pending>(
            *engine, greedy(text_prompt(*engine, "loop " + std::to_string(i)), 4000)));
    for (auto& r : runs) r->wait_first_text();
    for (auto& r : runs) r->handle().cancel();
    for (auto& r : runs) {
        auto c = r->wait();
        EXPECT_EQ(c.done.finish, FinishReason::cancelled);
        EXPECT_LT(c.done.usage.completion_tokens, 4000);
    }
    EXPECT_EQ(engine->stats().running, 0);
    auto r = Pending(*engine, greedy(text_prompt(*engine, "next"), 4)).wait();
    EXPECT_EQ(r.done.finish, FinishReason::length);
    EXPECT_EQ(r.tokens.size(), 4u);
}

TEST(Engine, StopStringsEndGenerationAndAreNotReturned) {
    auto engine = load(1);
    auto prompt = text_prompt(*engine, "int x = ");
    auto free_run = Pending(*engine, greedy(prompt, 12)).wait();
    ASSERT_GE(free_run.text.size(), 4u);
    // Use a piece of the greedy output itself as the stop string.
    std::string stop = free_run.text.substr(free_run.text.size() / 2, 2);
    auto req = greedy(prompt, 12);
    req.stop = {stop};
    auto stopped = Pending(*engine, req).wait();
    EXPECT_EQ(stopped.done.finish, FinishReason::stop);
    EXPECT_EQ(stopped.text, free_run.text.substr(0, free_run.text.find(stop)));
}

TEST(Engine, ClearErrorsForPromptsThatCannotRun) {
    auto engine = load(4, 1024, 0);
    std::vector<Token> too_long(300, 100); // ctx per sequence is 256
    auto r = engine->submit(greedy(too_long, 4));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::context_overflow);
    EXPECT_NE(r.error().message.find("300 tokens"), std::string::npos);
    auto empty = engine->submit(greedy({}, 4));
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, ErrorCode::invalid_argument);
    auto bad_token = engine->submit(greedy({1, 999999}, 4));
    ASSERT_FALSE(bad_token.ok());
    EXPECT_NE(bad_token.error().message.find("out of range"), std::string::npos);
}

TEST(Engine, GenerationStopsAtTheEndOfTheSequenceContext) {
    auto engine = load(4, 256, 4); // 64 cells per sequence
    auto prompt = text_prompt(*engine, "hello");
    auto r = Pending(*engine, greedy(prompt, 1000)).wait();
    EXPECT_EQ(r.done.finish, FinishReason::length);
    EXPECT_LE(static_cast<int>(prompt.size()) + r.done.usage.completion_tokens, 64);
}

TEST(Engine, AQueueBeyondItsBoundIsRefused) {
    auto engine = load(1, 1024, 1);
    auto prompt = text_prompt(*engine, "busy");
    Pending running(*engine, greedy(prompt, 200));
    Pending waiting(*engine, greedy(prompt, 4));
    auto refused = engine->submit(greedy(prompt, 4));
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::overloaded);
    running.handle().cancel();
    EXPECT_EQ(waiting.wait().tokens.size(), 4u);
}

TEST(Engine, EmbeddingsAreNormalisedAndDeterministic) {
    auto engine = load(1);
    std::promise<Result<Engine::Embeddings>> p1, p2;
    auto a = text_prompt(*engine, "vector one");
    auto b = text_prompt(*engine, "something else entirely");
    ASSERT_TRUE(
        engine->embed({a, b}, [&](Result<Engine::Embeddings> r) { p1.set_value(std::move(r)); }).ok());
    ASSERT_TRUE(engine->embed({a}, [&](Result<Engine::Embeddings> r) { p2.set_value(std::move(r)); }).ok());
    auto r1 = p1.get_future().get();
    auto r2 = p2.get_future().get();
    ASSERT_TRUE(r1.ok());
    ASSERT_EQ(r1->size(), 2u);
    double norm = 0;
    for (float v : (*r1)[0]) norm += v * v;
    EXPECT_NEAR(norm, 1.0, 1e-4);
    EXPECT_EQ(static_cast<int>((*r1)[0].size()), engine->info().n_embd);
    EXPECT_NE((*r1)[0], (*r1)[1]);
    for (size_t i = 0; i < (*r2)[0].size(); ++i) EXPECT_NEAR((*r2)[0][i], (*r1)[0][i], 1e-5);
}

// Drafts verified in the batch must not change a single token: speculative decoding is
// only a speed-up. Random-weight models fall into loops, which the n-gram drafter predicts.
TEST(Engine, SpeculativeDecodingGivesExactlyTheGreedyTokens) {
    auto plain = load(2, 4096, 8, 0);
    auto spec = load(2, 4096, 8, 8);
    std::vector<std::string> texts = {"for i in range(10):\n    print(i)\nfor i in range(10):\n",
                                      "int a = 1; int b = 2; int c = 3; int", "the quick brown fox"};
    for (const auto& t : texts) {
        auto want = Pending(*plain, greedy(text_prompt(*plain, t), 96)).wait();
        auto got = Pending(*spec, greedy(text_prompt(*spec, t), 96)).wait();
        EXPECT_EQ(got.tokens, want.tokens) << t;
        EXPECT_EQ(got.text, want.text);
        EXPECT_EQ(got.done.usage.completion_tokens, 96);
    }
    auto s = spec->stats();
    EXPECT_GT(s.draft_tokens_proposed, 0);
    EXPECT_GT(s.draft_tokens_accepted, 0);
    EXPECT_LT(s.decode_steps, plain->stats().decode_steps); // fewer steps for the same tokens
    EXPECT_EQ(plain->stats().draft_tokens_proposed, 0);
}

TEST(Engine, SpeculativeDecodingRespectsStopStringsAndLimits) {
    auto plain = load(1, 2048, 4, 0);
    auto spec = load(1, 2048, 4, 8);
    auto prompt = text_prompt(*plain, "x = x + 1\nx = x + 1\nx = x + 1\n");
    auto free_run = Pending(*plain, greedy(prompt, 40)).wait();
    ASSERT_GE(free_run.text.size(), 6u);
    std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
    for (auto* e : {plain.get(), spec.get()}) {
        auto r = greedy(prompt, 40);
        r.stop = {stop};
        auto out = Pending(*e, r).wait();
        EXPECT_EQ(out.text, free_run.text.substr(0, free_run.text.find(stop)));
        EXPECT_EQ(out.done.finish, FinishReason::stop);
        auto limited = Pending(*e, greedy(prompt, 7)).wait();
        EXPECT_EQ(limited.tokens.size(), 7u);
    }
}
