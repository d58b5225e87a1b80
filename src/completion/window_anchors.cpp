// Content-defined line anchors: where a cut prefix begins, chosen by the text itself, so
// that it stays put while a client's window slides over the file.
#include "completion/completion.h"

#include <string_view>
#include <vector>

namespace codepilot::completion {
namespace {

constexpr uint64_t kAnchorEvery = 4; // about one line in four is an anchor

uint64_t fnv1a(uint64_t h, std::string_view text) {
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

// Line starts of `text` (byte offsets), in order; a text ending in '\n' has no empty last line.
std::vector<size_t> line_starts(std::string_view text) {
    std::vector<size_t> out;
    if (text.empty()) return out;
    out.push_back(0);
    for (size_t i = text.find('\n'); i != std::string_view::npos && i + 1 < text.size();
         i = text.find('\n', i + 1))
        out.push_back(i + 1);
    return out;
}

std::string_view line_at(std::string_view text, const std::vector<size_t>& starts, size_t i) {
    size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
    return text.substr(starts[i], end - starts[i]);
}

// Line i (> 0: its predecessor must be in the text) is an anchor.
bool anchor_at(std::string_view text, const std::vector<size_t>& starts, size_t i) {
    return i > 0 && is_anchor_line(line_at(text, starts, i - 1), line_at(text, starts, i));
}

} // namespace

bool is_anchor_line(std::string_view previous, std::string_view line) {
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
            s.remove_suffix(1);
        return s;
    };
    uint64_t h = fnv1a(fnv1a(14695981039346656037ull, trim(previous)), "\n");
    h = fnv1a(h, trim(line));
    return (h >> 17) % kAnchorEvery == 0;
}

size_t anchored_prefix_start(std::string_view prefix, size_t from, size_t max_skip_lines) {
    auto starts = line_starts(prefix);
    size_t first = 0;
    while (first < starts.size() && starts[first] < from) ++first;
    for (size_t i = first; i < starts.size() && i - first <= max_skip_lines; ++i)
        if (anchor_at(prefix, starts, i)) return starts[i];
    return from;
}

} // namespace codepilot::completion
