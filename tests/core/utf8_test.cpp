#include <gtest/gtest.h>

#include "core/utf8.h"

using namespace codepilot;

TEST(Utf8, DetectsIncompleteTail) {
    EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
    EXPECT_EQ(incomplete_utf8_tail("ab\xE2\x82"), 2u);   // first two bytes of €
    EXPECT_EQ(incomplete_utf8_tail("ab\xE2\x82\xAC"), 0u);
    EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);  // 3 of 4 bytes of an emoji
    EXPECT_EQ(incomplete_utf8_tail("\xC3"), 1u);
}

TEST(Utf8, ValidatesAndSanitizes) {
    EXPECT_TRUE(is_valid_utf8("héllo €"));
    EXPECT_FALSE(is_valid_utf8("bad \xFF byte"));
    EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));        // overlong
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));    // surrogate
    EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
    EXPECT_EQ(sanitize_utf8("ok €"), "ok €");
}
