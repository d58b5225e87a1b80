// A tenant's own guard policy and rules through the admin API, end to end: set by the tenant's
// admin, in force on the next request for that tenant only (asserted on what the engine
// received), refused with the rule's name when it cannot work, audited, readable by auditors,
// removable; a policy written to the store by another replica or the CLI applies within the
// poll; one that no longer compiles is reported and does not weaken the configured policy.
#include "store/guard_store.h"
#include "support/auth_fixture.h"

#include <chrono>
#include <gtest/gtest.h>
#include <thread>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

const std::string kAcmeToken = "acme_0123456789abcdefghijklmn"; // acme_ and 24 of [a-z0-9]
const json kAcmeRule = {{"id", "acme_token"},
                        {"description", "Acme's internal API tokens"},
                        {"regex", "acme_[a-z0-9]{24}"},
                        {"keywords", {"acme_"}}};

class GuardAdmin : public AuthServerTest {
protected:
    void configure(config::Config& c) override { c.audit.durability = "sync"; }

    void SetUp() override {
        AuthServerTest::SetUp();
        member("acme", "acme-admin", "admin");
        member("acme", "acme-dev", "developer");
        member("acme", "acme-auditor", "auditor");
        member("other", "other-dev", "developer");
        admin_ = key("acme", "acme-admin");
        dev_ = key("acme", "acme-dev", "completion,chat");
        auditor_ = key("acme", "acme-auditor", "admin");
        other_ = key("other", "other-dev", "completion,chat");
    }

    // What the engine saw of `prompt` (echo).
    HttpResponse complete(const std::string& token, const std::string& prompt) {
        return call("POST", "/v1/completions", token,
                    {{"prompt", prompt}, {"max_tokens", 1}, {"echo", true}, {"temperature", 0}});
    }
    static std::string seen(const HttpResponse& r) { return r.json()["choices"][0]["text"]; }

    std::vector<json> admin_records(const std::string& action) {
        std::vector<json> out;
        auto rows = app().identities().database().query("SELECT body FROM audit_log ORDER BY seq");
        EXPECT_TRUE(rows);
        for (const auto& row : *rows) {
            auto body = json::parse(row.text(0));
            if (body["kind"] == "admin" && body["action"] == action) out.push_back(body);
        }
        return out;
    }

    std::string admin_, dev_, auditor_, other_;
};

TEST_F(GuardAdmin, ATenantsOwnRuleAndPolicyApplyAtOnceToThatTenantOnly) {
    const std::string prompt = "import acme\nclient = acme.Client('" + kAcmeToken + "')\n";
    // Before: no rule knows Acme's tokens.
    auto before = complete(dev_, prompt);
    ASSERT_EQ(before.status, 200) << before.body;
    EXPECT_NE(seen(before).find(kAcmeToken), std::string::npos);

    auto put =
        call("PUT", "/admin/v1/tenants/acme/guard", admin_, {{"prompts", "block"}, {"rules", {kAcmeRule}}});
    ASSERT_EQ(put.status, 200) << put.body;
    EXPECT_EQ(put.json()["effective"]["prompts"], "block");
    EXPECT_EQ(put.json()["effective"]["own_rules"], json::array({"acme_token"}));
    EXPECT_EQ(put.json()["stored"]["updated_by"], "acme-admin");

    auto blocked = complete(dev_, prompt);
    EXPECT_EQ(blocked.status, 400) << blocked.body;
    const std::string message = blocked.json()["error"]["message"];
    EXPECT_NE(message.find("rule acme_token"), std::string::npos) << message;
    EXPECT_NE(message.find("line 2"), std::string::npos) << message;
    EXPECT_EQ(blocked.body.find(kAcmeToken), std::string::npos) << "never echoes the secret";

    // Another tenant keeps the configured policy: its own rules are its own.
    auto other = complete(other_, prompt);
    ASSERT_EQ(other.status, 200) << other.body;
    EXPECT_NE(seen(other).find(kAcmeToken), std::string::npos);

    // Redact instead: the model sees the typed placeholder.
    put =
        call("PUT", "/admin/v1/tenants/acme/guard", admin_, {{"prompts", "redact"}, {"rules", {kAcmeRule}}});
    ASSERT_EQ(put.status, 200) << put.body;
    auto redacted = complete(dev_, prompt);
    ASSERT_EQ(redacted.status, 200) << redacted.body;
    EXPECT_EQ(seen(redacted).find(kAcmeToken), std::string::npos) << seen(redacted);
    EXPECT_NE(seen(redacted).find("acme.Client('<SECRET:acme_token>')"), std::string::npos) << seen(redacted);

    // Both changes are in the audit trail, with the policy before and after.
    auto records = admin_records("guard.set");
    ASSERT_EQ(records.size(), 2u);
    EXPECT_TRUE(records[0]["before"].is_null());
    EXPECT_EQ(records[0]["after"]["prompts"], "block");
    EXPECT_EQ(records[1]["before"]["prompts"], "block");
    EXPECT_EQ(records[1]["after"]["rules"][0]["id"], "acme_token");
    EXPECT_EQ(records[1]["user"], "acme-admin");

    // Removed: the configured policy (redact, server rules only) is back.
    auto removed = call("DELETE", "/admin/v1/tenants/acme/guard", admin_);
    ASSERT_EQ(removed.status, 200) << removed.body;
    EXPECT_TRUE(removed.json()["stored"].is_null());
    EXPECT_EQ(removed.json()["effective"]["own_rules"], json::array());
    auto after = complete(dev_, prompt);
    ASSERT_EQ(after.status, 200);
    EXPECT_NE(seen(after).find(kAcmeToken), std::string::npos);
    ASSERT_EQ(admin_records("guard.clear").size(), 1u);
    EXPECT_EQ(call("DELETE", "/admin/v1/tenants/acme/guard", admin_).status, 404);
}

TEST_F(GuardAdmin, RulesThatCannotWorkAreRefusedWithTheirNameAndNothingIsStored) {
    auto refused = [&](const json& policy, const std::string& expected) {
        auto r = call("PUT", "/admin/v1/tenants/acme/guard", admin_, policy);
        EXPECT_EQ(r.status, 400) << policy.dump() << " -> " << r.body;
        const std::string message = r.json()["error"]["message"];
        EXPECT_NE(message.find(expected), std::string::npos) << policy.dump() << " -> " << message;
    };
    auto rule = [](const std::string& id, const std::string& regex) {
        return json{{"rules", {{{"id", id}, {"regex", regex}, {"keywords", {"x"}}}}}};
    };
    refused(rule("backref", "(a)\\1"), "rule 'backref': the regex does not compile");
    refused(rule("lookahead", "foo(?=bar)"), "rule 'lookahead': the regex does not compile");
    refused(rule("everything", "x*"), "rule 'everything': the regex matches the empty string");
    refused(rule("aws_access_key_id", "AKIA[0-9A-Z]{16}"), "the id is one of the server's rules");
    refused({{"rules", {kAcmeRule, kAcmeRule}}}, "rule 'acme_token': the id is used twice");
    refused({{"rules", {{{"id", "x"}, {"regex", "abc"}, {"colour", "red"}}}}}, "unknown key 'colour'");
    refused({{"rules", {{{"regex", "abc"}}}}}, "'id' is required");
    refused({{"deny", {"(a)\\1"}}}, "deny_1");
    refused({{"deny", {""}}}, "'deny' must be an array of non-empty strings");
    refused({{"prompts", "shred"}}, "'prompts' must be redact, block, log or off");
    refused({{"output", true}}, "'output' must be mask, end, log or off");
    refused({{"colour", "red"}}, "'colour' is not a guard policy field");
    refused(json::object(), "the policy sets nothing");
    refused({{"allow", {"(unclosed"}}}, "does not compile");
    auto get = call("GET", "/admin/v1/tenants/acme/guard", admin_);
    ASSERT_EQ(get.status, 200);
    EXPECT_TRUE(get.json()["stored"].is_null()) << get.body;
    EXPECT_TRUE(admin_records("guard.set").empty());
}

// RE2 has no backtracking: a pattern that is catastrophic for a backtracking engine is accepted
// and costs linear time (a backtracking engine would try 2^n ways through 100 KB of 'a's).
TEST_F(GuardAdmin, ACatastrophicBacktrackingPatternIsSafe) {
    const json policy = {{"prompts", "block"},
                         {"rules", {{{"id", "nested"}, {"regex", "(a+)+b"}, {"keywords", {"aaa"}}}}}};
    auto put = call("PUT", "/admin/v1/tenants/acme/guard", admin_, policy);
    ASSERT_EQ(put.status, 200) << put.body;
    auto clean =
        call("POST", "/admin/v1/tenants/acme/guard/scan", admin_, {{"text", std::string(100000, 'a') + "!"}});
    ASSERT_EQ(clean.status, 200) << clean.body.substr(0, 300);
    EXPECT_EQ(clean.json()["findings"], json::array());
    auto found =
        call("POST", "/admin/v1/tenants/acme/guard/scan", admin_, {{"text", std::string(5000, 'a') + "b"}});
    ASSERT_EQ(found.status, 200) << found.body;
    EXPECT_EQ(found.json()["findings"][0]["rule"], "nested");
}

TEST_F(GuardAdmin, ScanDryRunsAProposedPolicyAndNamesNoValues) {
    const std::string text = "ok\nkey = '" + kAcmeToken + "'\nProject Bluebird ships in May\n";
    auto r = call("POST", "/admin/v1/tenants/acme/guard/scan", admin_,
                  {{"text", text}, {"policy", {{"rules", {kAcmeRule}}, {"deny", {"project\\s+bluebird"}}}}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["findings"],
              json::array({{{"rule", "acme_token"}, {"line", 2}, {"start", 10}, {"end", 39}}}));
    const json output = r.json()["output_findings"];
    ASSERT_EQ(output.size(), 2u) << r.body;
    EXPECT_EQ(output[1]["rule"], "deny_1");
    EXPECT_EQ(output[1]["line"], 3);
    EXPECT_EQ(r.body.find(kAcmeToken), std::string::npos);
    // Nothing was stored by the dry run; without a proposal the policy in force is used.
    auto plain = call("POST", "/admin/v1/tenants/acme/guard/scan", admin_, {{"text", text}});
    ASSERT_EQ(plain.status, 200);
    EXPECT_EQ(plain.json()["findings"], json::array());
    EXPECT_EQ(call("POST", "/admin/v1/tenants/acme/guard/scan", admin_, {{"txt", text}}).status, 400);
}

TEST_F(GuardAdmin, AuditorsReadThePolicyDevelopersCannotSetIt) {
    ASSERT_EQ(call("PUT", "/admin/v1/tenants/acme/guard", admin_, {{"pii", true}}).status, 200);
    auto read = call("GET", "/admin/v1/tenants/acme/guard", auditor_);
    ASSERT_EQ(read.status, 200) << read.body;
    EXPECT_EQ(read.json()["stored"]["policy"], json({{"pii", true}}));
    EXPECT_EQ(read.json()["effective"]["pii"], true);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/guard", dev_, {{"prompts", "off"}}).status, 403);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/guard", auditor_, {{"prompts", "off"}}).status, 403);
    EXPECT_EQ(call("GET", "/admin/v1/tenants/acme/guard", dev_).status, 403);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/other/guard", admin_, {{"prompts", "off"}}).status, 404);
}

// Another replica (or `codepilot guard policy set`) writes the store; this server polls it.
TEST_F(GuardAdmin, APolicyWrittenToTheStoreElsewhereAppliesWithinThePoll) {
    const std::string prompt = "token = '" + kAcmeToken + "'\n";
    store::GuardStore guard_store(app().identities().database());
    store::GuardPolicyRow row{tenant("acme").id, "acme",
                              json{{"prompts", "block"}, {"rules", {kAcmeRule}}}.dump(), 0, "cli"};
    ASSERT_TRUE(guard_store.set_policy(row));
    int status = 0;
    for (int i = 0; i < 50 && status != 400; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        status = complete(dev_, prompt).status;
    }
    EXPECT_EQ(status, 400) << "the stored policy was not applied within 5 s";

    // A stored policy that does not compile (written by hand, or the server's rules changed
    // under it) is reported; the last good one stays in force, never a weaker one.
    row.spec = json{{"prompts", "off"}, {"rules", {{{"id", "bad"}, {"regex", "(a)\\1"}}}}}.dump();
    ASSERT_TRUE(guard_store.set_policy(row));
    std::string error;
    for (int i = 0; i < 50 && error.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        auto get = call("GET", "/admin/v1/tenants/acme/guard", admin_);
        if (get.json().contains("error")) error = get.json()["error"];
    }
    EXPECT_NE(error.find("rule 'bad'"), std::string::npos) << error;
    const std::string metrics = call("GET", "/metrics", admin_).body;
    EXPECT_NE(metrics.find("codepilot_guard_policy_errors 1"), std::string::npos) << metrics.substr(0, 3000);
    EXPECT_EQ(complete(dev_, prompt).status, 400) << "the last good policy stays in force";
}

} // namespace
} // namespace codepilot::testenv
