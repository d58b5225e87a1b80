// After generation: where a completion should end (line or block), and trimming text that
// repeats what already follows the cursor.
#pragma once

#include <string>

#include "completion/language.h"

namespace codepilot::completion {

enum class CompletionMode {
    line,   // the cursor is inside a line: finish that line
    block,  // the cursor is at an empty line or after a block opener: write a block
};

struct Cursor {
    CompletionMode mode = CompletionMode::line;
    int indent = 0;          // indentation of the cursor's line (tabs count 4)
    int block_limit = 0;     // a later line indented less than this ends the block
    std::string rest_of_line;        // the suffix up to the end of the cursor's line
    std::string next_suffix_line;    // the first non-blank line of the suffix after it, trimmed
};

Cursor analyze_cursor(const std::string& prefix, const std::string& suffix);

// Where the completion `text` ends, or std::string::npos when it has not ended yet. Only
// whole lines are judged, so it can run on partial text during generation (early stop).
size_t completion_end(const std::string& text, const Cursor& cursor, const Language& language);

// The final completion: cut at its end, without text that duplicates the suffix, without
// trailing blank lines.
std::string postprocess(const std::string& text, const Cursor& cursor, const Language& language);

// CRLF handling: clients on Windows send CRLF; the model sees LF; answers go back in CRLF.
bool uses_crlf(const std::string& text);
std::string to_lf(const std::string& text);
std::string to_crlf(const std::string& text);

}  // namespace codepilot::completion
