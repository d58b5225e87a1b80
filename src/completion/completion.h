// Code-completion logic, pure (no I/O): FIM prompt layouts per model family, context
// snippets within a token budget, language rules, and post-processing of completions.
#pragma once

#include "completion/language.h"
#include "engine/engine.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace codepilot::completion {

using engine::Token;

// --- FIM layouts ----------------------------------------------------------------------------

enum class FimLayout {
    psm, // [repo blocks] <prefix> prefix <suffix> suffix <middle> (most models)
    spm, // [repo blocks] <suffix> suffix <prefix> prefix <middle> (stable suffix first; Codestral)
};

// Model families whose FIM conventions differ; detected from the vocabulary's FIM tokens.
enum class FimFamily { starcoder, deepseek_coder, codellama, qwen_coder, codegemma, codestral, generic };

const char* to_string(FimFamily family);
FimFamily detect_family(const std::string& prefix_token_text, const std::string& file_sep_token_text);
FimLayout default_layout(FimFamily family);

struct FimSpec {
    engine::FimTokens tokens;
    FimFamily family = FimFamily::generic;
    FimLayout layout = FimLayout::psm;
    std::string repo_name = "repo"; // after <repo_name> when the vocabulary has it
};

// A custom template from config: "{prefix}", "{suffix}" placeholders around literal text
// that may name special tokens, e.g. "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>".
struct CustomTemplate {
    std::string before_prefix, between, after_suffix; // literal parts
    bool suffix_first = false;
};
// Parses a template; false when it lacks exactly one {prefix} and one {suffix}.
bool parse_custom_template(const std::string& text, CustomTemplate& out);

// --- Window anchors ---------------------------------------------------------------------------
// Content-defined line boundaries (about one line in four, by a hash of the line and the one
// before it) mark where a cut prefix begins, so that edge stays put while a client's window
// slides over the file and the KV cache behind it stays valid (docs/completion.md).
bool is_anchor_line(std::string_view previous, std::string_view line);
// The first anchor line at or after offset `from` (a line start), skipping at most
// `max_skip_lines` lines; `from` if there is none.
size_t anchored_prefix_start(std::string_view prefix, size_t from, size_t max_skip_lines);

// --- Prompt with context and budget -----------------------------------------------------------

struct FileSnippet {
    std::string path;
    std::string text;
};

struct CodeContext {
    std::string prefix;                // text before the cursor
    std::string suffix;                // text after the cursor
    std::string middle_prompt;         // text placed after the middle token (llama.cpp /infill `prompt`)
    std::string filepath;              // of the file being edited (repo blocks need it or snippets)
    std::vector<FileSnippet> snippets; // in priority order, most important first
};

using Tokenizer = std::function<std::vector<Token>(const std::string&)>; // plain text, no specials

struct PromptBudget {
    int max_tokens = 1536;     // the whole prompt
    double prefix_share = 0.6; // first pass: prefix lines up to this share
    double suffix_share = 0.2; // then suffix lines up to this share; snippets get the rest
    // When the prefix is cut, it starts at an anchor line (window anchors above), giving back
    // at most a quarter of the lines kept: the prompt's start then stays put while the
    // developer types or the window slides, and so does the cache.
    bool anchor_prefix_start = true;
    // The prefix starts with a newline, after any blank lines at its start are dropped: its
    // first line then has the tokens it had while it followed another line, so a window
    // that lost its first line is the cached tokens minus that line's (shifted reuse).
    bool newline_before_prefix = false;
};

struct BuiltPrompt {
    std::vector<Token> tokens;
    std::string prefix_used; // the prefix text kept (cut at a line boundary)
    std::string suffix_used;
    std::vector<FileSnippet> snippets_used;
    bool repo_level = false; // snippets as <file_sep> blocks (else as comments)
};

// Keeps the prefix lines nearest the cursor, then suffix lines, then whole snippets in
// priority order (a snippet that does not fit is cut at a line boundary), then gives what
// is left back to prefix and suffix. Never tokenizes more of a huge prefix than it keeps.
BuiltPrompt build_prompt(const FimSpec& spec, const CustomTemplate* custom, const Language& language,
                         const CodeContext& context, const PromptBudget& budget, const Tokenizer& tokenize,
                         const Tokenizer& tokenize_special);

} // namespace codepilot::completion
