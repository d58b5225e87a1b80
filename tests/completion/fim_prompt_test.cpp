// The bare PSM layout (no context): what OpenAI `suffix` requests get.
#include <gtest/gtest.h>

#include "completion/completion.h"

using namespace codepilot;
using namespace codepilot::completion;

namespace {
// a→5, b→6, c→7: one token per letter.
std::vector<engine::Token> letters(const std::string& text) {
    std::vector<engine::Token> out;
    for (char c : text) out.push_back(c - 'a' + 5);
    return out;
}
}  // namespace

TEST(FimPrompt, PsmLayoutWithBos) {
    FimSpec spec;
    spec.tokens.prefix = 100;
    spec.tokens.suffix = 101;
    spec.tokens.middle = 102;
    spec.tokens.repo_name = 103;  // present, but no snippets and no path: no repo blocks
    spec.tokens.file_sep = 104;
    spec.tokens.bos = 1;
    spec.tokens.add_bos = true;
    CodeContext ctx;
    ctx.prefix = "ab";
    ctx.suffix = "c";
    auto tokens = build_prompt(spec, nullptr, plain_text(), ctx, PromptBudget{}, letters, letters).tokens;
    EXPECT_EQ(tokens, (std::vector<engine::Token>{1, 100, 5, 6, 101, 7, 102}));
    spec.tokens.add_bos = false;
    EXPECT_EQ(build_prompt(spec, nullptr, plain_text(), CodeContext{}, PromptBudget{}, letters, letters).tokens,
              (std::vector<engine::Token>{100, 101, 102}));
}
