// loadgen: a load generator for OpenAI-compatible servers. C concurrent clients send R
// streaming completions in total and it reports time to first token, inter-token latency,
// end-to-end latency percentiles and aggregate tokens/s (one JSON line on stdout).
#include "support/http_client.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <CLI/CLI.hpp>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

// A deterministic, distinct code-like prompt per request.
std::string make_prompt(int index, int words) {
    static const char* vocab[] = {"def",    "return", "value", "self",  "items",  "index",
                                  "result", "for",    "in",    "range", "if",     "else",
                                  "None",   "True",   "data",  "count", "append", "len"};
    std::mt19937 rng(static_cast<unsigned>(index) * 7919u + 17u);
    std::string p = "# request " + std::to_string(index) + "\n";
    for (int w = 0; w < words; ++w) {
        p += vocab[rng() % (sizeof(vocab) / sizeof(vocab[0]))];
        p += (w % 12 == 11) ? "\n    " : " ";
    }
    return p;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App cli{"loadgen: streaming load for OpenAI-compatible /v1/completions"};
    int port = 8080, concurrency = 1, requests = 8, max_tokens = 64, prompt_words = 60;
    std::string model = "model", label = "server", path = "/v1/completions";
    cli.add_option("--port", port)->required();
    cli.add_option("--concurrency", concurrency);
    cli.add_option("--requests", requests);
    cli.add_option("--max-tokens", max_tokens);
    cli.add_option("--prompt-words", prompt_words);
    cli.add_option("--model", model);
    cli.add_option("--label", label);
    cli.add_option("--path", path);
    int prompt_offset = 0;
    cli.add_option("--prompt-offset", prompt_offset,
                   "first prompt index (distinct runs should not share prompts)");
    int distinct = 0;
    cli.add_option("--distinct", distinct, "cycle through this many prompts (0: every request its own)");
    bool verbose = false;
    cli.add_flag("--verbose", verbose,
                 "print each request's start, TTFT and end (ms since the run began) to stderr");
    CLI11_PARSE(cli, argc, argv);

    std::mutex mu;
    std::vector<double> ttft, itl, e2e;
    long long tokens = 0;
    int failures = 0;
    std::atomic<int> next{0};
    auto start = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < concurrency; ++w) {
        workers.emplace_back([&] {
            for (int i; (i = next++) < requests;) {
                json body = {
                    {"model", model},
                    {"prompt", make_prompt(prompt_offset + (distinct > 0 ? i % distinct : i), prompt_words)},
                    {"max_tokens", max_tokens},
                    {"temperature", 0},
                    {"ignore_eos", true},
                    {"stream", true},
                    {"stream_options", {{"include_usage", true}}}};
                auto t0 = Clock::now();
                std::vector<double> my_itl;
                double first = -1;
                Clock::time_point last;
                long long used = -1;
                bool ok = false;
                try {
                    codepilot::testenv::SseStream s(port, path, body);
                    ok = s.status() == 200;
                    while (ok) {
                        auto e = s.next_event(std::chrono::seconds(600));
                        if (!e || *e == "[DONE]") break;
                        auto j = json::parse(*e, nullptr, false);
                        if (j.is_discarded()) continue;
                        if (j.contains("usage") && j["usage"].is_object())
                            used = j["usage"].value("completion_tokens", -1);
                        if (!j.contains("choices") || j["choices"].empty()) continue;
                        std::string text = j["choices"][0].value("text", "");
                        if (text.empty()) continue;
                        auto now = Clock::now();
                        if (first < 0)
                            first = ms(now - t0);
                        else
                            my_itl.push_back(ms(now - last));
                        last = now;
                    }
                } catch (const std::exception&) {
                    ok = false;
                }
                auto t1 = Clock::now();
                std::lock_guard lock(mu);
                if (!ok || first < 0) {
                    ++failures;
                    continue;
                }
                if (verbose)
                    std::cerr << "request " << i << " start " << ms(t0 - start) << " ttft " << first
                              << " end " << ms(t1 - start) << "\n";
                ttft.push_back(first);
                e2e.push_back(ms(t1 - t0));
                itl.insert(itl.end(), my_itl.begin(), my_itl.end());
                tokens += used >= 0 ? used : max_tokens;
            }
        });
    }
    for (auto& t : workers) t.join();
    double wall = ms(Clock::now() - start) / 1000.0;
    json out = {
        {"label", label},
        {"concurrency", concurrency},
        {"requests", requests},
        {"failures", failures},
        {"max_tokens", max_tokens},
        {"tokens", tokens},
        {"wall_s", wall},
        {"tokens_per_s", wall > 0 ? static_cast<double>(tokens) / wall : 0},
        {"ttft_ms",
         {{"p50", percentile(ttft, 50)}, {"p90", percentile(ttft, 90)}, {"p99", percentile(ttft, 99)}}},
        {"itl_ms",
         {{"p50", percentile(itl, 50)}, {"p90", percentile(itl, 90)}, {"p99", percentile(itl, 99)}}},
        {"e2e_ms",
         {{"p50", percentile(e2e, 50)}, {"p90", percentile(e2e, 90)}, {"p99", percentile(e2e, 99)}}}};
    std::cout << out.dump() << std::endl;
    return failures == 0 ? 0 : 1;
}
