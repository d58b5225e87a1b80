// IDE-client endpoints against the real server: Tabby, llama.cpp /infill, Copilot-proxy, the
// seed call, acceptance events and metrics; bad input; supersession.
#include "support/http_client.h"
#include "support/test_env.h"

#include <algorithm>
#include <future>
#include <gtest/gtest.h>
#include <thread>

using namespace codepilot::testenv;
using json = nlohmann::json;

class CodeCompletionApi : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto c = test_config();
        c.completion.max_tokens = 24;
        server_ = new TestServer(c);
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    int port() const { return server_->port(); }
    static json tabby_body(const std::string& prefix, const std::string& suffix = "\n") {
        return {{"language", "python"},
                {"segments", {{"prefix", prefix}, {"suffix", suffix}, {"filepath", "src/app.py"}}}};
    }
    static TestServer* server_;
};
TestServer* CodeCompletionApi::server_ = nullptr;

TEST_F(CodeCompletionApi, TabbyCompletionShape) {
    auto r = post_json(port(), "/v1/completions", tabby_body("def add(a, b):\n    return a +"));
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    std::string id = j["id"];
    EXPECT_EQ(id.rfind("cmpl-", 0), 0u);
    EXPECT_EQ(id.size(), 5u + 36u); // cmpl-<uuid>
    ASSERT_EQ(j["choices"].size(), 1u);
    EXPECT_EQ(j["choices"][0]["index"], 0);
    std::string text = j["choices"][0]["text"];
    EXPECT_EQ(text.find('\n'), std::string::npos); // mid-line: the line is finished, nothing more
    EXPECT_FALSE(j.contains("debug_data"));
}

TEST_F(CodeCompletionApi, TabbyDebugDataShowsPromptAndSnippets) {
    json body = tabby_body("import os\n", "");
    body["segments"]["declarations"] =
        json::array({{{"filepath", "src/util.py"}, {"body", "def helper():\n    return 1\n"}}});
    body["segments"]["relevant_snippets_from_changed_files"] =
        json::array({{{"filepath", "src/low.py"}, {"body", "LOW = 1\n"}, {"score", 0.1}},
                     {{"filepath", "src/high.py"}, {"body", "HIGH = 2\n"}, {"score", 0.9}}});
    body["debug_options"] = {{"return_prompt", true}, {"return_snippets", true}};
    auto j = post_json(port(), "/v1/completions", body).json();
    std::string prompt = j["debug_data"]["prompt"];
    // StarCoder's repo-level layout, the current file last, then FIM.
    EXPECT_EQ(prompt.rfind("<repo_name>repo\n<file_sep>src/util.py\ndef helper():", 0), 0u) << prompt;
    EXPECT_LT(prompt.find("src/high.py"), prompt.find("src/low.py")); // higher score first
    // (The prefix starts with a newline: stable windows, docs/completion.md.)
    EXPECT_NE(prompt.find("<file_sep>src/app.py\n<fim_prefix>\nimport os\n<fim_suffix><fim_middle>"),
              std::string::npos)
        << prompt;
    auto& snippets = j["debug_data"]["snippets"];
    ASSERT_EQ(snippets.size(), 3u);
    EXPECT_EQ(snippets[0]["filepath"], "src/util.py");
    EXPECT_EQ(snippets[0]["body"], "def helper():\n    return 1\n");
}

TEST_F(CodeCompletionApi, CrlfInCrlfOut) {
    json body = tabby_body("def f():\r\n    x = 1\r\n    ", "\r\n");
    body["debug_options"] = {{"return_prompt", true}};
    auto j = post_json(port(), "/v1/completions", body).json();
    std::string prompt = j["debug_data"]["prompt"];
    EXPECT_EQ(prompt.find('\r'), std::string::npos); // the model sees LF
    std::string text = j["choices"][0]["text"];
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n') {
            EXPECT_TRUE(i > 0 && text[i - 1] == '\r') << "bare LF in " << text;
        }
    }
}

TEST_F(CodeCompletionApi, EventsFeedAcceptanceMetrics) {
    auto j = post_json(port(), "/v1/completions", tabby_body("total = ")).json();
    std::string id = j["id"];
    EXPECT_EQ(post_json(port(), "/v1/events",
                        {{"type", "view"},
                         {"completion_id", id},
                         {"choice_index", 0},
                         {"view_id", "v1"},
                         {"elapsed", 10}})
                  .status,
              200);
    EXPECT_EQ(
        post_json(port(), "/v1/events", {{"type", "select"}, {"completion_id", id}, {"choice_index", 0}})
            .status,
        200);
    EXPECT_EQ(post_json(port(), "/v1/events?select_kind=line",
                        {{"type", "select"}, {"completion_id", id}, {"choice_index", 0}})
                  .status,
              200);
    EXPECT_EQ(
        post_json(port(), "/v1/events", {{"type", "dismiss"}, {"completion_id", id}, {"choice_index", 0}})
            .status,
        200);
    auto metrics = http(port(), "GET", "/metrics").body;
    for (const char* type : {"view", "select", "select_line", "dismiss"}) {
        std::string series =
            std::string("codepilot_completion_events_total{model=\"tiny\",language=\"python\",type=\"") +
            type + "\"}";
        EXPECT_NE(metrics.find(series), std::string::npos) << series << "\n" << metrics;
    }
    EXPECT_NE(
        metrics.find("codepilot_completions_total{model=\"tiny\",language=\"python\",endpoint=\"tabby\"}"),
        std::string::npos);
    EXPECT_NE(metrics.find("codepilot_completion_duration_seconds_bucket"), std::string::npos);
    EXPECT_EQ(metrics.find("user"), std::string::npos);
}

TEST_F(CodeCompletionApi, BadEvents) {
    auto unknown_type = post_json(port(), "/v1/events", {{"type", "like"}, {"completion_id", "cmpl-x"}});
    EXPECT_EQ(unknown_type.status, 400);
    EXPECT_EQ(unknown_type.json()["error"]["param"], "type");
    auto unknown_id =
        post_json(port(), "/v1/events", {{"type", "view"}, {"completion_id", "cmpl-never-served"}});
    EXPECT_EQ(unknown_id.status, 404);
    EXPECT_EQ(unknown_id.json()["error"]["param"], "completion_id");
    EXPECT_EQ(post_json(port(), "/v1/events", {{"type", "view"}}).status, 400);
    EXPECT_EQ(post_json(port(), "/v1/events", {{"type", 3}, {"completion_id", "x"}}).status, 400);
}

TEST_F(CodeCompletionApi, HealthAndSettingsForTabbyExtensions) {
    for (const char* method : {"GET", "POST"}) {
        auto h = http(port(), method, "/v1/health");
        ASSERT_EQ(h.status, 200) << method;
        auto j = h.json();
        for (const char* key : {"model", "chat_model", "device", "arch", "cpu_info", "cpu_count", "version"})
            EXPECT_TRUE(j.contains(key)) << key;
        EXPECT_TRUE(j["version"].contains("git_sha"));
    }
    EXPECT_EQ(http(port(), "GET", "/v1beta/server_setting").json()["disable_client_side_telemetry"], false);
    auto models = http(port(), "GET", "/v1beta/models").json();
    EXPECT_EQ(models["completion"][0], "tiny");
}

TEST_F(CodeCompletionApi, InfillWithExtraContextWarmUpAndTimeBudget) {
    json body = {{"input_prefix", "int main() {\n"},
                 {"input_suffix", "}\n"},
                 {"input_extra", json::array({{{"filename", "util.h"}, {"text", "int util(void);\n"}}})},
                 {"prompt", "  return"},
                 {"n_predict", 0}};
    auto warm = post_json(port(), "/infill", body);
    ASSERT_EQ(warm.status, 200) << warm.body;
    EXPECT_EQ(warm.json()["content"], "");
    EXPECT_EQ(warm.json()["tokens_predicted"], 0);
    body["n_predict"] = 8;
    auto r = post_json(port(), "/infill", body).json();
    EXPECT_EQ(r["tokens_predicted"], 8);
    // The warm-up filled the cache: only the last prompt token is evaluated again.
    EXPECT_GE(r["tokens_cached"].get<int>(), r["tokens_evaluated"].get<int>() - 1);
    EXPECT_EQ(r["stop"], true);
    EXPECT_TRUE(r["timings"].is_object());
    body["n_predict"] = 200;
    body["t_max_predict_ms"] = 1;
    auto limited = post_json(port(), "/infill", body).json();
    EXPECT_LT(limited["tokens_predicted"].get<int>(), 200);
    EXPECT_EQ(limited["stop_type"], "limit");
}

TEST_F(CodeCompletionApi, CopilotProxyAndSeedCalls) {
    auto r = post_json(port(), "/v1/engines/codegen/completions",
                       {{"prompt", "def main():"}, {"max_tokens", 4}, {"temperature", 0}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()["object"], "text_completion");
    EXPECT_EQ(r.json()["usage"]["completion_tokens"].get<int>() <= 4, true);
    for (const char* path : {"/complete", "/v1/code/complete"}) {
        auto c = post_json(
            port(), path,
            {{"code", "fn main() {\n    let x = "}, {"filePath", "/src/main.rs"}, {"max_tokens", 8}});
        ASSERT_EQ(c.status, 200) << c.body;
        auto j = c.json();
        EXPECT_TRUE(j["completion"].is_string());
        EXPECT_EQ(j["model"], "tiny");
        EXPECT_GT(j["latency_ms"].get<double>(), 0.0);
    }
    auto metrics = http(port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find("language=\"rust\",endpoint=\"complete\""), std::string::npos);
}

TEST_F(CodeCompletionApi, BadInputIsRefusedClearly) {
    auto missing = post_json(port(), "/v1/completions", {{"segments", {{"suffix", "x"}}}});
    EXPECT_EQ(missing.status, 400);
    EXPECT_EQ(missing.json()["error"]["param"], "segments.prefix");
    EXPECT_EQ(post_json(port(), "/v1/completions", {{"segments", "text"}}).status, 400);
    EXPECT_EQ(post_json(port(), "/v1/completions", {{"segments", {{"prefix", 5}}}}).status, 400);
    auto bad_decl = post_json(port(), "/v1/completions",
                              {{"segments", {{"prefix", "x"}, {"declarations", {{{"filepath", 1}}}}}}});
    EXPECT_EQ(bad_decl.status, 400);
    EXPECT_EQ(bad_decl.json()["error"]["param"], "segments.declarations");
    auto bad_language =
        post_json(port(), "/v1/completions", {{"language", "py thon!"}, {"segments", {{"prefix", "x"}}}});
    EXPECT_EQ(bad_language.status, 400);
    EXPECT_EQ(bad_language.json()["error"]["param"], "language");
    // An unknown but well-formed language id is served (the file path decides, else plain text).
    EXPECT_EQ(post_json(port(), "/v1/completions",
                        {{"language", "cobol-2030"}, {"segments", {{"prefix", "x"}, {"filepath", "a.go"}}}})
                  .status,
              200);

    EXPECT_EQ(
        post_json(port(), "/infill", {{"input_prefix", 1}, {"input_suffix", ""}}).json()["error"]["param"],
        "input_prefix");
    EXPECT_EQ(post_json(port(), "/infill", {{"input_prefix", ""}}).json()["error"]["param"], "input_suffix");
    EXPECT_EQ(post_json(port(), "/infill", {{"input_prefix", ""}, {"input_suffix", ""}, {"input_extra", "x"}})
                  .status,
              400);
    auto extra = post_json(
        port(), "/infill",
        {{"input_prefix", ""}, {"input_suffix", ""}, {"input_extra", {{{"filename", "a"}, {"text", 7}}}}});
    EXPECT_EQ(extra.status, 400);
    EXPECT_EQ(extra.json()["error"]["param"], "input_extra[0].text");
    EXPECT_EQ(post_json(port(), "/complete", {{"filePath", "a.py"}}).json()["error"]["param"], "code");
    auto utf8 = http(port(), "POST", "/complete", "{\"code\": \"x = \xff\xfe\", \"filePath\": \"a.py\"}");
    EXPECT_EQ(utf8.status, 400);
}

TEST_F(CodeCompletionApi, AHugePrefixIsTrimmedToTheBudget) {
    std::string prefix;
    while (prefix.size() < 10 * 1024 * 1024) prefix += "counter = counter + 1  # keep counting\n";
    prefix += "result = ";
    json body = tabby_body(prefix, "");
    body["debug_options"] = {{"return_prompt", true}};
    auto r = post_json(port(), "/v1/completions", body);
    ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
    std::string prompt = r.json()["debug_data"]["prompt"];
    EXPECT_LT(prompt.size(), 20000u);
    // The cursor's line follows the middle token (typing on it keeps the rest cached).
    EXPECT_NE(prompt.find("keep counting\n<fim_suffix><fim_middle>result = "), std::string::npos)
        << prompt.substr(prompt.size() - 200);
}

// A newer request for the same document ends the older one at once.
TEST(Supersession, ANewerRequestForTheSameDocumentEndsTheOlderOne) {
    auto c = test_config();
    c.completion.max_tokens = 1500;
    c.completion.deadline_ms = 120000; // this test is about supersession, not deadlines
    c.model.max_tokens_cap = 1500;
    c.model.ctx = 4 * 1800;
    TestServer server(c);
    auto& engine = server.app().engine();
    // Precondition: a request that, alone, runs for many tokens (no newline ends it early).
    // The test model's output is noise, so take the first of a few prompts that does.
    json body;
    int64_t before = 0;
    for (const char* prefix :
         {"value = compute(", "x = ", "total = sum(", "name = \"", "items = [", "flag = not "}) {
        body = {{"language", "python"},
                {"user", "dev-1"},
                {"segments", {{"prefix", prefix}, {"suffix", ")\n"}, {"filepath", "src/long.py"}}}};
        before = engine.stats().generated_tokens;
        ASSERT_EQ(post_json(server.port(), "/v1/completions", body).status, 200);
        if (engine.stats().generated_tokens - before > 1000) break;
    }
    ASSERT_GT(engine.stats().generated_tokens - before, 1000)
        << "no candidate prompt ran long with this test model";
    std::string long_prefix = body["segments"]["prefix"];

    auto first =
        std::async(std::launch::async, [&] { return post_json(server.port(), "/v1/completions", body); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (engine.stats().running == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    before = engine.stats().generated_tokens;
    body["segments"]["prefix"] = long_prefix + "a"; // the developer typed one more character
    auto second = post_json(server.port(), "/v1/completions", body);
    auto superseded = first.get();
    ASSERT_EQ(superseded.status, 200);
    EXPECT_EQ(superseded.json()["choices"][0]["text"], "");
    ASSERT_EQ(second.status, 200);
    // The first stopped when the second arrived: together they made about one request's tokens.
    EXPECT_LT(engine.stats().generated_tokens - before, 1500 + 750);
    // Another user's request for the same path is not affected.
    json other = body;
    other["user"] = "dev-2";
    auto a =
        std::async(std::launch::async, [&] { return post_json(server.port(), "/v1/completions", body); });
    while (engine.stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto b = post_json(server.port(), "/v1/completions", other);
    EXPECT_NE(a.get().json()["choices"][0]["text"], "");
    EXPECT_NE(b.json()["choices"][0]["text"], "");
}

namespace {

// Medians of prompt tokens evaluated (not reused) while the cursor moves down a file one
// line per request, with 20-line windows before and after it (tabby-agent's defaults).
int median_evaluated_while_moving_down(int port) {
    std::vector<std::string> lines;
    for (int i = 0; i < 120; ++i)
        lines.push_back(i % 7 == 6 ? "\n"
                                   : "    total_" + std::to_string(i) + " = compute(items[" +
                                         std::to_string(i) + "], " + std::to_string(i * 3 % 17) + ")\n");
    auto join = [&](int from, int to) {
        std::string out;
        for (int i = from; i < to; ++i) out += lines[static_cast<size_t>(i)];
        return out;
    };
    std::vector<int> evaluated;
    for (int cursor = 40; cursor < 56; ++cursor) {
        json body = {{"input_prefix", join(cursor - 20, cursor)},
                     {"input_suffix", join(cursor, cursor + 20)},
                     {"n_predict", 4},
                     {"temperature", 0},
                     {"ignore_eos", true}};
        auto r = post_json(port, "/infill", body);
        EXPECT_EQ(r.status, 200) << r.body;
        auto j = r.json();
        EXPECT_LE(j["tokens_shifted"].get<int>(), j["tokens_cached"].get<int>());
        if (cursor > 40)
            evaluated.push_back(j["tokens_evaluated"].get<int>() - j["tokens_cached"].get<int>());
    }
    std::sort(evaluated.begin(), evaluated.end());
    return evaluated[evaluated.size() / 2];
}

} // namespace

TEST_F(CodeCompletionApi, AWindowThatLostItsFirstLineReusesTheRestByShifting) {
    // Default: shifted reuse with stable windows. The prefix window's first line drops with
    // every move; the rest of it shifts into place, and what follows the cursor's new line
    // is evaluated again (text inserted before it, which llama.cpp cannot reuse).
    int shifted = median_evaluated_while_moving_down(port());
    // Exact reuse only: the suffix after the cursor is evaluated again on every move.
    auto c = test_config();
    c.model.kv_shift_min_chunk = 0;
    TestServer exact(c);
    int exact_only = median_evaluated_while_moving_down(exact.port());
    EXPECT_GE(exact_only, 500); // the whole prompt: its first line changed
    EXPECT_LE(shifted, exact_only * 6 / 10);
    std::cout << "[ windows  ] median prompt tokens evaluated per cursor move: " << shifted << " shifted, "
              << exact_only << " exact-only\n";
}
