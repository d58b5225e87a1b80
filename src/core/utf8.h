// UTF-8 helpers: model output is bytes, JSON must be valid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace codepilot {

// Number of bytes at the end of `text` that begin a multi-byte sequence not yet complete.
size_t incomplete_utf8_tail(std::string_view text);
// True when `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);
// Replaces each ill-formed sequence with U+FFFD.
std::string sanitize_utf8(std::string_view text);

}  // namespace codepilot
