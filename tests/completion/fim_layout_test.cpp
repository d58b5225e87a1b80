// Golden FIM layouts: exact token sequences from the real vocabularies of the pinned tree.
#include <gtest/gtest.h>

#include "completion/completion.h"
#include "engine/engine.h"
#include "support/test_env.h"

using namespace codepilot;
using namespace codepilot::completion;
using Tokens = std::vector<engine::Token>;

namespace {

struct Loaded {
    std::unique_ptr<engine::Engine> engine;
    FimSpec spec;
};

Loaded load(const std::string& path) {
    Loaded l{testenv::load_engine(path), {}};
    l.spec.tokens = l.engine->fim_tokens();
    l.spec.family = detect_family(l.engine->token_text(l.spec.tokens.prefix), l.engine->token_text(l.spec.tokens.file_sep));
    l.spec.layout = default_layout(l.spec.family);
    return l;
}

Tokens build(Loaded& l, CodeContext ctx, const CustomTemplate* custom = nullptr) {
    auto tok = [&](const std::string& t) { return l.engine->tokenize(t, false, false); };
    auto tok_special = [&](const std::string& t) { return l.engine->tokenize(t, false, true); };
    PromptBudget budget;
    return build_prompt(l.spec, custom, detect_language("", ctx.filepath), ctx, budget, tok, tok_special).tokens;
}

CodeContext simple() {
    CodeContext c;
    c.prefix = "def f():";
    c.suffix = "    return 1";
    c.filepath = "src/a.py";
    return c;
}

}  // namespace

TEST(FimLayout, StarCoderRepoLevelPsm) {
    auto l = load(testenv::tiny_model());
    EXPECT_EQ(l.spec.family, FimFamily::starcoder);
    // <repo_name>repo\n <file_sep>src/a.py\n <fim_prefix>def f(): <fim_suffix>    return 1 <fim_middle>
    Tokens expected = {5, 6446, 222, 6, 1634, 52, 102, 51, 997, 222, 1, 610, 315, 2284, 3, 283, 461, 244, 54, 2};
    EXPECT_EQ(build(l, simple()), expected);
}

TEST(FimLayout, StarCoderSnippetAsFileBlock) {
    auto l = load(testenv::tiny_model());
    auto ctx = simple();
    ctx.snippets.push_back({"src/a.py", "x = 1"});
    Tokens expected = {5, 6446, 222,                                   // <repo_name>repo\n
                       6, 1634, 52, 102, 51, 997, 222, 125, 299, 244, 54, 222,  // <file_sep>src/a.py\nx = 1\n
                       6, 1634, 52, 102, 51, 997, 222,                 // <file_sep>src/a.py\n (the current file)
                       1, 610, 315, 2284, 3, 283, 461, 244, 54, 2};
    EXPECT_EQ(build(l, ctx), expected);
}

TEST(FimLayout, QwenCoderRepoLevelPsm) {
    auto l = load(testenv::qwen_coder_model());
    EXPECT_EQ(l.spec.family, FimFamily::qwen_coder);
    Tokens expected = {151940, 23476, 198, 151941, 3548, 14186, 7197, 198,
                       151936, 750, 282, 4555, 151938, 262, 470, 220, 16, 151937};
    EXPECT_EQ(build(l, simple()), expected);
}

TEST(FimLayout, QwenCoderSnippetAsFileBlock) {
    auto l = load(testenv::qwen_coder_model());
    auto ctx = simple();
    ctx.snippets.push_back({"src/a.py", "x = 1\n"});
    Tokens expected = {151940, 23476, 198, 151941, 3548, 14186, 7197, 198, 87, 284, 220, 16, 198,
                       151941, 3548, 14186, 7197, 198, 151936, 750, 282, 4555, 151938, 262, 470, 220, 16, 151937};
    EXPECT_EQ(build(l, ctx), expected);
}

TEST(FimLayout, DeepSeekCoderPsmWithBosAndCommentSnippets) {
    auto l = load(testenv::vocab_model("deepseek-coder"));
    EXPECT_EQ(l.spec.family, FimFamily::deepseek_coder);
    // BOS <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜>
    Tokens expected = {32013, 32016, 1551, 267, 10942, 32015, 315, 967, 207, 16, 32017};
    EXPECT_EQ(build(l, simple()), expected);
    // Without repo tokens, snippets become comments in the language's syntax ahead of the prefix.
    auto ctx = simple();
    ctx.snippets.push_back({"src/b.py", "x = 1"});
    Tokens with_snippet = {32013, 32016, 2, 16277, 25, 5110, 14, 65, 13, 4016, 185, 2, 1371, 1412, 16, 185,
                           1551, 267, 10942, 32015, 315, 967, 207, 16, 32017};
    EXPECT_EQ(build(l, ctx), with_snippet);
}

TEST(FimLayout, CodeLlamaPsm) {
    auto l = load(testenv::vocab_model("codellama"));
    EXPECT_EQ(l.spec.family, FimFamily::codellama);
    Tokens expected = {1, 32000, 822, 285, 7295, 32001, 268, 736, 29871, 29896, 32002};
    EXPECT_EQ(build(l, simple()), expected);
}

TEST(FimLayout, CodeGemmaPsm) {
    auto l = load(testenv::vocab_model("codegemma"));
    EXPECT_EQ(l.spec.family, FimFamily::codegemma);
    Tokens expected = {2, 262144, 2063, 517, 6141, 262146, 140, 2060, 236743, 236770, 262145};
    EXPECT_EQ(build(l, simple()), expected);
}

TEST(FimLayout, SpmPutsTheSuffixFirst) {
    auto l = load(testenv::vocab_model("deepseek-coder"));
    l.spec.layout = FimLayout::spm;
    Tokens expected = {32013, 32015, 315, 967, 207, 16, 32016, 1551, 267, 10942, 32017};
    EXPECT_EQ(build(l, simple()), expected);
}

TEST(FimLayout, CodestralIsSpmWithoutAMiddleToken) {
    EXPECT_EQ(detect_family("[PREFIX]", ""), FimFamily::codestral);
    EXPECT_EQ(default_layout(FimFamily::codestral), FimLayout::spm);
    FimSpec spec;
    spec.tokens.prefix = 100;  // [PREFIX]
    spec.tokens.suffix = 101;  // [SUFFIX]
    spec.tokens.middle = -1;
    spec.tokens.bos = 1;
    spec.tokens.add_bos = true;
    spec.family = FimFamily::codestral;
    spec.layout = FimLayout::spm;
    auto tok = [](const std::string& t) { return Tokens(t.size(), 7); };  // 1 token per byte
    CodeContext c;
    c.prefix = "ab";
    c.suffix = "c";
    auto built = build_prompt(spec, nullptr, plain_text(), c, PromptBudget{}, tok, tok);
    EXPECT_EQ(built.tokens, (Tokens{1, 101, 7, 100, 7, 7}));
}

TEST(FimLayout, CustomTemplateFromConfig) {
    auto l = load(testenv::tiny_model());
    CustomTemplate t;
    ASSERT_TRUE(parse_custom_template("<fim_suffix>{suffix}<fim_prefix>{prefix}<fim_middle>", t));
    EXPECT_TRUE(t.suffix_first);
    Tokens expected = {3, 283, 461, 244, 54, 1, 610, 315, 2284, 2};
    EXPECT_EQ(build(l, simple(), &t), expected);
    CustomTemplate bad;
    EXPECT_FALSE(parse_custom_template("<fim_prefix>{prefix}", bad));
    EXPECT_FALSE(parse_custom_template("{prefix}{prefix}{suffix}", bad));
}

TEST(FimLayout, MiddlePromptFollowsTheMiddleToken) {
    auto l = load(testenv::vocab_model("deepseek-coder"));
    auto ctx = simple();
    ctx.middle_prompt = "def f():";
    auto tokens = build(l, ctx);
    Tokens tail(tokens.end() - 4, tokens.end());
    EXPECT_EQ(tail, (Tokens{32017, 1551, 267, 10942}));
}
