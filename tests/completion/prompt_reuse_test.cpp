// How much of each FIM prompt a sequence's cache can serve while a developer works, for every
// family's real vocabulary: the exact common prefix and what shifted reuse adds (the engine's
// own plan_reuse()), for typing and for a cursor moving down, tabby-agent windows and whole
// files. Prints the table docs/completion.md quotes; asserts what the layout promises.
#include "completion/completion.h"
#include "engine/engine.h"
#include "engine/slot_choice.h"
#include "support/test_env.h"

#include <gtest/gtest.h>
#include <iomanip>
#include <iostream>

using namespace codepilot;
using namespace codepilot::completion;

namespace {

struct Family {
    const char* name;
    std::string model;
};

std::vector<std::string> source_lines() {
    std::vector<std::string> lines = {"import os\n", "import json\n", "\n"};
    for (int i = 0; lines.size() < 240; ++i) {
        if (i % 9 == 0)
            lines.push_back("def process_" + std::to_string(i) + "(items, limit=" + std::to_string(i % 50) +
                            "):\n");
        else if (i % 9 == 8)
            lines.push_back("\n");
        else
            lines.push_back("    total_" + std::to_string(i) + " = sum(item['v" + std::to_string(i) +
                            "'] for item in items[:limit])\n");
    }
    return lines;
}

struct Share {
    double exact = 0, shifted = 0;
};

// Mean share of each prompt reusable from the previous one over a session of requests.
Share measure(engine::Engine& engine, bool stable, bool tabby_windows, bool moving) {
    FimSpec spec;
    spec.tokens = engine.fim_tokens();
    spec.family =
        detect_family(engine.token_text(spec.tokens.prefix), engine.token_text(spec.tokens.file_sep));
    spec.layout = default_layout(spec.family);
    auto tok = [&](const std::string& t) { return engine.tokenize(t, false, false); };
    auto tok_special = [&](const std::string& t) { return engine.tokenize(t, false, true); };
    auto lines = source_lines();
    std::string file;
    for (const auto& l : lines) file += l;
    size_t cursor = 0;
    for (int i = 0; i < 100; ++i) cursor += lines[static_cast<size_t>(i)].size();
    cursor += 4; // after the indentation
    std::vector<engine::Token> previous;
    Share total;
    const int requests = 24;
    for (int r = 0; r < requests; ++r) {
        if (moving) { // down a line, after its indentation
            cursor = file.find('\n', cursor) + 1;
            while (file[cursor] == ' ') ++cursor;
        } else {
            file.insert(cursor, "ab_"), cursor += 3;
        }
        size_t line = file.rfind('\n', cursor - 1) + 1;
        CodeContext ctx;
        if (tabby_windows) { // 20 lines before (the cursor's counts) and 20 after
            size_t from = line;
            for (int k = 0; k < 19 && from > 0; ++k) from = file.rfind('\n', from - 2) + 1;
            size_t to = cursor;
            for (int k = 0; k < 20 && to != std::string::npos; ++k) to = file.find('\n', to) + 1;
            ctx.prefix = file.substr(from, line - from);
            ctx.suffix = file.substr(cursor, to - cursor);
        } else {
            ctx.prefix = file.substr(0, line);
            ctx.suffix = file.substr(cursor, 600);
        }
        ctx.middle_prompt = file.substr(line, cursor - line); // the cursor's line follows the middle token
        PromptBudget budget;
        budget.newline_before_prefix = stable;
        auto tokens =
            build_prompt(spec, nullptr, detect_language("python", ""), ctx, budget, tok, tok_special).tokens;
        if (!previous.empty()) {
            total.exact += static_cast<double>(engine::plan_reuse(previous, tokens, 0).reused()) /
                           static_cast<double>(tokens.size());
            total.shifted += static_cast<double>(engine::plan_reuse(previous, tokens, 64).reused()) /
                             static_cast<double>(tokens.size());
        }
        previous = std::move(tokens);
    }
    total.exact /= requests - 1;
    total.shifted /= requests - 1;
    return total;
}

} // namespace

TEST(PromptReuse, EveryFamilysLayoutKeepsTheCacheWhileTypingAndWindowsReuseTheirRestWhenTheyMove) {
    std::vector<Family> families = {{"starcoder", testenv::tiny_model()},
                                    {"qwen2.5-coder", testenv::qwen_coder_model()},
                                    {"deepseek-coder", testenv::vocab_model("deepseek-coder")},
                                    {"codellama", testenv::vocab_model("codellama")},
                                    {"codegemma", testenv::vocab_model("codegemma")}};
    std::cout << "| family | workload | exact prefix | + shifted (plain) | + shifted (stable windows) |\n";
    for (const auto& f : families) {
        auto engine = testenv::load_engine(f.model);
        struct Workload {
            const char* name;
            bool tabby, moving;
        };
        for (Workload w :
             {Workload{"typing, tabby windows", true, false}, Workload{"typing, whole file", false, false},
              Workload{"moving down, tabby windows", true, true},
              Workload{"moving down, whole file", false, true}}) {
            Share plain = measure(*engine, false, w.tabby, w.moving);
            Share stable = measure(*engine, true, w.tabby, w.moving);
            std::cout << std::fixed << std::setprecision(2) << "| " << f.name << " | " << w.name << " | "
                      << stable.exact << " | " << plain.shifted << " | " << stable.shifted << " |\n";
            EXPECT_GE(stable.shifted, stable.exact) << f.name << ", " << w.name;
            if (!w.moving) {
                EXPECT_GE(stable.exact, 0.9)
                    << f.name << ", " << w.name << ": typing re-evaluates only its line";
            }
            if (w.moving && w.tabby) {
                EXPECT_GE(stable.shifted, 0.35) << f.name << ": the window's rest is reused";
            }
        }
    }
}
