// typing: N simulated developers, each editing their own file, one request in flight each,
// 250 ms between requests, 32-token completions. Reports latency percentiles and
// completions/s (one JSON line).
//   --edit type: before each request the developer types 1-6 characters at the cursor;
//   --edit move: the cursor moves down to the next line (after its indentation): existing
//                code, so the text after the cursor shifts with every request.
//   --window file:   the file up to the cursor and ~600 characters after it (a ~150-line file);
//            tabby:  20 lines before / 20 after the cursor (tabby-agent's defaults);
//            vscode: 256 lines before / 64 after, the cursor's line as `prompt` (llama.vscode).
#include "support/http_client.h"

#include <algorithm>
#include <chrono>
#include <CLI/CLI.hpp>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

// A plausible Python module of about `target_lines` lines, different for every developer.
std::string make_file(int user, int target_lines) {
    std::mt19937 rng(static_cast<unsigned>(user) * 104729u + 3u);
    const char* names[] = {"order", "customer", "invoice", "payment", "account", "report", "ledger", "batch"};
    std::string file = "import os\nimport json\nfrom dataclasses import dataclass\n\n";
    int lines = 4;
    for (int f = 0; lines < target_lines; ++f) {
        std::string n = std::string(names[rng() % 8]) + "_" + std::to_string(user) + "_" + std::to_string(f);
        file += "def process_" + n + "(items, limit=" + std::to_string(rng() % 100) + "):\n";
        file += "    \"\"\"Process " + n + " records and return the totals.\"\"\"\n";
        file += "    total = 0\n    for item in items[:limit]:\n";
        file += "        if item.get(\"" + n + "\") is None:\n            continue\n";
        file += "        total += item[\"" + n + "\"] * " + std::to_string(rng() % 10 + 1) + "\n";
        file += "    return total\n\n";
        lines += 9;
    }
    return file;
}

// Byte offset of the start of the line `n` lines before (n < 0) or after the line holding `pos`.
size_t line_start_from(const std::string& text, size_t pos, int n) {
    size_t start = text.rfind('\n', pos == 0 ? 0 : pos - 1);
    start = (start == std::string::npos || pos == 0) ? 0 : start + 1;
    for (; n < 0 && start > 0; ++n) {
        size_t prev = start >= 2 ? text.rfind('\n', start - 2) : std::string::npos;
        start = prev == std::string::npos ? 0 : prev + 1;
    }
    for (; n > 0 && start < text.size(); --n) {
        size_t next = text.find('\n', start);
        start = next == std::string::npos ? text.size() : next + 1;
    }
    return start;
}

struct Window {
    std::string prefix, suffix, line_head; // line_head: the cursor's line before it (vscode)
};

Window window_at(const std::string& file, size_t cursor, const std::string& shape, int suffix_chars) {
    Window w;
    if (shape == "file") {
        w.prefix = file.substr(0, cursor);
        w.suffix = file.substr(cursor, static_cast<size_t>(suffix_chars));
    } else if (shape == "tabby") { // the cursor's line counts as the first of the 20 before
        size_t from = line_start_from(file, cursor, -19);
        w.prefix = file.substr(from, cursor - from);
        size_t to = line_start_from(file, cursor, 20);
        w.suffix = file.substr(cursor, to - cursor);
    } else { // vscode
        size_t line = line_start_from(file, cursor, 0);
        size_t from = line_start_from(file, cursor, -256);
        w.prefix = file.substr(from, line - from);
        w.line_head = file.substr(line, cursor - line);
        size_t to = line_start_from(file, cursor, 64);
        w.suffix = file.substr(cursor, to - cursor);
    }
    return w;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App cli{"typing: a code-completion workload of developers typing"};
    int port = 8080, users = 1, requests = 20, max_tokens = 32, suffix_chars = 600, think_ms = 250;
    std::string shape = "infill", label = "server", edit = "type", window = "file";
    cli.add_option("--port", port)->required();
    cli.add_option("--users", users);
    cli.add_option("--requests", requests, "requests per developer");
    cli.add_option("--max-tokens", max_tokens);
    cli.add_option("--shape", shape, "infill | tabby")->check(CLI::IsMember({"infill", "tabby"}));
    cli.add_option("--label", label);
    cli.add_option("--edit", edit, "type | move")->check(CLI::IsMember({"type", "move"}));
    cli.add_option("--window", window, "file | tabby | vscode")
        ->check(CLI::IsMember({"file", "tabby", "vscode"}));
    cli.add_option("--think-ms", think_ms);
    int warmup = 0;
    bool verbose = false;
    cli.add_flag("--verbose", verbose, "print every measured request");
    cli.add_option("--warmup", warmup,
                   "requests per developer before measuring (the first one reads the whole file)");
    CLI11_PARSE(cli, argc, argv);

    std::mutex mu;
    std::condition_variable all_warm;
    int warm_users = 0;
    Clock::time_point measure_start;
    std::vector<double> latencies;
    std::vector<double> cached_ratio;
    std::vector<double> evaluated; // prompt tokens evaluated (not reused) per request
    int failures = 0;
    auto start = Clock::now();
    std::vector<std::thread> workers;
    for (int u = 0; u < users; ++u) {
        workers.emplace_back([&, u] {
            std::mt19937 rng(static_cast<unsigned>(u) + 77u);
            // Windows need a file longer than they are; the whole-file shape keeps today's ~150 lines.
            std::string file = make_file(u, window == "file" ? 150 : 600);
            // Start at the beginning of a line two thirds down the file (moving: a third down).
            size_t cursor = file.find('\n', file.size() * (edit == "move" ? 1 : 2) / 3) + 1;
            const std::string alphabet = "abcdefghijklmnopqrstuvwxyz_ (.";
            for (int r = 0; r < warmup + requests; ++r) {
                if (r == warmup && warmup > 0) { // measure steady typing: wait until every developer is warm
                    std::unique_lock lock(mu);
                    if (++warm_users == users) {
                        measure_start = Clock::now();
                        all_warm.notify_all();
                    }
                    all_warm.wait(lock, [&] { return warm_users == users; });
                }
                if (edit == "type") {
                    int typed = 1 + static_cast<int>(rng() % 6);
                    for (int k = 0; k < typed; ++k)
                        file.insert(cursor++, 1, alphabet[rng() % alphabet.size()]);
                } else { // down one line, after its indentation (wrapping to the file's start)
                    cursor = line_start_from(file, cursor, 1);
                    if (cursor >= file.size()) cursor = 0;
                    while (cursor < file.size() && file[cursor] == ' ') ++cursor;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(think_ms));
                Window w = window_at(file, cursor, window, suffix_chars);
                json body;
                std::string path;
                if (shape == "infill") {
                    path = "/infill";
                    body = {{"input_prefix", w.prefix},
                            {"input_suffix", w.suffix},
                            {"n_predict", max_tokens},
                            {"ignore_eos", true},
                            {"cache_prompt", true},
                            {"temperature", 0},
                            {"samplers", json::array({"top_k"})},
                            {"top_k", 1}};
                    if (!w.line_head.empty()) body["prompt"] = w.line_head;
                } else {
                    path = "/v1/completions";
                    body = {{"language", "python"},
                            {"user", "dev-" + std::to_string(u)},
                            {"segments",
                             {{"prefix", w.prefix + w.line_head},
                              {"suffix", w.suffix},
                              {"filepath", "src/module_" + std::to_string(u) + ".py"}}}};
                }
                auto t0 = Clock::now();
                codepilot::testenv::HttpResponse res;
                bool ok = true;
                try {
                    res = codepilot::testenv::post_json(port, path, body);
                } catch (const std::exception&) {
                    ok = false;
                }
                double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
                std::lock_guard lock(mu);
                if (r < warmup) continue;
                if (!ok || res.status != 200) {
                    ++failures;
                    continue;
                }
                latencies.push_back(ms);
                if (verbose)
                    std::cerr << "user " << u << " request " << r << " ms " << static_cast<int>(ms)
                              << " body " << res.body.substr(0, 160) << "\n";
                if (shape == "infill") {
                    auto j = json::parse(res.body, nullptr, false);
                    if (j.is_object() && j.contains("tokens_evaluated") &&
                        j["tokens_evaluated"].get<double>() > 0) {
                        double cached = j.value("tokens_cached", 0.0);
                        if (j.contains("timings") && j["timings"].contains("cache_n"))
                            cached = j["timings"]["cache_n"].get<double>();
                        cached_ratio.push_back(cached / j["tokens_evaluated"].get<double>());
                        evaluated.push_back(j["tokens_evaluated"].get<double>() - cached);
                    }
                }
            }
        });
    }
    for (auto& t : workers) t.join();
    double wall = std::chrono::duration<double>(Clock::now() - (warmup > 0 ? measure_start : start)).count();
    json out = {{"label", label},
                {"shape", shape},
                {"edit", edit},
                {"window", window},
                {"users", users},
                {"warmup", warmup},
                {"completions", latencies.size()},
                {"failures", failures},
                {"wall_s", wall},
                {"completions_per_s", static_cast<double>(latencies.size()) / wall},
                {"latency_ms", {{"p50", percentile(latencies, 50)}, {"p95", percentile(latencies, 95)}}},
                {"prompt_cached_ratio_p50", percentile(cached_ratio, 50)},
                {"prompt_evaluated_p50", percentile(evaluated, 50)}};
    std::cout << out.dump() << std::endl;
    return failures == 0 ? 0 : 1;
}
