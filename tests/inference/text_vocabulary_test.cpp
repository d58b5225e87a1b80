// The stand-in vocabulary of upstream models: exact round trips, FIM texts as single tokens,
// and counts that do not undercount real tokenizers.
#include "inference/text_vocabulary.h"

#include <gtest/gtest.h>

using namespace codepilot::inference;

TEST(TextVocabulary, DecodingGivesBackTheExactText) {
    TextVocabulary v(fim_texts("qwen_coder"));
    for (std::string text :
         {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
          std::string("def f(x):\n    return x  # ünïcode ✓\n"), std::string("\0\0z", 3)}) {
        auto tokens = v.encode(text, true);
        EXPECT_EQ(v.decode(tokens), text);
        EXPECT_EQ(tokens.size(), (text.size() + 2) / 3);
        for (auto t : tokens) EXPECT_TRUE(v.valid(t));
    }
}

TEST(TextVocabulary, FimTextsAreSingleSpecialTokensOnlyWhenParsed) {
    TextVocabulary v(fim_texts("starcoder"));
    const std::string text = "<fim_prefix>def f():<fim_suffix>\n<fim_middle>";
    auto parsed = v.encode(text, true);
    auto fim = v.fim_tokens();
    ASSERT_GE(fim.prefix, 0);
    EXPECT_EQ(parsed.front(), fim.prefix);
    EXPECT_EQ(parsed.back(), fim.middle);
    EXPECT_EQ(v.token_text(fim.suffix), "<fim_suffix>");
    EXPECT_EQ(v.decode(parsed), text);
    auto plain = v.encode(text, false);
    EXPECT_EQ(v.decode(plain), text);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), fim.prefix), 0);
}

TEST(TextVocabulary, UnknownFamiliesHaveNoFimAndForeignIdsAreInvalid) {
    TextVocabulary v(fim_texts("no-such-family"));
    EXPECT_LT(v.fim_tokens().prefix, 0);
    EXPECT_FALSE(v.valid(0));
    EXPECT_FALSE(v.valid(1));                // a special slot the family does not fill
    EXPECT_FALSE(v.valid(12345));            // a real vocabulary's id
    EXPECT_FALSE(v.valid((1 << 24) | 0xFF)); // length 1 with stray low bytes
    EXPECT_EQ(v.token_text(12345), "");
}
