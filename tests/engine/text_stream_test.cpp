#include <gtest/gtest.h>

#include "engine/text_stream.h"

using codepilot::engine::TextStream;

TEST(TextStream, PassesTextThroughWithoutStops) {
    TextStream s({});
    EXPECT_EQ(s.push("hello"), "hello");
    EXPECT_EQ(s.push(" world"), " world");
    EXPECT_EQ(s.flush(), "");
    EXPECT_FALSE(s.stopped());
}

TEST(TextStream, StopStringSpanningTokensIsCutAndNeverShown) {
    TextStream s({"\n\n"});
    EXPECT_EQ(s.push("return x"), "return x");
    EXPECT_EQ(s.push("\n"), "");  // could be the start of the stop string: held back
    EXPECT_EQ(s.push("\nmore"), "");
    EXPECT_TRUE(s.stopped());
    EXPECT_EQ(s.flush(), "");
}

TEST(TextStream, HeldBackPrefixIsReleasedWhenItDoesNotBecomeAStop) {
    TextStream s({"</code>"});
    EXPECT_EQ(s.push("a </co"), "a ");
    EXPECT_EQ(s.push("unt"), "</count");
    EXPECT_FALSE(s.stopped());
}

TEST(TextStream, EarliestOfSeveralStopsWins) {
    TextStream s({"END", "x"});
    EXPECT_EQ(s.push("abc x END"), "abc ");
    EXPECT_TRUE(s.stopped());
    EXPECT_EQ(s.push("more"), "");
}

TEST(TextStream, IncompleteUtf8IsHeldUntilComplete) {
    TextStream s({});
    EXPECT_EQ(s.push("price: \xE2\x82"), "price: ");
    EXPECT_EQ(s.push("\xAC"), "\xE2\x82\xAC");
}

TEST(TextStream, FlushReplacesATruncatedSequence) {
    TextStream s({});
    EXPECT_EQ(s.push("a\xE2\x82"), "a");
    EXPECT_EQ(s.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TextStream, HeldStopPrefixIsFlushedAtTheEnd) {
    TextStream s({"STOP"});
    EXPECT_EQ(s.push("abc ST"), "abc ");
    EXPECT_EQ(s.flush(), "ST");
}
