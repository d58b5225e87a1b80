#include "engine/slot_choice.h"

#include <gtest/gtest.h>

using namespace codepilot::engine;

namespace {
std::vector<Token> seq(std::initializer_list<Token> t) {
    return t;
}
} // namespace

TEST(SlotChoice, ReusesAFreeSlotInPlace) {
    auto a = seq({1, 2, 3, 4}), b = seq({9, 9});
    std::vector<SlotView> slots = {{false, &a, "", 1}, {false, &b, "", 2}};
    auto c = choose_slot(slots, seq({1, 2, 3, 7, 8}), "");
    EXPECT_EQ(c.slot, 0);
    EXPECT_EQ(c.source, 0);
    EXPECT_EQ(c.plan.reused(), 3u);
}

TEST(SlotChoice, CopiesThePrefixOfABusySlotIntoTheLeastRecentlyUsedFreeSlot) {
    auto busy = seq({1, 2, 3, 4, 5}), old = seq({7}), recent = seq({8});
    std::vector<SlotView> slots = {{true, &busy, "", 5}, {false, &recent, "", 4}, {false, &old, "", 1}};
    auto c = choose_slot(slots, seq({1, 2, 3, 4, 6}), "");
    EXPECT_EQ(c.slot, 2);
    EXPECT_EQ(c.source, 0);
    EXPECT_EQ(c.plan.reused(), 4u);
}

TEST(SlotChoice, PrefersAnEmptySlotForUnrelatedPrompts) {
    auto a = seq({1, 2}), empty = seq({});
    std::vector<SlotView> slots = {{false, &a, "", 1}, {false, &empty, "", 2}};
    auto c = choose_slot(slots, seq({5, 6}), "");
    EXPECT_EQ(c.slot, 1);
    EXPECT_EQ(c.plan.reused(), 0u);
}

TEST(SlotChoice, AlwaysLeavesOneTokenToEvaluate) {
    auto a = seq({1, 2, 3});
    std::vector<SlotView> slots = {{false, &a, "", 1}};
    auto c = choose_slot(slots, seq({1, 2, 3}), "");
    EXPECT_EQ(c.plan.reused(), 2u);
}

TEST(SlotChoice, NeverReusesAcrossScopes) {
    auto a = seq({1, 2, 3, 4}), empty = seq({});
    std::vector<SlotView> slots = {{false, &a, "tenant-a", 2}, {false, &empty, "", 1}};
    auto c = choose_slot(slots, seq({1, 2, 3, 4, 5}), "tenant-b");
    EXPECT_EQ(c.plan.reused(), 0u);
    EXPECT_EQ(c.source, -1);
}

TEST(SlotChoice, NoFreeSlot) {
    auto a = seq({1});
    std::vector<SlotView> slots = {{true, &a, "", 1}};
    EXPECT_EQ(choose_slot(slots, seq({1, 2}), "").slot, -1);
}

TEST(ReusePlan, MovesTheRestLeftAfterADeletion) {
    // Cached: 1..4, then 50 and 51 (deleted now), then 10..19; the prompt ends with 99.
    std::vector<Token> cached = {1, 2, 3, 4, 50, 51, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    std::vector<Token> prompt = {1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 99};
    auto plan = plan_reuse(cached, prompt, 4);
    EXPECT_EQ(plan.prefix, 4u);
    ASSERT_EQ(plan.chunks.size(), 1u);
    EXPECT_EQ(plan.chunks[0].from, 6u);
    EXPECT_EQ(plan.chunks[0].to, 4u);
    EXPECT_EQ(plan.chunks[0].length, 10u);
    EXPECT_EQ(plan.reused(), 14u);
}

TEST(ReusePlan, ChunksShorterThanTheMinimumAreEvaluated) {
    std::vector<Token> cached = {1, 2, 9, 3, 4, 5, 8, 6, 7, 8, 9, 10, 11};
    std::vector<Token> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    auto plan = plan_reuse(cached, prompt, 4);
    // 3 4 5 is too short; 6..11 (six tokens) is reused only after 3 4 5, which is not cached
    // in a reusable run: the walk stops where the prompt needs tokens the cache lacks.
    EXPECT_EQ(plan.prefix, 2u);
    EXPECT_TRUE(plan.chunks.empty());
    auto loose = plan_reuse(cached, prompt, 3);
    ASSERT_EQ(loose.chunks.size(), 2u);
    EXPECT_EQ(loose.reused(), 11u);
}

TEST(ReusePlan, TextInsertedBeforeARunEndsThePlan) {
    std::vector<Token> cached = {1, 2, 3, 10, 11, 12, 13, 14, 15};
    std::vector<Token> prompt = {1, 2, 3, 77, 10, 11, 12, 13, 14, 15, 16};
    EXPECT_EQ(plan_reuse(cached, prompt, 2).reused(), 3u);
}

TEST(ReusePlan, TheLastPromptTokenIsNeverReused) {
    std::vector<Token> cached = {1, 2, 40, 3, 4, 5, 6};
    std::vector<Token> prompt = {1, 2, 3, 4, 5, 6};
    auto plan = plan_reuse(cached, prompt, 2);
    EXPECT_EQ(plan.reused(), 5u);
    EXPECT_EQ(plan_reuse(cached, prompt, 0).reused(), 2u); // 0: the prefix only
}

TEST(SlotChoice, CountsShiftedChunksWhenChoosingTheSource) {
    auto prefix_only = seq({1, 2, 3, 60, 61, 62, 63, 64});
    auto shifted = seq({1, 2, 90, 3, 4, 5, 6, 7, 8, 9});
    std::vector<SlotView> slots = {{false, &prefix_only, "", 1}, {false, &shifted, "", 2}};
    auto prompt = seq({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    EXPECT_EQ(choose_slot(slots, prompt, "").slot, 0); // exact prefix only: 3 tokens
    auto c = choose_slot(slots, prompt, "", 4);
    EXPECT_EQ(c.slot, 1);
    EXPECT_EQ(c.plan.prefix, 2u);
    EXPECT_EQ(c.plan.reused(), 9u);
}
