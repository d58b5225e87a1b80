// Quotas and usage over HTTP: 429 with Retry-After and x-ratelimit headers, one tenant's
// limit never touching another's, the admin API's validation, changes applied within a
// second (also from the CLI), usage reports as JSON and CSV.
#include "support/auth_fixture.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

class QuotaApi : public AuthServerTest {
protected:
    HttpResponse complete(const std::string& key) {
        return call("POST", "/v1/completions", key, {{"prompt", "x"}, {"max_tokens", 2}});
    }
};

TEST_F(QuotaApi, OverTheLimitIs429WithRetryAfterAndRateLimitHeaders) {
    member("acme", "dev", "developer");
    member("globex", "gus", "developer");
    std::string acme_key = key("acme", "dev"), globex_key = key("globex", "gus");
    auto set = call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_, {{"rpm", 2}});
    ASSERT_EQ(set.status, 200) << set.body;
    auto first = complete(acme_key);
    ASSERT_EQ(first.status, 200) << first.body;
    EXPECT_EQ(first.header("x-ratelimit-limit-requests"), "2");
    EXPECT_EQ(first.header("x-ratelimit-remaining-requests"), "1");
    EXPECT_EQ(complete(acme_key).status, 200);
    auto refused = complete(acme_key);
    EXPECT_EQ(refused.status, 429);
    // 30 s for one request at 2/min, less whatever refilled while the calls ran (a loaded CI
    // machine can take seconds); the exact arithmetic is pinned with a fake clock in quota_ledger_test.
    ASSERT_FALSE(refused.header("retry-after").empty());
    EXPECT_GE(std::stoi(refused.header("retry-after")), 1);
    EXPECT_LE(std::stoi(refused.header("retry-after")), 30);
    EXPECT_EQ(refused.header("x-ratelimit-remaining-requests"), "0");
    EXPECT_EQ(refused.json()["error"]["type"], "rate_limit_error");
    EXPECT_EQ(refused.json()["error"]["message"], "tenant 'acme' is over its 2 requests per minute");
    EXPECT_EQ(complete(globex_key).status, 200);                // another tenant is unaffected
    EXPECT_EQ(call("GET", "/v1/models", acme_key).status, 200); // only inference is limited
    auto metrics = http(port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find(R"(codepilot_quota_rejections_total{kind="requests"} 1)"), std::string::npos);
}

TEST_F(QuotaApi, BadQuotaValuesAre400AndOtherTenantsSubjectsAre404) {
    member("acme", "dev", "developer");
    member("globex", "gus", "developer");
    std::string globex_key = key("globex", "gus");
    for (const json& body :
         {json{{"rpm", -1}}, json{{"rpm", 0}}, json{{"tpm", 1e18}}, json{{"daily_tokens", "lots"}},
          json{{"concurrency", 2.5}}, json{{"burst", 3}}, json{{"user", "dev"}, {"key", "x"}}}) {
        auto r = call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_, body);
        EXPECT_EQ(r.status, 400) << body.dump() << " " << r.body;
    }
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_, {{"user", "gus"}, {"rpm", 5}}).status,
              404);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_,
                   {{"key", globex_key.substr(0, 12)}, {"rpm", 5}})
                  .status,
              404);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/quotas", key("acme", "dev"), {{"rpm", 5}}).status, 403);
    ASSERT_EQ(call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_,
                   {{"user", "dev"}, {"tpm", 500}, {"concurrency", 2}})
                  .status,
              200);
    ASSERT_EQ(
        call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_, {{"user", "dev"}, {"concurrency", nullptr}})
            .status,
        200);
    auto listed = call("GET", "/admin/v1/tenants/acme/quotas", owner_key_).json()["data"];
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["user"], "dev");
    EXPECT_EQ(listed[0]["tpm"], 500);
    EXPECT_TRUE(listed[0]["concurrency"].is_null()); // null removed it, tpm was kept
}

TEST_F(QuotaApi, UsageIsReportedByUserModelAndDayAsJsonAndCsv) {
    member("acme", "dev", "developer");
    member("acme", "audrey", "auditor");
    std::string k = key("acme", "dev");
    auto a = complete(k), b = complete(k);
    ASSERT_EQ(a.status, 200);
    int64_t prompt =
        a.json()["usage"]["prompt_tokens"].get<int64_t>() + b.json()["usage"]["prompt_tokens"].get<int64_t>();
    auto report = call("GET", "/admin/v1/usage?tenant=acme&group_by=user", key("acme", "audrey"));
    ASSERT_EQ(report.status, 200) << report.body;
    auto data = report.json()["data"];
    ASSERT_EQ(data.size(), 1u);
    EXPECT_EQ(data[0]["user"], "dev");
    EXPECT_EQ(data[0]["requests"], 2);
    EXPECT_EQ(data[0]["prompt_tokens"], prompt);
    auto csv = call("GET", "/admin/v1/usage?tenant=acme&group_by=model&format=csv", owner_key_);
    ASSERT_EQ(csv.status, 200);
    EXPECT_EQ(csv.header("content-type"), "text/csv; charset=utf-8");
    EXPECT_EQ(csv.body.rfind("model,requests,prompt_tokens,completion_tokens,cached_tokens\ntiny,2,", 0), 0u)
        << csv.body;
    EXPECT_EQ(call("GET", "/admin/v1/usage?tenant=acme", k).status, 403); // developers do not read usage
    EXPECT_EQ(call("GET", "/admin/v1/usage?tenant=globex", key("acme", "audrey")).status, 404);
    EXPECT_EQ(call("GET", "/admin/v1/usage?tenant=acme&from=yesterday", owner_key_).status, 400);
    EXPECT_EQ(call("GET", "/admin/v1/usage?tenant=acme&from=2026-11-20&to=2026-11-01", owner_key_).status,
              400);
    EXPECT_EQ(call("GET", "/admin/v1/usage?tenant=acme&group_by=color", owner_key_).status, 400);
    auto no_tenant = call("GET", "/admin/v1/usage", owner_key_);
    EXPECT_EQ(no_tenant.status, 400);
    EXPECT_EQ(no_tenant.json()["error"]["param"], "tenant");
}

TEST_F(QuotaApi, AcceptanceEventsRollUpPerLanguageModelAndUser) {
    member("acme", "dev", "developer");
    std::string k = key("acme", "dev");
    std::vector<std::string> ids;
    for (const char* path : {"a.py", "b.py", "c.go"}) {
        auto r = call("POST", "/v1/completions", k,
                      {{"language", std::string(path).ends_with(".go") ? "go" : "python"},
                       {"segments", {{"prefix", "def f():\n    "}, {"suffix", ""}, {"filepath", path}}}});
        ASSERT_EQ(r.status, 200) << r.body;
        ids.push_back(r.json()["id"]);
    }
    auto event = [&](const std::string& type, const std::string& id, const std::string& query = "") {
        return call("POST", "/v1/events" + query, k, {{"type", type}, {"completion_id", id}, {"choice_index", 0}}).status;
    };
    for (const auto& id : ids) ASSERT_EQ(event("view", id), 200);
    ASSERT_EQ(event("select", ids[0]), 200);
    ASSERT_EQ(event("select", ids[2], "?select_kind=line"), 200);
    ASSERT_EQ(event("dismiss", ids[1]), 200);
    auto report = call("GET", "/admin/v1/usage/events?tenant=acme&group_by=language", owner_key_);
    ASSERT_EQ(report.status, 200) << report.body;
    auto data = report.json()["data"];
    ASSERT_EQ(data.size(), 2u);
    EXPECT_EQ(data[0]["language"], "go");
    EXPECT_EQ(data[0]["line_selects"], 1);
    EXPECT_EQ(data[0]["acceptance_rate"], 1.0);
    EXPECT_EQ(data[1]["language"], "python");
    EXPECT_EQ(data[1]["views"], 2);
    EXPECT_EQ(data[1]["selects"], 1);
    EXPECT_EQ(data[1]["dismisses"], 1);
    EXPECT_EQ(data[1]["acceptance_rate"], 0.5);
    auto by_user = call("GET", "/admin/v1/usage/events?tenant=acme&group_by=user&format=csv", owner_key_);
    EXPECT_EQ(by_user.body, "user,views,selects,line_selects,dismisses,acceptance_rate\ndev,3,1,1,1,0.666667\n");
    EXPECT_EQ(call("GET", "/admin/v1/usage/events?tenant=acme", k).status, 403);
}

TEST_F(QuotaApi, ALimitSetWithTheCliAppliesWithinASecond) {
    member("acme", "dev", "developer");
    std::string k = key("acme", "dev");
    ASSERT_EQ(complete(k).status, 200);
    std::string command = std::string(CODEPILOT_BINARY) +
                          " quota set --tenant acme --user dev --concurrency 1 --rpm 1 --data-dir " +
                          data_dir_.string() + " > /dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    EXPECT_EQ(complete(k).status, 200); // the fresh bucket's one request
    EXPECT_EQ(complete(k).status, 429);
    auto bad = std::system((std::string(CODEPILOT_BINARY) + " quota set --tenant acme --rpm -3 --data-dir " +
                            data_dir_.string() + " > /dev/null 2>&1")
                               .c_str());
    EXPECT_EQ(WEXITSTATUS(bad), 2);
}

} // namespace
} // namespace codepilot::testenv
