// The guard before inference, end to end: a planted secret never reaches the model on any API
// family (asserted on what the engine received: the echoed prompt, Tabby's debug prompt, or the
// prompt's token count against the placeholder text), placeholders are stable so the prefix
// cache still works, `block` refuses naming rule, field and line without echoing the secret,
// `log` only counts, and the audit record and metrics name the rule, never the value.
#include "support/auth_fixture.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

const std::string kKey = "AKIAQYLPMN5HHHFPZAM2"; // the shape of an AWS access key id, not a real one
const std::string kPlaceholder = "<SECRET:aws_access_key_id>";

class GuardApi : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        c.audit.durability = "sync";
        config::GuardTenantConfig strict;
        strict.name = "strict";
        strict.policy.prompts = "block";
        config::GuardTenantConfig counting;
        counting.name = "counting";
        counting.policy.prompts = "log";
        c.guard.tenants = {strict, counting};
    }

    std::string developer_key(const std::string& tenant_name) {
        member(tenant_name, "dev-" + tenant_name, "developer");
        return key(tenant_name, "dev-" + tenant_name, "completion,chat");
    }

    json audit_record(const HttpResponse& r) {
        auto rows = app().identities().database().query("SELECT body FROM audit_log ORDER BY seq");
        EXPECT_TRUE(rows);
        for (const auto& row : *rows) {
            auto body = json::parse(row.text(0));
            if (body["request_id"] == r.header("x-request-id")) return body;
        }
        return nullptr;
    }
};

TEST_F(GuardApi, OpenAiCompletionsNeverSeeTheSecretAndTheSameFileRedactsTheSame) {
    const std::string prompt = "import boto3\nclient = boto3.client('s3', aws_access_key_id='" + kKey +
                               "')\n# the same key again: " + kKey + "\n";
    json body = {{"prompt", prompt}, {"max_tokens", 2}, {"echo", true}, {"temperature", 0}};
    auto r = call("POST", "/v1/completions", owner_key_, body);
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string seen = r.json()["choices"][0]["text"]; // echo: the prompt as the engine decoded it
    EXPECT_EQ(seen.find(kKey), std::string::npos) << seen;
    EXPECT_NE(seen.find("aws_access_key_id='" + kPlaceholder + "')"), std::string::npos) << seen;
    EXPECT_NE(seen.find("again: " + kPlaceholder), std::string::npos)
        << "one value, one placeholder: " << seen;
    // The same file gives the same redacted text: the prefix cache serves it again.
    auto again = call("POST", "/v1/completions", owner_key_, body);
    ASSERT_EQ(again.status, 200);
    EXPECT_GT(again.json()["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0) << again.body;
    // The audit names the rule, not the value; the metrics count it by rule and action.
    auto rec = audit_record(r);
    ASSERT_FALSE(rec.is_null());
    EXPECT_EQ(rec["guard"], json::array({"aws_access_key_id", "aws_access_key_id"}));
    EXPECT_EQ(rec.dump().find(kKey), std::string::npos);
    auto metrics = call("GET", "/metrics", owner_key_).body;
    EXPECT_NE(metrics.find("codepilot_guard_findings_total{rule=\"aws_access_key_id\",action=\"redact\"}"),
              std::string::npos)
        << metrics.substr(0, 2000);
    EXPECT_EQ(metrics.find(kKey), std::string::npos);
}

TEST_F(GuardApi, ChatMessagesReachTheModelWithThePlaceholder) {
    auto chat = [&](const std::string& content) {
        return call(
            "POST", "/v1/chat/completions", owner_key_,
            {{"messages", json::array({{{"role", "user"}, {"content", content}}})}, {"max_tokens", 1}});
    };
    const std::string text = "Why does this fail?\nexport GITHUB_TOKEN=ghp_" +
                             std::string("Zr7Qk2Lm9Vx4Tb8Nc1Hd6Js3Fw5Pg0Ya2Ue7") + "\n";
    auto secret = chat(text);
    ASSERT_EQ(secret.status, 200) << secret.body;
    auto rec = audit_record(secret);
    ASSERT_FALSE(rec.is_null());
    ASSERT_EQ(rec["guard"].size(), 1u) << rec.dump();
    const std::string rule = rec["guard"][0];
    std::string as_redacted = text;
    const auto at = as_redacted.find("ghp_");
    as_redacted.replace(at, as_redacted.find('\n', at) - at, "<SECRET:" + rule + ">");
    auto placeholder = chat(as_redacted);
    ASSERT_EQ(placeholder.status, 200);
    // The engine counted the placeholder's tokens, not the token's 40 random characters.
    EXPECT_EQ(secret.json()["usage"]["prompt_tokens"], placeholder.json()["usage"]["prompt_tokens"]);
}

TEST_F(GuardApi, TabbySegmentsSnippetsAndTheirPathsAreRedactedBeforeThePromptIsBuilt) {
    json body = {{"language", "python"},
                 {"segments",
                  {{"prefix", "KEY = '" + kKey + "'\nclient = connect(KEY"},
                   {"suffix", ")\n"},
                   {"filepath", "src/app.py"},
                   {"clipboard", "postgresql://app:S3cr3tPassw0rd2024@db.internal:5432/prod"},
                   {"declarations", json::array({{{"filepath", "keys/" + kKey + ".txt"},
                                                  {"body", "def connect(key): ...\n"}}})}}},
                 {"debug_options", {{"return_prompt", true}}}};
    auto r = call("POST", "/v1/completions", owner_key_, body);
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string prompt = r.json()["debug_data"]["prompt"];
    EXPECT_EQ(prompt.find(kKey), std::string::npos) << prompt;
    EXPECT_EQ(prompt.find("S3cr3tPassw0rd2024"), std::string::npos) << prompt;
    EXPECT_NE(prompt.find("KEY = '" + kPlaceholder + "'"), std::string::npos) << prompt;
}

TEST_F(GuardApi, LlamaInfillPrefixSuffixAndInputExtraAreRedacted) {
    auto infill = [&](const std::string& secret) {
        return call(
            "POST", "/infill", owner_key_,
            {{"input_prefix", "token = '" + secret + "'\n"},
             {"input_suffix", "\n"},
             {"input_extra", json::array({{{"filename", "a.py"}, {"text", "X = '" + secret + "'\n"}}})},
             {"n_predict", 1}});
    };
    auto with_key = infill(kKey);
    ASSERT_EQ(with_key.status, 200) << with_key.body;
    auto with_placeholder = infill(kPlaceholder);
    ASSERT_EQ(with_placeholder.status, 200) << with_placeholder.body;
    EXPECT_EQ(with_key.json()["tokens_evaluated"], with_placeholder.json()["tokens_evaluated"]);
    EXPECT_EQ(audit_record(with_key)["guard"].size(), 2u);
}

TEST_F(GuardApi, BlockRefusesNamingRuleFieldAndLineAndLogOnlyCounts) {
    const auto strict = developer_key("strict");
    json body = {{"messages", json::array({{{"role", "system"}, {"content", "be brief"}},
                                           {{"role", "user"}, {"content", "line one\nkey " + kKey + "\n"}}})},
                 {"max_tokens", 1}};
    auto refused = call("POST", "/v1/chat/completions", strict, body);
    ASSERT_EQ(refused.status, 400) << refused.body;
    const std::string message = refused.json()["error"]["message"];
    EXPECT_NE(message.find("'messages[1].content' holds a secret (rule aws_access_key_id) on line 2"),
              std::string::npos)
        << message;
    EXPECT_EQ(refused.json()["error"]["param"], "messages[1].content");
    EXPECT_EQ(refused.body.find(kKey), std::string::npos);
    auto rec = audit_record(refused);
    EXPECT_EQ(rec["status"], 400);
    EXPECT_EQ(rec["guard"], json::array({"aws_access_key_id"}));

    const auto counting = developer_key("counting");
    auto passed = call("POST", "/v1/completions", counting,
                       {{"prompt", "k = '" + kKey + "'\n"}, {"max_tokens", 1}, {"echo", true}});
    ASSERT_EQ(passed.status, 200) << passed.body;
    EXPECT_NE(passed.json()["choices"][0]["text"].get<std::string>().find(kKey), std::string::npos)
        << "log changes nothing";
    EXPECT_EQ(audit_record(passed)["guard"], json::array({"aws_access_key_id"}));
    auto metrics = call("GET", "/metrics", owner_key_).body;
    EXPECT_NE(metrics.find("codepilot_guard_findings_total{rule=\"aws_access_key_id\",action=\"log\"}"),
              std::string::npos);
    EXPECT_NE(metrics.find("codepilot_guard_findings_total{rule=\"aws_access_key_id\",action=\"block\"}"),
              std::string::npos);
}

TEST_F(GuardApi, InvalidUtf8AroundASecretAndANonJsonBodyAreHandled) {
    // Non-ASCII text right against the secret hides nothing.
    auto r = call("POST", "/v1/completions", owner_key_,
                  {{"prompt", "\xc3\xa9 k=" + kKey + " \xc3\xa9"}, {"max_tokens", 1}, {"echo", true}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body.find(kKey), std::string::npos);
    auto bad = http(port(), "POST", "/v1/completions", "{not json " + kKey,
                    {{"Authorization", "Bearer " + owner_key_}, {"Content-Type", "application/json"}});
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(bad.body.find(kKey), std::string::npos) << bad.body;
}

} // namespace
} // namespace codepilot::testenv

namespace codepilot::testenv {

TEST(GuardConfig, ACustomRulesFileReplacesTheBuiltInRulesAndABadOneStopsTheStart) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("cp-guard-rules-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto good = (dir / "rules.toml").string();
    std::ofstream(good) << "[[rule]]\nid = \"acme_deploy_token\"\nregex = '''\\b(acme_[a-z0-9]{12})\\b'''\n"
                           "secret_group = 1\nkeywords = [\"acme_\"]\n";
    auto c = test_config();
    c.guard.rules_file = good;
    {
        TestServer server(c);
        auto r = post_json(server.port(), "/v1/completions",
                           {{"prompt", "t = acme_0123456789ab and " + std::string("AKIAQYLPMN5HHHFPZAM2")},
                            {"max_tokens", 1},
                            {"echo", true}});
        ASSERT_EQ(r.status, 200) << r.body;
        const std::string seen = r.json()["choices"][0]["text"];
        EXPECT_NE(seen.find("<SECRET:acme_deploy_token>"), std::string::npos) << seen;
        EXPECT_NE(seen.find("AKIAQYLPMN5HHHFPZAM2"), std::string::npos) << "the built-in rules were replaced";
    }
    c.guard.rules_file = good;
    c.guard.policy.deny = {"(a)\\1"};
    auto refused_deny = app::Application::create(c);
    ASSERT_FALSE(refused_deny);
    EXPECT_NE(refused_deny.error().message.find("rule 'deny_1'"), std::string::npos)
        << refused_deny.error().message;
    c.guard.policy.deny.clear();
    const auto bad = (dir / "bad.toml").string();
    std::ofstream(bad) << "[[rule]]\nid = \"greedy\"\nregex = '.*'\n";
    c.guard.rules_file = bad;
    auto app = app::Application::create(c);
    ASSERT_FALSE(app);
    EXPECT_NE(app.error().message.find("guard.rules_file"), std::string::npos) << app.error().message;
    EXPECT_NE(app.error().message.find("rule 'greedy'"), std::string::npos) << app.error().message;
    std::filesystem::remove_all(dir);
}

} // namespace codepilot::testenv
