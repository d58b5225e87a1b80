// Two local synthesized models served at once by one process: listing, routing by name,
// alias, tier header, prompt size and tenant, errors for unknown names, per-model metrics.
#include "support/http_client.h"
#include "support/test_env.h"

#include <future>
#include <gtest/gtest.h>

using namespace codepilot;
using namespace codepilot::testenv;
using json = nlohmann::json;

namespace {

config::FleetModelConfig local_model(const std::string& id, const std::string& path,
                                     std::vector<std::string> roles) {
    config::FleetModelConfig m;
    m.id = id;
    m.roles = std::move(roles);
    m.local.path = path;
    m.local.parallel = 2;
    m.local.ctx = 2048;
    m.local.threads = 1;
    m.local.embeddings = std::find(m.roles.begin(), m.roles.end(), "embedding") != m.roles.end();
    return m;
}

config::Config two_models() {
    auto c = test_config();
    c.models.push_back(local_model("star", tiny_model(), {"completion", "chat", "embedding"}));
    auto qwen = local_model("qwen", qwen_coder_model(), {"completion", "chat"});
    qwen.aliases = {"code", "large"};
    qwen.version = "2";
    c.models.push_back(qwen);
    auto secret = local_model("secret", tiny_model(), {"chat"});
    secret.tenants = {"acme"};
    c.models.push_back(secret);
    auto canary = local_model("star-v2", tiny_model(), {"completion"});
    canary.version = "2";
    canary.canary_of = "star";
    canary.canary_share = 0; // the canary test moves it
    c.models.push_back(canary);
    c.routing.chat = "star";
    config::RoutingRuleConfig tier;
    tier.task = "chat";
    tier.tier = "large";
    tier.model = "qwen";
    config::RoutingRuleConfig size;
    size.task = "chat";
    size.min_prompt_tokens = 200;
    size.model = "qwen";
    c.routing.rules = {tier, size};
    return c;
}

json chat(const std::string& content, const std::string& model = "") {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", content}}})}, {"max_tokens", 4}};
    if (!model.empty()) body["model"] = model;
    return body;
}

} // namespace

class Fleet : public ::testing::Test {
protected:
    static void SetUpTestSuite() { server_ = new TestServer(two_models()); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    int port() const { return server_->port(); }
    static TestServer* server_;
};
TestServer* Fleet::server_ = nullptr;

TEST_F(Fleet, ListsEveryModelWithItsRoles) {
    auto j = http(port(), "GET", "/v1/models").json();
    ASSERT_EQ(j["data"].size(), 4u); // auth off: the caller is the owner and sees every model
    EXPECT_EQ(j["data"][0]["id"], "star");
    EXPECT_EQ(j["data"][1]["id"], "qwen");
    EXPECT_EQ(j["data"][1]["meta"]["version"], "2");
    EXPECT_EQ(j["data"][1]["meta"]["aliases"], json::array({"code", "large"}));
    EXPECT_EQ(j["data"][0]["meta"]["backend"], "local");
    auto tabby = http(port(), "GET", "/v1beta/models").json();
    EXPECT_EQ(tabby["completion"], json::array({"star", "qwen", "star-v2"}));
    EXPECT_EQ(tabby["chat"], json::array({"star", "qwen", "secret"}));
}

TEST_F(Fleet, RoutesByNameAndAliasAndSaysSoInAHeader) {
    auto by_default = post_json(port(), "/v1/completions", {{"prompt", "x = "}, {"max_tokens", 2}});
    ASSERT_EQ(by_default.status, 200) << by_default.body;
    EXPECT_EQ(by_default.json()["model"], "star");
    EXPECT_EQ(by_default.header("x-codepilot-route"), "model=star; version=1; backend=local; reason=default");
    auto named =
        post_json(port(), "/v1/completions", {{"model", "qwen"}, {"prompt", "x = "}, {"max_tokens", 2}});
    ASSERT_EQ(named.status, 200) << named.body;
    EXPECT_EQ(named.json()["model"], "qwen");
    EXPECT_EQ(named.header("x-codepilot-route"), "model=qwen; version=2; backend=local; reason=requested");
    auto alias =
        post_json(port(), "/v1/completions", {{"model", "code"}, {"prompt", "x = "}, {"max_tokens", 2}});
    EXPECT_EQ(alias.json()["model"], "qwen");
    EXPECT_NE(alias.header("x-codepilot-route").find("reason=alias"), std::string::npos);
}

TEST_F(Fleet, AnUnknownModelIs404NamingTheAvailableOnes) {
    auto r = post_json(port(), "/v1/completions", {{"model", "gpt-4"}, {"prompt", "x"}, {"max_tokens", 2}});
    ASSERT_EQ(r.status, 404) << r.body;
    auto message = r.json()["error"]["message"].get<std::string>();
    EXPECT_NE(message.find("'gpt-4' does not exist"), std::string::npos) << message;
    EXPECT_NE(message.find("star, qwen"), std::string::npos) << message;
    EXPECT_EQ(r.json()["error"]["param"], "model");
    // A model without the task's role: 400, naming it.
    auto e = post_json(port(), "/v1/embeddings", {{"model", "qwen"}, {"input", "x"}});
    EXPECT_EQ(e.status, 400) << e.body;
    auto ok = post_json(port(), "/v1/embeddings", {{"input", "x"}});
    EXPECT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(ok.json()["model"], "star");
}

TEST_F(Fleet, TierHeaderAndLongPromptsGoToTheLargeModel) {
    auto small = post_json(port(), "/v1/chat/completions", chat("hi"));
    ASSERT_EQ(small.status, 200) << small.body;
    EXPECT_EQ(small.json()["model"], "star");
    auto tiered = http(port(), "POST", "/v1/chat/completions", chat("hi").dump(),
                       {{"x-codepilot-tier", "large"}, {"Content-Type", "application/json"}});
    ASSERT_EQ(tiered.status, 200) << tiered.body;
    EXPECT_EQ(tiered.json()["model"], "qwen");
    EXPECT_NE(tiered.header("x-codepilot-route").find("reason=rule:1"), std::string::npos);
    std::string long_prompt;
    for (int i = 0; i < 100; ++i) long_prompt += "word" + std::to_string(i) + " ";
    auto big = post_json(port(), "/v1/chat/completions", chat(long_prompt));
    ASSERT_EQ(big.status, 200) << big.body;
    EXPECT_EQ(big.json()["model"], "qwen");
    EXPECT_NE(big.header("x-codepilot-route").find("reason=rule:2"), std::string::npos);
}

TEST_F(Fleet, AModelForOneTenantDoesNotExistForAnother) {
    auto& fleet = server_->app().fleet();
    inference::RouteQuery q;
    q.task = inference::Task::chat;
    q.requested = "secret";
    q.tenant = "acme";
    auto mine = fleet.route(q);
    ASSERT_TRUE(mine) << mine.error().message;
    EXPECT_EQ(mine->model->id, "secret");
    q.tenant = "globex";
    auto theirs = fleet.route(q);
    ASSERT_FALSE(theirs);
    EXPECT_EQ(theirs.error().code, ErrorCode::not_found);
    EXPECT_EQ(theirs.error().message.find("secret, "), std::string::npos) << theirs.error().message;
    EXPECT_EQ(fleet.visible_to("globex").size(), 3u);
}

TEST_F(Fleet, BothModelsGenerateAtOnceAndHaveTheirOwnMetrics) {
    auto ask = [this](const std::string& model) {
        return post_json(
            port(), "/v1/completions",
            {{"model", model}, {"prompt", "int main() {"}, {"max_tokens", 24}, {"ignore_eos", true}});
    };
    auto a = std::async(std::launch::async, ask, "star");
    auto b = std::async(std::launch::async, ask, "qwen");
    auto ra = a.get(), rb = b.get();
    ASSERT_EQ(ra.status, 200) << ra.body;
    ASSERT_EQ(rb.status, 200) << rb.body;
    EXPECT_EQ(ra.json()["usage"]["completion_tokens"], 24);
    EXPECT_EQ(rb.json()["usage"]["completion_tokens"], 24);
    auto metrics = http(port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find("codepilot_model_serving{model=\"qwen\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("codepilot_model_serving{model=\"star\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("codepilot_completion_tokens_total{model=\"qwen\"}"), std::string::npos);
    auto admin = http(port(), "GET", "/admin/v1/models").json();
    ASSERT_EQ(admin["data"].size(), 4u);
    EXPECT_EQ(admin["data"][1]["state"], "serving");
    EXPECT_EQ(admin["defaults"]["chat"], "star");
    EXPECT_EQ(http(port(), "GET", "/ready").status, 200);
}

TEST_F(Fleet, ACanaryTakesItsShareStickyPerCallerAndPromotesOrRollsBackInOneStep) {
    auto& fleet = server_->app().fleet();
    ASSERT_TRUE(fleet.set_canary_share("star-v2", 30));
    auto to_canary = [&](const std::string& caller) {
        inference::RouteQuery q;
        q.task = inference::Task::completion;
        q.sticky_key = caller;
        auto r = fleet.route(q);
        EXPECT_TRUE(r);
        return r && r->model->id == "star-v2";
    };
    int canaried = 0;
    for (int u = 0; u < 400; ++u) {
        const bool first = to_canary("user-" + std::to_string(u));
        canaried += first;
        EXPECT_EQ(to_canary("user-" + std::to_string(u)), first); // sticky
    }
    EXPECT_GT(canaried, 400 * 20 / 100) << canaried;
    EXPECT_LT(canaried, 400 * 40 / 100) << canaried;
    // Chat is not a role of the canary: chat traffic stays on the base.
    inference::RouteQuery chat_query;
    chat_query.task = inference::Task::chat;
    chat_query.sticky_key = "user-1";
    EXPECT_EQ(fleet.route(chat_query)->model->id, "star");

    auto put = [this](const json& body) {
        return http(port(), "PUT", "/admin/v1/models/star-v2/canary", body.dump(),
                    {{"Content-Type", "application/json"}});
    };
    ASSERT_EQ(put({{"share", 100}}).status, 200); // promote
    auto promoted = post_json(port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}});
    EXPECT_EQ(promoted.json()["model"], "star-v2");
    EXPECT_EQ(promoted.header("x-codepilot-route"),
              "model=star-v2; version=2; backend=local; reason=canary:star");
    auto admin = http(port(), "GET", "/admin/v1/models").json();
    EXPECT_EQ(admin["data"][3]["canary_share"], 100);
    ASSERT_EQ(put({{"share", 0}}).status, 200); // roll back
    EXPECT_EQ(post_json(port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}).json()["model"],
              "star");
    auto out_of_range = put({{"share", 101}});
    EXPECT_EQ(out_of_range.status, 400) << out_of_range.body;
    EXPECT_NE(out_of_range.body.find("share"), std::string::npos);
    auto not_canary = http(port(), "PUT", "/admin/v1/models/qwen/canary", R"({"share":5})",
                           {{"Content-Type", "application/json"}});
    EXPECT_EQ(not_canary.status, 400) << not_canary.body;
    EXPECT_EQ(fleet.canary_share("star-v2"), 0);
}

namespace {
std::string ok_upstream() {
    return "[[models]]\nid = \"u\"\nbackend = \"upstream\"\nurls = [\"http://h:1\"]\n";
}
} // namespace

TEST(FleetConfig, BadFleetsAreRefusedWithTheirReason) {
    auto parse = [](const std::string& toml) { return config::parse_config(toml, "t.toml"); };
    auto dup = parse("[[models]]\nid = \"a\"\npath = \"x.gguf\"\naliases = [\"code\"]\n"
                     "[[models]]\nid = \"b\"\npath = \"y.gguf\"\naliases = [\"code\"]\n");
    ASSERT_FALSE(dup);
    EXPECT_NE(dup.error().message.find("'code' is used by two models"), std::string::npos)
        << dup.error().message;
    auto rule = parse(
        "[[models]]\nid = \"a\"\npath = \"x.gguf\"\n[[routing.rules]]\ntier = \"large\"\nmodel = \"b\"\n");
    ASSERT_FALSE(rule);
    EXPECT_NE(rule.error().message.find("no model 'b'"), std::string::npos) << rule.error().message;
    auto key = parse(
        "[[models]]\nid = \"u\"\nbackend = \"upstream\"\nurls = [\"http://h:1\"]\napi_key = \"sk-1\"\n");
    ASSERT_FALSE(key);
    EXPECT_NE(key.error().message.find("api_key_file"), std::string::npos) << key.error().message;
    EXPECT_EQ(key.error().message.find("sk-1"), std::string::npos);
    auto share =
        parse("[[models]]\nid = \"a\"\npath = \"x.gguf\"\n[[models]]\nid = \"b\"\npath = \"x.gguf\"\n"
              "canary_of = \"a\"\ncanary_share = 120\n");
    ASSERT_FALSE(share);
    EXPECT_NE(share.error().message.find("canary_share' must be between 0 and 100"), std::string::npos)
        << share.error().message;
    auto self = parse("[[models]]\nid = \"a\"\npath = \"x.gguf\"\ncanary_of = \"a\"\n");
    ASSERT_FALSE(self);
    auto role = parse("[[models]]\nid = \"a\"\npath = \"x.gguf\"\nroles = [\"vision\"]\n");
    ASSERT_FALSE(role);
    auto url = parse("[[models]]\nid = \"u\"\nbackend = \"upstream\"\nurls = [\"ftp://h\"]\n");
    ASSERT_FALSE(url);
    auto ok =
        parse("[[models]]\nid = \"u\"\nbackend = \"upstream\"\nurls = [\"http://h:1\"]\nfim = \"starcoder\"\n"
              "[[models]]\nid = \"a\"\npath = \"x.gguf\"\nfallback = [\"u\"]\n[routing]\nchat = \"u\"\n");
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->models.size(), 2u);
    EXPECT_EQ(ok->routing.chat, "u");

    // LoRA adapters: on a local model of the fleet, for completion and chat only.
    auto refused = [&](const std::string& toml, const std::string& why) {
        auto r = parse(toml);
        ASSERT_FALSE(r) << toml;
        EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
    };
    const std::string local = "[[models]]\nid = \"a\"\npath = \"x.gguf\"\n";
    const std::string lora = "[[models]]\nid = \"l\"\nbackend = \"lora\"\npath = \"l.gguf\"\n";
    refused(local + lora, "needs 'base'");
    refused(local + lora + "base = \"zz\"\n", "base 'zz' is not a model");
    refused(ok_upstream() + lora + "base = \"u\"\n", "must be a local model");
    refused(local + lora + "base = \"a\"\nroles = [\"embedding\"]\n", "not embedding");
    refused(local + lora + "base = \"a\"\nlora_scale = \"big\"\n", "must be a number");
    refused(local + lora + "base = \"a\"\nlora_scale = 1e9\n", "must be between");
    refused(local + "attach_tenants = [\"acme\"]\n", "are for backend = \"lora\"");
    auto adapter = parse(local + lora + "base = \"a\"\nlora_scale = 0.5\nattach_tenants = [\"acme\"]\n");
    ASSERT_TRUE(adapter) << adapter.error().message;
    EXPECT_EQ(adapter->models[1].base, "a");
    EXPECT_FLOAT_EQ(adapter->models[1].lora_scale, 0.5f);
    EXPECT_EQ(adapter->models[1].attach_tenants, std::vector<std::string>{"acme"});
}

TEST(FleetConfig, AMissingModelFileFailsNamingTheModel) {
    auto c = test_config();
    c.models.push_back(local_model("ghost", "/nonexistent/ghost.gguf", {"completion"}));
    auto app = app::Application::create(c);
    ASSERT_FALSE(app);
    EXPECT_NE(app.error().message.find("model 'ghost'"), std::string::npos) << app.error().message;
}
