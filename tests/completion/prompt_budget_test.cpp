// The token budget: nearest prefix lines first, then suffix lines, then snippets, cut at line
// boundaries; huge inputs are trimmed, not choked on.
#include "completion/completion.h"

#include <chrono>
#include <gtest/gtest.h>

using namespace codepilot::completion;
using Tokens = std::vector<codepilot::engine::Token>;

namespace {
// One token per 4 bytes, rounded up: predictable budgets.
Tokens fake_tokens(const std::string& text) {
    return Tokens((text.size() + 3) / 4, 9);
}

FimSpec spec() {
    FimSpec s;
    s.tokens.prefix = 1;
    s.tokens.suffix = 2;
    s.tokens.middle = 3;
    return s;
}

std::string numbered_lines(const std::string& tag, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += tag + std::to_string(i) + " = compute(" + std::to_string(i) + ")\n";
    return out;
}
} // namespace

TEST(PromptBudget, KeepsTheNearestWholeLines) {
    CodeContext c;
    c.prefix = numbered_lines("p", 100) + "cursor_line = ";
    c.suffix = "\n" + numbered_lines("s", 100);
    PromptBudget b;
    b.max_tokens = 200;
    auto built = build_prompt(spec(), nullptr, plain_text(), c, b, fake_tokens, fake_tokens);
    EXPECT_LE(built.tokens.size(), 200u);
    EXPECT_GT(built.tokens.size(), 150u);
    // The prefix kept ends at the cursor and starts at a line boundary.
    ASSERT_FALSE(built.prefix_used.empty());
    EXPECT_EQ(c.prefix.substr(c.prefix.size() - built.prefix_used.size()), built.prefix_used);
    EXPECT_EQ(c.prefix[c.prefix.size() - built.prefix_used.size() - 1], '\n');
    EXPECT_NE(built.prefix_used.find("p99 = compute(99)\ncursor_line = "), std::string::npos);
    // The suffix kept starts at the cursor and ends at a line end.
    EXPECT_EQ(c.suffix.substr(0, built.suffix_used.size()), built.suffix_used);
    EXPECT_EQ(built.suffix_used.back(), '\n');
    // The prefix got more room than the suffix.
    EXPECT_GT(built.prefix_used.size(), built.suffix_used.size());
}

TEST(PromptBudget, SnippetsComeInPriorityOrderAndAreCutAtLines) {
    CodeContext c;
    c.prefix = "x = ";
    c.suffix = "";
    c.snippets.push_back({"first.py", numbered_lines("a", 5)});
    c.snippets.push_back({"second.py", numbered_lines("b", 500)}); // too long: cut at a line
    c.snippets.push_back({"third.py", numbered_lines("c", 5)});
    PromptBudget b;
    b.max_tokens = 300;
    auto built = build_prompt(spec(), nullptr, *language_by_id("python"), c, b, fake_tokens, fake_tokens);
    ASSERT_GE(built.snippets_used.size(), 2u);
    EXPECT_EQ(built.snippets_used[0].path, "first.py");
    EXPECT_EQ(built.snippets_used[0].text, c.snippets[0].text);
    EXPECT_EQ(built.snippets_used[1].path, "second.py");
    EXPECT_LT(built.snippets_used[1].text.size(), c.snippets[1].text.size());
    EXPECT_EQ(built.snippets_used[1].text.back(), '\n');
    EXPECT_LE(built.tokens.size(), 300u);
}

TEST(PromptBudget, ATenMegabytePrefixIsTrimmedQuickly) {
    CodeContext c;
    std::string line = "value = value + 1  # a line of ordinary code\n";
    while (c.prefix.size() < 10 * 1024 * 1024) c.prefix += line;
    c.prefix += std::string(3 * 1024 * 1024, 'x'); // and a last line of 3 MB
    c.suffix = std::string(2 * 1024 * 1024, 'y');
    PromptBudget b;
    b.max_tokens = 1000;
    int calls = 0;
    size_t bytes = 0;
    auto counting = [&](const std::string& t) {
        ++calls;
        bytes += t.size();
        return fake_tokens(t);
    };
    auto built = build_prompt(spec(), nullptr, plain_text(), c, b, counting, counting);
    EXPECT_LE(built.tokens.size(), 1000u);
    EXPECT_FALSE(built.prefix_used.empty());
    EXPECT_EQ(built.prefix_used.back(), 'x'); // the text next to the cursor is kept
    EXPECT_LT(bytes, 200u * 1024);            // only what could fit was ever tokenized
}

// Found while writing fuzz_fim_prompt (reading what paths may hold): a snippet path with newlines (from a
// request's JSON) ended the path line early, and when the budget cut the block inside the path, taking the
// kept text after the path threw std::out_of_range. A path is one line in the prompt; the caller's path is
// kept.
TEST(PromptBudget, ASnippetPathWithNewlinesStaysOneLine) {
    FimSpec s = spec();
    s.tokens.repo_name = 4;
    s.tokens.file_sep = 5;
    CodeContext c;
    c.prefix = "x = ";
    c.filepath = "src/\nmain.py";
    std::string path;
    for (int i = 0; i < 40; ++i) path += "p\n"; // more path lines than the budget holds
    c.snippets.push_back({path, numbered_lines("a", 50)});
    PromptBudget b;
    b.max_tokens = 40;
    BuiltPrompt built;
    ASSERT_NO_THROW(built = build_prompt(s, nullptr, plain_text(), c, b, fake_tokens, fake_tokens));
    for (const auto& used : built.snippets_used) {
        EXPECT_EQ(used.path, c.snippets[0].path);
        EXPECT_EQ(c.snippets[0].text.compare(0, used.text.size(), used.text), 0) << used.text;
    }
    b.max_tokens = 400;
    built = build_prompt(s, nullptr, plain_text(), c, b, fake_tokens, fake_tokens);
    ASSERT_EQ(built.snippets_used.size(), 1u);
    EXPECT_EQ(built.snippets_used[0].text.substr(0, 12), "a0 = compute");
}

// Found reading the code a fuzz_fim_prompt finding pointed at (a partial cursor line): when the line after
// the cursor alone was over the budget, the part kept was trimmed at the cursor's end, so the model saw text
// from further along the line and not the text right after the cursor.
TEST(PromptBudget, AnOverlongSuffixLineKeepsTheTextNextToTheCursor) {
    CodeContext c;
    c.prefix = "x = ";
    std::string line;
    for (int i = 0; i < 400; ++i) line += "w" + std::to_string(i) + " ";
    c.suffix = line + "\nnext_line()\n";
    PromptBudget b;
    b.max_tokens = 64;
    // A token per byte: the part first taken (two bytes per token of budget) must be trimmed.
    auto per_byte = [](const std::string& text) { return Tokens(text.size(), 9); };
    auto built = build_prompt(spec(), nullptr, plain_text(), c, b, per_byte, per_byte);
    ASSERT_FALSE(built.suffix_used.empty());
    EXPECT_EQ(c.suffix.compare(0, built.suffix_used.size(), built.suffix_used), 0) << built.suffix_used;
    EXPECT_LE(built.tokens.size(), 64u);
}
