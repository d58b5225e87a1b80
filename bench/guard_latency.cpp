// What the guard adds to a request: guard_body() (parse the JSON body, scan every string with
// every rule, redact, write the body again) on real 8 KB prompts cut from a source tree, as
// the gate runs it on the worker pool. Prints p50/p99/max per call and MB/s (docs/benchmarks.md).
#include "api/prompt_guard.h"

#include <algorithm>
#include <chrono>
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

using namespace codepilot;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    CLI::App cli{"guard latency per request body"};
    std::string tree;
    size_t chunk = 8192, limit = 2000;
    cli.add_option("tree", tree, "a source tree to cut prompts from")
        ->required()
        ->check(CLI::ExistingDirectory);
    cli.add_option("--bytes", chunk, "prompt size");
    cli.add_option("--prompts", limit, "how many prompts");
    CLI11_PARSE(cli, argc, argv);

    std::vector<std::string> bodies;
    for (const auto& e : std::filesystem::recursive_directory_iterator(tree)) {
        if (bodies.size() >= limit) break;
        const auto ext = e.path().extension().string();
        if (!e.is_regular_file() ||
            (ext != ".cpp" && ext != ".c" && ext != ".h" && ext != ".py" && ext != ".md"))
            continue;
        std::ifstream in(e.path(), std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (size_t at = 0; at + chunk <= text.size() && bodies.size() < limit; at += chunk) {
            nlohmann::json body = {
                {"prompt", text.substr(at, chunk)}, {"max_tokens", 64}, {"temperature", 0}};
            bodies.push_back(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        }
    }
    if (bodies.empty()) {
        std::cerr << "no prompts of " << chunk << " bytes under " << tree << "\n";
        return 1;
    }
    auto policy = api::build_policy(api::GuardSettings{}, guard::RuleSet::builtin(), nullptr, "bench");
    if (!policy) return 1;
    std::vector<double> us;
    size_t bytes = 0, findings = 0;
    for (int round = 0; round < 2; ++round) { // the first round warms caches
        us.clear();
        for (const auto& b : bodies) {
            const auto t0 = Clock::now();
            auto out = api::guard_body(*policy, b);
            us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
            if (round == 1) {
                bytes += b.size();
                findings += out.rules.size();
            }
        }
    }
    std::vector<double> sorted = us;
    std::sort(sorted.begin(), sorted.end());
    auto q = [&](double p) {
        return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
    };
    double total = 0;
    for (double v : us) total += v;
    std::cout << bodies.size() << " bodies of " << chunk << " prompt bytes: p50 " << q(0.5) << " us, p99 "
              << q(0.99) << " us, max " << sorted.back() << " us; " << bytes / total << " MB/s; " << findings
              << " findings\n";
    return 0;
}
