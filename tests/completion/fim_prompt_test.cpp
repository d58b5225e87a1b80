#include <gtest/gtest.h>

#include "completion/completion.h"

using namespace codepilot;

TEST(FimPrompt, PsmLayoutWithBos) {
    engine::FimTokens fim;
    fim.prefix = 100;
    fim.suffix = 101;
    fim.middle = 102;
    fim.bos = 1;
    fim.add_bos = true;
    auto tokens = completion::fim_prompt(fim, {5, 6}, {7});
    EXPECT_EQ(tokens, (std::vector<engine::Token>{1, 100, 5, 6, 101, 7, 102}));
    fim.add_bos = false;
    EXPECT_EQ(completion::fim_prompt(fim, {}, {}), (std::vector<engine::Token>{100, 101, 102}));
}
