#include <gtest/gtest.h>

#include "engine/slot_choice.h"

using namespace codepilot::engine;

namespace {
std::vector<Token> seq(std::initializer_list<Token> t) { return t; }
}  // namespace

TEST(SlotChoice, ReusesAFreeSlotInPlace) {
    auto a = seq({1, 2, 3, 4}), b = seq({9, 9});
    std::vector<SlotView> slots = {{false, &a, "", 1}, {false, &b, "", 2}};
    auto c = choose_slot(slots, seq({1, 2, 3, 7, 8}), "");
    EXPECT_EQ(c.slot, 0);
    EXPECT_EQ(c.source, 0);
    EXPECT_EQ(c.reuse, 3u);
}

TEST(SlotChoice, CopiesThePrefixOfABusySlotIntoTheLeastRecentlyUsedFreeSlot) {
    auto busy = seq({1, 2, 3, 4, 5}), old = seq({7}), recent = seq({8});
    std::vector<SlotView> slots = {{true, &busy, "", 5}, {false, &recent, "", 4}, {false, &old, "", 1}};
    auto c = choose_slot(slots, seq({1, 2, 3, 4, 6}), "");
    EXPECT_EQ(c.slot, 2);
    EXPECT_EQ(c.source, 0);
    EXPECT_EQ(c.reuse, 4u);
}

TEST(SlotChoice, PrefersAnEmptySlotForUnrelatedPrompts) {
    auto a = seq({1, 2}), empty = seq({});
    std::vector<SlotView> slots = {{false, &a, "", 1}, {false, &empty, "", 2}};
    auto c = choose_slot(slots, seq({5, 6}), "");
    EXPECT_EQ(c.slot, 1);
    EXPECT_EQ(c.reuse, 0u);
}

TEST(SlotChoice, AlwaysLeavesOneTokenToEvaluate) {
    auto a = seq({1, 2, 3});
    std::vector<SlotView> slots = {{false, &a, "", 1}};
    auto c = choose_slot(slots, seq({1, 2, 3}), "");
    EXPECT_EQ(c.reuse, 2u);
}

TEST(SlotChoice, NeverReusesAcrossScopes) {
    auto a = seq({1, 2, 3, 4}), empty = seq({});
    std::vector<SlotView> slots = {{false, &a, "tenant-a", 2}, {false, &empty, "", 1}};
    auto c = choose_slot(slots, seq({1, 2, 3, 4, 5}), "tenant-b");
    EXPECT_EQ(c.reuse, 0u);
    EXPECT_EQ(c.source, -1);
}

TEST(SlotChoice, NoFreeSlot) {
    auto a = seq({1});
    std::vector<SlotView> slots = {{true, &a, "", 1}};
    EXPECT_EQ(choose_slot(slots, seq({1, 2}), "").slot, -1);
}
