// Per-tenant LoRA: a synthesized adapter for a synthesized base changes the output of the
// requests that carry it and of no other, also while both decode at once; cached prefixes never
// cross between the adapter and the base; an adapter for another base is refused at load with
// the tensor that does not fit; and through the server, the tenant it is attached to gets it
// (visible in the route header) while another tenant gets the base model, unchanged.
#include "engine/engine.h"
#include "engine/model_synth.h"
#include "support/auth_fixture.h"
#include "support/pending_generation.h"
#include "support/test_env.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <thread>

using namespace codepilot;
using namespace codepilot::testenv;
using json = nlohmann::json;

namespace {

std::unique_ptr<engine::Engine> load_tiny(int parallel = 2) {
    engine::EngineOptions o;
    o.model_path = tiny_model();
    o.parallel = parallel;
    o.ctx = 2048;
    o.threads = 2;
    o.embeddings = false;
    auto e = engine::Engine::load(o);
    if (!e) throw std::runtime_error(e.error().message);
    return std::move(e.value());
}

engine::GenerationRequest request(engine::Engine& e, const std::string& text,
                                  std::shared_ptr<const engine::LoraAdapter> adapter = nullptr) {
    auto r = greedy(e.tokenize(text, true, false), 16);
    r.adapter = std::move(adapter);
    return r;
}

std::string tiny_adapter() {
    return lora_for(tiny_model(), "tiny-starcoder-lora");
}

const char* kPrompt = "def fibonacci(n):\n    if n < 2:\n        return";

} // namespace

TEST(Lora, AnAdapterChangesTheOutputOfItsRequestsOnlyAlsoWhenBatchedWithTheBase) {
    auto engine = load_tiny(3);
    auto base_alone = Pending(*engine, request(*engine, kPrompt)).wait();
    ASSERT_EQ(base_alone.tokens.size(), 16u);

    auto adapter = engine->load_adapter(tiny_adapter());
    ASSERT_TRUE(adapter) << adapter.error().message;
    auto adapted_alone = Pending(*engine, request(*engine, kPrompt, *adapter)).wait();
    ASSERT_EQ(adapted_alone.tokens.size(), 16u);
    EXPECT_NE(adapted_alone.tokens, base_alone.tokens) << "the adapter made no difference";

    // A second adapter on the same base, and all three at once: each adapter decodes in a call
    // of its own, so no request sees another's adapter.
    auto second = engine->load_adapter(lora_for(tiny_model(), "tiny-starcoder-lora-2", 8));
    ASSERT_TRUE(second) << second.error().message;
    auto second_alone = Pending(*engine, request(*engine, kPrompt, *second)).wait();
    EXPECT_NE(second_alone.tokens, adapted_alone.tokens);
    for (int round = 0; round < 2; ++round) {
        Pending base(*engine, request(*engine, kPrompt));
        Pending adapted(*engine, request(*engine, kPrompt, *adapter));
        Pending other(*engine, request(*engine, kPrompt, *second));
        EXPECT_EQ(base.wait().tokens, base_alone.tokens) << "round " << round;
        EXPECT_EQ(adapted.wait().tokens, adapted_alone.tokens) << "round " << round;
        EXPECT_EQ(other.wait().tokens, second_alone.tokens) << "round " << round;
    }
    // Released: the engine frees the adapter and serves the base as before.
    adapter->reset();
    EXPECT_EQ(Pending(*engine, request(*engine, kPrompt)).wait().tokens, base_alone.tokens);
    auto again = engine->load_adapter(tiny_adapter());
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(Pending(*engine, request(*engine, kPrompt, *again)).wait().tokens, adapted_alone.tokens);
}

TEST(Lora, CachedPrefixesNeverCrossBetweenAnAdapterAndTheBase) {
    auto engine = load_tiny(1); // one sequence: reuse would be certain if the scope allowed it
    auto adapter = engine->load_adapter(tiny_adapter());
    ASSERT_TRUE(adapter) << adapter.error().message;
    auto warm = Pending(*engine, request(*engine, kPrompt)).wait();
    auto base_again = Pending(*engine, request(*engine, kPrompt)).wait();
    EXPECT_GT(base_again.done.usage.cached_tokens, 0) << "the base reuses its own prefix";
    auto adapted = Pending(*engine, request(*engine, kPrompt, *adapter)).wait();
    EXPECT_EQ(adapted.done.usage.cached_tokens, 0) << "the base's KV was reused under the adapter";
    auto adapted_again = Pending(*engine, request(*engine, kPrompt, *adapter)).wait();
    EXPECT_GT(adapted_again.done.usage.cached_tokens, 0) << "the adapter reuses its own prefix";
    EXPECT_EQ(adapted_again.tokens, adapted.tokens);
    auto base_after = Pending(*engine, request(*engine, kPrompt)).wait();
    EXPECT_EQ(base_after.done.usage.cached_tokens, 0) << "the adapter's KV was reused by the base";
    EXPECT_EQ(base_after.tokens, warm.tokens);
}

TEST(Lora, AnAdapterForAnotherBaseOrNotAnAdapterIsRefusedSayingWhy) {
    auto engine = load_tiny(1);
    // Made for a model one layer deep and half as wide.
    auto other = engine->load_adapter(lora_for(vocab_model("starcoder"), "vocab-starcoder-lora"));
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(other.error().message.find("incorrect shape"), std::string::npos) << other.error().message;
    EXPECT_NE(other.error().message.find("vocab-starcoder-lora.gguf"), std::string::npos)
        << other.error().message;

    auto model_file = engine->load_adapter(tiny_model()); // a model, not an adapter
    ASSERT_FALSE(model_file);
    EXPECT_NE(model_file.error().message.find("general.type"), std::string::npos)
        << model_file.error().message;

    auto missing = engine->load_adapter("/nonexistent/adapter.gguf");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ErrorCode::not_found);

    // The engine serves on.
    EXPECT_EQ(Pending(*engine, request(*engine, kPrompt)).wait().tokens.size(), 16u);

    engine::LoraSynthOptions bad;
    bad.output = "/tmp/never-written.gguf";
    bad.base = "/nonexistent/base.gguf";
    EXPECT_FALSE(engine::synth_lora(bad));
}

// Through the server: [[models]] with the adapter attached to tenant acme.
class LoraServing : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        config::FleetModelConfig base;
        base.id = "star";
        base.local.path = tiny_model();
        base.local.parallel = 2;
        base.local.ctx = 2048;
        base.local.threads = 2;
        config::FleetModelConfig lora;
        lora.id = "star-acme";
        lora.backend = "lora";
        lora.base = "star";
        lora.local.path = tiny_adapter();
        lora.tenants = {"acme"};
        lora.attach_tenants = {"acme"};
        c.models = {lora, base}; // adapters load after their base, whatever the order
    }

    HttpResponse complete(const std::string& key, const std::string& model = "") {
        json body = {{"prompt", kPrompt}, {"max_tokens", 12}, {"temperature", 0}};
        if (!model.empty()) body["model"] = model;
        return call("POST", "/v1/completions", key, body);
    }
};

TEST_F(LoraServing, TheTenantItIsAttachedToGetsTheAdapterAndAnotherTenantTheBase) {
    member("acme", "ada", "developer");
    member("globex", "gus", "developer");
    const auto acme = key("acme", "ada", "completion");
    const auto globex = key("globex", "gus", "completion");

    auto theirs = complete(globex);
    ASSERT_EQ(theirs.status, 200) << theirs.body;
    EXPECT_EQ(theirs.header("x-codepilot-route"), "model=star; version=1; backend=local; reason=default");
    auto owner = complete(owner_key_); // no tenant: the base model
    ASSERT_EQ(owner.status, 200) << owner.body;
    EXPECT_EQ(owner.json()["choices"][0]["text"], theirs.json()["choices"][0]["text"]);

    auto mine = complete(acme);
    ASSERT_EQ(mine.status, 200) << mine.body;
    EXPECT_EQ(mine.header("x-codepilot-route"),
              "model=star-acme; version=1; backend=lora; reason=adapter:star");
    EXPECT_NE(mine.json()["choices"][0]["text"], theirs.json()["choices"][0]["text"]);
    // Named by its id, for those who may see it; another tenant is told it does not exist.
    auto named = complete(acme, "star-acme");
    ASSERT_EQ(named.status, 200) << named.body;
    EXPECT_EQ(named.json()["choices"][0]["text"], mine.json()["choices"][0]["text"]);
    auto refused = complete(globex, "star-acme");
    EXPECT_EQ(refused.status, 404) << refused.body;

    auto listed = call("GET", "/v1/models", acme).json();
    bool found = false;
    for (const auto& m : listed["data"])
        if (m["id"] == "star-acme") {
            found = true;
            EXPECT_EQ(m["parent"], "star");
            EXPECT_EQ(m["meta"]["backend"], "lora");
        }
    EXPECT_TRUE(found) << listed;
    EXPECT_EQ(call("GET", "/v1/models", globex).body.find("star-acme"), std::string::npos);
}

TEST_F(LoraServing, AnAdapterRegisteredAtRunTimeLoadsAndOneForAnotherBaseFailsWithTheReason) {
    auto entry = [](const std::string& id, const std::string& path) {
        return json{{"id", id}, {"backend", "lora"}, {"base", "star"}, {"path", path}};
    };
    auto ok = call("POST", "/admin/v1/models", owner_key_, entry("star-more", tiny_adapter()));
    ASSERT_EQ(ok.status, 202) << ok.body;
    auto wrong = call("POST", "/admin/v1/models", owner_key_,
                      entry("star-wrong", lora_for(vocab_model("starcoder"), "vocab-starcoder-lora")));
    ASSERT_EQ(wrong.status, 202) << wrong.body;
    auto no_base = call("POST", "/admin/v1/models", owner_key_,
                        {{"id", "x"}, {"backend", "lora"}, {"base", "nope"}, {"path", tiny_adapter()}});
    EXPECT_EQ(no_base.status, 400) << no_base.body;
    EXPECT_NE(no_base.body.find("base 'nope'"), std::string::npos) << no_base.body;

    auto state = [&](const std::string& id) -> json {
        const json list = call("GET", "/admin/v1/models", owner_key_).json();
        for (const auto& m : list["data"])
            if (m["id"] == id) return m;
        return nullptr;
    };
    for (int i = 0; i < 600; ++i) {
        auto a = state("star-more"), b = state("star-wrong");
        if (!a.is_null() && a["state"] == "serving" && !b.is_null() && b["state"] == "failed") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(state("star-more")["state"], "serving") << state("star-more");
    auto failed = state("star-wrong");
    ASSERT_EQ(failed["state"], "failed") << failed;
    EXPECT_NE(failed["last_error"].get<std::string>().find("incorrect shape"), std::string::npos) << failed;

    auto served = complete(owner_key_, "star-more");
    ASSERT_EQ(served.status, 200) << served.body;
    EXPECT_NE(served.header("x-codepilot-route").find("backend=lora"), std::string::npos);
    // The base cannot be unloaded from under its adapters (it is a config model anyway) and the
    // adapter unloads alone.
    auto unload = call("POST", "/admin/v1/models/star-more/unload", owner_key_, json::object());
    EXPECT_EQ(unload.status, 202) << unload.body;
    EXPECT_EQ(complete(owner_key_).status, 200);

    // A registered base cannot be unloaded while an adapter is on it; once the adapter is
    // unloaded, it can.
    json base = {{"id", "star2"}, {"path", tiny_model()}, {"parallel", 1}, {"ctx", 1024}, {"threads", 1}};
    ASSERT_EQ(call("POST", "/admin/v1/models", owner_key_, base).status, 202);
    auto serving = [&](const std::string& id) {
        for (int i = 0; i < 600; ++i) {
            auto m = state(id);
            if (!m.is_null() && m["state"] == "serving") return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    };
    ASSERT_TRUE(serving("star2")) << state("star2");
    auto on_star2 = entry("star2-lora", tiny_adapter());
    on_star2["base"] = "star2";
    ASSERT_EQ(call("POST", "/admin/v1/models", owner_key_, on_star2).status, 202);
    ASSERT_TRUE(serving("star2-lora")) << state("star2-lora");
    auto pinned = call("POST", "/admin/v1/models/star2/unload", owner_key_, json::object());
    EXPECT_EQ(pinned.status, 409) << pinned.body;
    EXPECT_NE(pinned.body.find("LoRA adapter 'star2-lora'"), std::string::npos) << pinned.body;
    ASSERT_EQ(call("POST", "/admin/v1/models/star2-lora/unload", owner_key_, json::object()).status, 202);
    bool base_unloads = false;
    for (int i = 0; i < 600 && !base_unloads; ++i) {
        base_unloads =
            call("POST", "/admin/v1/models/star2/unload", owner_key_, json::object()).status == 202;
        if (!base_unloads) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(base_unloads);
}

TEST_F(LoraServing, NoCachedPrefixCrossesTenants) {
    member("globex", "gus", "developer");
    member("initech", "ian", "developer");
    const auto globex = key("globex", "gus", "completion");
    const auto initech = key("initech", "ian", "completion");
    auto cached = [](const HttpResponse& r) {
        return r.json()["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>();
    };
    auto first = complete(globex);
    ASSERT_EQ(first.status, 200) << first.body;
    auto again = complete(globex);
    EXPECT_GT(cached(again), 0) << again.body; // a tenant reuses its own prefixes
    auto other = complete(initech);
    ASSERT_EQ(other.status, 200) << other.body;
    EXPECT_EQ(cached(other), 0) << "globex's cached prompt served initech: " << other.body;
    EXPECT_EQ(other.json()["choices"][0]["text"], first.json()["choices"][0]["text"]);
}
