// Programming languages: detection from an IDE's language id or a file path, comment syntax
// (for context blocks) and the words that end a completion.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace codepilot::completion {

struct Language {
    std::string id;                 // canonical id, e.g. "python"
    std::string line_comment;       // "#", "//", "--", ...; empty when the language has none
    std::string block_open, block_close;  // for languages without line comments (html, css)
    bool indentation_blocks = false;      // blocks are delimited by indentation (python, yaml)
    std::vector<std::string> stop_words;  // a completion ends where one of these would start a line

    // "# text" in this language's comment syntax.
    std::string comment(std::string_view text) const;
};

// The language for an IDE language id (VS Code / Tabby ids and common aliases), else for the
// file extension, else plain text. `language_id` may be empty.
const Language& detect_language(std::string_view language_id, std::string_view filepath);
// Nullptr when the id is not known.
const Language* language_by_id(std::string_view id);
const Language& plain_text();
// All known canonical ids (for docs and tests).
std::vector<std::string> known_languages();

}  // namespace codepilot::completion
