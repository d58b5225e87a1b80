// /metrics as Prometheus' own linter reads it, and the shipped alerting rules.
#include "support/auth_fixture.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace codepilot::testenv {
namespace {

struct Run {
    int code = -1;
    std::string out;
};

Run run(const std::string& command) {
    Run r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

class Metrics : public AuthServerTest {};

TEST_F(Metrics, ExpositionPassesPromtoolWithEveryFamilyPresent) {
    member("acme", "dev", "developer");
    std::string k = key("acme", "dev");
    ASSERT_EQ(call("PUT", "/admin/v1/tenants/acme/quotas", owner_key_, {{"rpm", 1}}).status, 200);
    ASSERT_EQ(call("POST", "/v1/completions", k, {{"prompt", "def f():"}, {"max_tokens", 4}}).status, 200);
    EXPECT_EQ(call("POST", "/v1/completions", k, {{"prompt", "x"}, {"max_tokens", 1}}).status, 429);
    EXPECT_EQ(http(port(), "GET", "/v1/models").status, 401);
    auto text = http(port(), "GET", "/metrics").body;
    auto file = data_dir_ / "metrics.txt";
    std::ofstream(file) << text;
    auto checked = run("promtool check metrics < " + file.string());
    EXPECT_EQ(checked.code, 0) << checked.out;
    EXPECT_EQ(checked.out, "") << checked.out; // no lint findings either
    for (const char* family :
         {"codepilot_http_requests_total{route=\"/v1/completions\",method=\"POST\",status=\"200\"} 1",
          "codepilot_http_requests_total{route=\"/v1/completions\",method=\"POST\",status=\"429\"} 1",
          "codepilot_http_requests_total{route=\"/v1/models\",method=\"GET\",status=\"401\"} 1",
          "codepilot_http_request_duration_seconds_bucket",
          "codepilot_time_to_first_token_seconds_bucket{model=\"tiny\",le=",
          "codepilot_inter_token_latency_seconds_count{model=\"tiny\"} 1", "codepilot_queue_time_seconds_sum",
          "codepilot_prompt_tokens_total{model=\"tiny\"}",
          "codepilot_completion_tokens_total{model=\"tiny\"} 4", "codepilot_cached_prompt_tokens_total",
          "codepilot_requests_running", "codepilot_requests_queued", "codepilot_kv_cache_used_ratio",
          "codepilot_prompt_tokens_cached_ratio", "codepilot_quota_rejections_total{kind=\"requests\"} 1",
          "codepilot_audit_queue_depth", "codepilot_audit_write_seconds_bucket",
          "codepilot_auth_attempts_total"})
        EXPECT_NE(text.find(family), std::string::npos) << family;
    EXPECT_EQ(text.find("acme"), std::string::npos); // never a tenant or user label
    EXPECT_EQ(text.find("dev\""), std::string::npos);
}

TEST(AlertRules, PromtoolAcceptsTheShippedRules) {
    auto checked =
        run(std::string("promtool check rules ") + CODEPILOT_SOURCE_DIR + "/deploy/prometheus/alerts.yml");
    EXPECT_EQ(checked.code, 0) << checked.out;
    EXPECT_NE(checked.out.find("SUCCESS: 6 rules found"), std::string::npos) << checked.out;
}

} // namespace
} // namespace codepilot::testenv
