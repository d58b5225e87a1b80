#include <gtest/gtest.h>

#include "engine/draft.h"

using namespace codepilot::engine;

TEST(NgramDraft, ProposesWhatFollowedTheLastTokensEarlier) {
    //                 0  1  2  3  4  5  6  7  8  9
    std::vector<Token> t = {5, 6, 7, 8, 9, 1, 2, 5, 6, 7};
    EXPECT_EQ(ngram_draft(t, 3), (std::vector<Token>{8, 9, 1}));
    EXPECT_EQ(ngram_draft(t, 1), (std::vector<Token>{8}));
}

TEST(NgramDraft, PrefersTheLongestAndMostRecentMatch) {
    std::vector<Token> t = {1, 2, 3, 4, 9, 9, 3, 4, 7, 1, 2, 3, 4};
    // "1 2 3 4" (4-gram) last occurred at 0, followed by 9.
    EXPECT_EQ(ngram_draft(t, 1), (std::vector<Token>{9}));
    std::vector<Token> u = {3, 4, 8, 0, 3, 4, 7, 0, 3, 4};
    // "0 3 4" last occurred at 3, followed by 7 0.
    EXPECT_EQ(ngram_draft(u, 2), (std::vector<Token>{7, 0}));
}

TEST(NgramDraft, ExtendsLoopsPeriodically) {
    std::vector<Token> t = {1, 2, 3, 2, 3, 2, 3};
    EXPECT_EQ(ngram_draft(t, 5), (std::vector<Token>{2, 3, 2, 3, 2}));
}

TEST(NgramDraft, NothingWithoutAMatch) {
    EXPECT_TRUE(ngram_draft({1, 2, 3, 4, 5}, 4).empty());
    EXPECT_TRUE(ngram_draft({}, 4).empty());
    EXPECT_TRUE(ngram_draft({7}, 4).empty());
}

TEST(DraftBudget, GrowsOnSuccessShrinksAndPausesOnFailure) {
    DraftBudget b(8);
    EXPECT_EQ(b.next(), 4);
    b.record(4, 4);
    EXPECT_EQ(b.next(), 8);
    b.record(8, 3);
    EXPECT_EQ(b.next(), 4);
    b.record(4, 0);
    EXPECT_EQ(b.next(), 2);
    b.record(2, 0);
    EXPECT_EQ(b.next(), 0);  // paused
    for (int i = 0; i < 8; ++i) b.tick();
    EXPECT_EQ(b.next(), 1);
    EXPECT_EQ(DraftBudget(0).next(), 0);
}
