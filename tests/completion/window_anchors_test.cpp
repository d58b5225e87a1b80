// Window anchors: content-defined line boundaries that stay put while a window slides.
#include "completion/completion.h"

#include <gtest/gtest.h>
#include <string>
#include <vector>

using namespace codepilot::completion;

namespace {

std::vector<std::string> file_lines(int n) {
    std::vector<std::string> lines;
    for (int i = 0; i < n; ++i)
        lines.push_back(i % 9 == 8 ? "\n"
                                   : "    value_" + std::to_string(i) + " = compute(" +
                                         std::to_string(i * 3) + ")\n");
    return lines;
}

std::string join(const std::vector<std::string>& lines, int from, int to) {
    std::string out;
    for (int i = std::max(from, 0); i < to && i < static_cast<int>(lines.size()); ++i)
        out += lines[static_cast<size_t>(i)];
    return out;
}

size_t offset_of_line(const std::vector<std::string>& lines, int from, int line) {
    return join(lines, from, line).size();
}

} // namespace

TEST(WindowAnchors, AboutOneLineInFourIsAnAnchorAndTheChoiceDependsOnContentOnly) {
    auto lines = file_lines(2000);
    int anchors = 0;
    for (size_t i = 1; i < lines.size(); ++i) anchors += is_anchor_line(lines[i - 1], lines[i]);
    EXPECT_GT(anchors, 350);
    EXPECT_LT(anchors, 650);
    EXPECT_EQ(is_anchor_line("a\n", "b\n"), is_anchor_line("a", "b  \r\n")); // trailing blanks do not count
}

TEST(WindowAnchors, ACutPrefixStartStaysPutAsTheWindowSlides) {
    auto lines = file_lines(400);
    int moves = 0, jumps = 0;
    size_t previous = std::string::npos;
    for (int top = 0; top < 200; ++top) {
        // A 100-line window of which the last 60 lines fit: the cut falls at window line 40.
        std::string window = join(lines, top, top + 100);
        size_t from = offset_of_line(lines, top, top + 40);
        size_t absolute = offset_of_line(lines, 0, top) + anchored_prefix_start(window, from, 15);
        if (previous != std::string::npos) {
            ++moves;
            if (absolute != previous) ++jumps;
        }
        previous = absolute;
    }
    // It moves only when the window's cut passes an anchor line (about one line in four).
    EXPECT_LT(jumps, moves / 2) << jumps << " of " << moves;
    EXPECT_GT(jumps, 0);
}

TEST(WindowAnchors, ACutPrefixStartsAtAnAnchorLine) {
    auto lines = file_lines(100);
    std::string prefix = join(lines, 0, 100);
    size_t from = offset_of_line(lines, 0, 30);
    size_t start = anchored_prefix_start(prefix, from, 10);
    ASSERT_GE(start, from);
    ASSERT_LE(start, offset_of_line(lines, 0, 41));
    if (start != from) { // an anchor line: its predecessor and itself hash to an anchor
        size_t line = 0;
        while (offset_of_line(lines, 0, static_cast<int>(line)) < start) ++line;
        EXPECT_TRUE(is_anchor_line(lines[line - 1], lines[line]));
    }
    EXPECT_EQ(anchored_prefix_start(prefix, from, 0) == from, !is_anchor_line(lines[29], lines[30]));
}
