// The FIM prompt builder with whatever an IDE may send: any prefix, suffix, snippets, paths,
// custom templates, budgets and layouts. Besides not crashing, the builder must keep its
// promises: the prefix kept is a tail of the prefix from a line start, the suffix kept a head
// of the suffix to a line end, each snippet kept a head of its text, and the prompt within
// the token budget whenever the budget can hold the fixed parts.
#include "completion/completion.h"
#include "fuzz_check.h"

#include <algorithm>
#include <fuzzer/FuzzedDataProvider.h>

using namespace codepilot::completion;

namespace {

void check(bool ok, const char* what) {
    fuzz_check(ok, "fuzz_fim_prompt", what);
}

// Additive over lines (a newline is a token of its own, other bytes go three to a token), so
// the sum of the parts' counts is the count of the whole, as the budget arithmetic assumes.
std::vector<Token> tokenize(const std::string& text) {
    std::vector<Token> out;
    size_t run = 0;
    for (unsigned char c : text) {
        if (c == '\n') {
            out.push_back(10);
            run = 0;
        } else if (run++ % 3 == 0) {
            out.push_back(100 + c);
        }
    }
    return out;
}

bool starts_with(const std::string& text, const std::string& head) {
    return text.compare(0, head.size(), head) == 0;
}
bool ends_with(const std::string& text, const std::string& tail) {
    return tail.size() <= text.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);

    FimSpec spec;
    spec.family = static_cast<FimFamily>(in.ConsumeIntegralInRange<int>(0, 6));
    spec.layout = in.ConsumeBool() ? FimLayout::spm : FimLayout::psm;
    spec.tokens.prefix = 1;
    spec.tokens.suffix = 2;
    spec.tokens.middle = 3;
    const bool repo_tokens = in.ConsumeBool();
    spec.tokens.repo_name = repo_tokens ? 4 : -1;
    spec.tokens.file_sep = repo_tokens ? 5 : -1;
    spec.tokens.bos = 6;
    spec.tokens.add_bos = in.ConsumeBool();
    spec.repo_name = in.ConsumeRandomLengthString(32);

    CustomTemplate custom;
    const bool use_custom =
        in.ConsumeBool() && parse_custom_template(in.ConsumeRandomLengthString(64), custom);

    PromptBudget budget;
    budget.max_tokens = in.ConsumeIntegralInRange<int>(0, 4096);
    budget.prefix_share = in.ConsumeFloatingPointInRange<double>(0.0, 1.0);
    budget.suffix_share = in.ConsumeFloatingPointInRange<double>(0.0, 1.0 - budget.prefix_share);
    budget.anchor_prefix_start = in.ConsumeBool();
    budget.newline_before_prefix = in.ConsumeBool();

    CodeContext ctx;
    ctx.filepath = in.ConsumeRandomLengthString(64);
    const Language& language = detect_language(in.ConsumeRandomLengthString(16), ctx.filepath);
    ctx.middle_prompt = in.ConsumeRandomLengthString(64);
    const int snippets = in.ConsumeIntegralInRange<int>(0, 4);
    for (int i = 0; i < snippets; ++i) {
        FileSnippet s;
        s.path = in.ConsumeRandomLengthString(64);
        s.text = in.ConsumeRandomLengthString(2048);
        ctx.snippets.push_back(std::move(s));
    }
    ctx.suffix = in.ConsumeRandomLengthString(8192);
    ctx.prefix = in.ConsumeRemainingBytesAsString();

    const BuiltPrompt out =
        build_prompt(spec, use_custom ? &custom : nullptr, language, ctx, budget, tokenize, tokenize);

    if (!budget.newline_before_prefix) {
        check(ends_with(ctx.prefix, out.prefix_used), "the prefix kept is not a tail of the prefix");
        const size_t start = ctx.prefix.size() - out.prefix_used.size();
        // Whole lines, unless the line at the cursor alone is over the budget: then its part
        // next to the cursor.
        const size_t newline = out.prefix_used.find('\n');
        const bool part_of_cursor_line =
            newline == std::string::npos || newline + 1 == out.prefix_used.size();
        check(start == 0 || ctx.prefix[start - 1] == '\n' || part_of_cursor_line,
              "the prefix kept does not start at a line start");
    }
    check(starts_with(ctx.suffix, out.suffix_used), "the suffix kept is not a head of the suffix");
    check(out.suffix_used.size() == ctx.suffix.size() || ends_with(out.suffix_used, "\n") ||
              out.suffix_used.find('\n') == std::string::npos,
          "the suffix kept does not end at a line end");
    check(out.snippets_used.size() <= ctx.snippets.size(), "more snippets used than given");
    for (const auto& used : out.snippets_used) {
        bool found = false;
        for (const auto& s : ctx.snippets)
            found = found || (used.path == s.path && starts_with(s.text + "\n", used.text));
        check(found, "a snippet kept is not the head of a snippet given");
    }

    if (!use_custom) {
        // The fixed parts, as a client would count them: FIM tokens, BOS, middle text, repo heads.
        size_t fixed = 4 + tokenize(ctx.middle_prompt).size();
        if (out.repo_level) {
            std::string path = ctx.filepath.empty() ? std::string("untitled") : ctx.filepath;
            std::replace_if(
                path.begin(), path.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
            fixed += 2 + tokenize(spec.repo_name + "\n").size() + tokenize(path + "\n").size();
        }
        if (static_cast<size_t>(budget.max_tokens) >= fixed + 16)
            check(out.tokens.size() <= static_cast<size_t>(budget.max_tokens),
                  "the prompt is over its token budget");
    }
    return 0;
}
