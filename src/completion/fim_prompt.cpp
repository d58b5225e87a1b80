// FIM prompt layouts and the budgeted prompt with context snippets.
#include "completion/completion.h"
#include "core/utf8.h"

#include <algorithm>

namespace codepilot::completion {

const char* to_string(FimFamily family) {
    switch (family) {
    case FimFamily::starcoder:
        return "starcoder";
    case FimFamily::deepseek_coder:
        return "deepseek-coder";
    case FimFamily::codellama:
        return "codellama";
    case FimFamily::qwen_coder:
        return "qwen-coder";
    case FimFamily::codegemma:
        return "codegemma";
    case FimFamily::codestral:
        return "codestral";
    case FimFamily::generic:
        return "generic";
    }
    return "generic";
}

FimFamily detect_family(const std::string& prefix_text, const std::string& file_sep_text) {
    if (prefix_text == "<fim_prefix>") return FimFamily::starcoder;
    if (prefix_text == "<｜fim▁begin｜>") return FimFamily::deepseek_coder;
    if (prefix_text == "<PRE>" || prefix_text == "▁<PRE>" || prefix_text == " <PRE>")
        return FimFamily::codellama;
    if (prefix_text == "[PREFIX]") return FimFamily::codestral;
    if (prefix_text == "<|fim_prefix|>")
        return file_sep_text == "<|file_separator|>" ? FimFamily::codegemma : FimFamily::qwen_coder;
    return FimFamily::generic;
}

FimLayout default_layout(FimFamily family) {
    return family == FimFamily::codestral ? FimLayout::spm : FimLayout::psm;
}

bool parse_custom_template(const std::string& text, CustomTemplate& out) {
    auto p = text.find("{prefix}");
    auto s = text.find("{suffix}");
    if (p == std::string::npos || s == std::string::npos) return false;
    if (text.find("{prefix}", p + 1) != std::string::npos ||
        text.find("{suffix}", s + 1) != std::string::npos)
        return false;
    out.suffix_first = s < p;
    size_t first = std::min(p, s), second = std::max(p, s);
    out.before_prefix = text.substr(0, first);
    out.between = text.substr(first + 8, second - first - 8);
    out.after_suffix = text.substr(second + 8);
    return true;
}

namespace {

void append(std::vector<Token>& out, const std::vector<Token>& more) {
    out.insert(out.end(), more.begin(), more.end());
}

// Lines of `text` with their newlines, from the cursor outwards, tokenized one by one and
// taken while they fit. `from_end`: the prefix (nearest lines are last).
class LineTaker {
public:
    LineTaker(const std::string& text, bool from_end, const Tokenizer& tokenize)
        : text_(text), from_end_(from_end), tokenize_(tokenize), edge_(from_end ? text.size() : 0) {}

    // Takes lines while their tokens fit in `budget`; returns the tokens used.
    int take(int budget) {
        int used = 0;
        while (!done()) {
            size_t begin, end;
            if (from_end_) {
                end = edge_;
                size_t nl = end >= 2 ? text_.rfind('\n', end - 2) : std::string::npos;
                begin = (end == 0 || nl == std::string::npos) ? 0 : nl + 1;
            } else {
                begin = edge_;
                size_t nl = text_.find('\n', begin);
                end = nl == std::string::npos ? text_.size() : nl + 1;
            }
            int left = budget - used;
            if (left <= 0) break;
            // A line far longer than the budget cannot fit: do not tokenize megabytes.
            if (end - begin > static_cast<size_t>(left) * 16) {
                if (taken_ == 0) partial_line(begin, end, left, used);
                exhausted_ = true;
                break;
            }
            int n = static_cast<int>(tokenize_(text_.substr(begin, end - begin)).size());
            if (n > left) {
                if (taken_ == 0) partial_line(begin, end, left, used);
                exhausted_ = true;
                break;
            }
            used += n;
            ++taken_;
            edge_ = from_end_ ? begin : end;
        }
        return used;
    }

    bool done() const { return exhausted_ || partial_ || (from_end_ ? edge_ == 0 : edge_ >= text_.size()); }
    std::string kept() const {
        std::string out = from_end_ ? text_.substr(edge_) : text_.substr(0, edge_);
        return from_end_ ? head_cut_ + out : out + head_cut_;
    }
    void reopen() { exhausted_ = false; }

    // Prefix only: moves the start forward to an anchor line (window anchors), giving back
    // at most a quarter of the lines kept, unless all of the text was taken. Returns the
    // tokens given back.
    int anchor_start() {
        if (!from_end_ || partial_ || edge_ == 0) return 0;
        auto kept_lines = static_cast<size_t>(
            std::count(text_.begin() + static_cast<std::ptrdiff_t>(edge_), text_.end(), '\n'));
        if (kept_lines < 4) return 0;
        size_t start = edge_;
        edge_ = anchored_prefix_start(text_, edge_, kept_lines / 4);
        exhausted_ = true; // never grow back past the anchored start
        return edge_ == start ? 0 : static_cast<int>(tokenize_(text_.substr(start, edge_ - start)).size());
    }

private:
    // The line at the cursor is longer than the budget: keep the part next to the cursor.
    void partial_line(size_t begin, size_t end, int left, int& used) {
        size_t keep = std::min(end - begin, static_cast<size_t>(left) * 2);
        std::string part = from_end_ ? text_.substr(end - keep, keep) : text_.substr(begin, keep);
        if (from_end_) {
            // Do not start inside a UTF-8 sequence.
            size_t skip = 0;
            while (skip < part.size() && (static_cast<unsigned char>(part[skip]) & 0xC0) == 0x80) ++skip;
            part.erase(0, skip);
        } else {
            part.erase(part.size() - incomplete_utf8_tail(part));
        }
        // Trimmed from the far end: the text next to the cursor is what the model needs (the
        // suffix was trimmed at the cursor; seen reading code a fuzz_fim_prompt finding showed).
        while (!part.empty() && static_cast<int>(tokenize_(part).size()) > left) {
            const size_t cut = part.size() / 4 + 1;
            if (from_end_) {
                part.erase(0, cut);
                while (!part.empty() && (static_cast<unsigned char>(part[0]) & 0xC0) == 0x80)
                    part.erase(0, 1);
            } else {
                part.erase(part.size() - cut);
                part.erase(part.size() - incomplete_utf8_tail(part));
            }
        }
        used += static_cast<int>(tokenize_(part).size());
        head_cut_ = part; // the rest of this line, and everything beyond it, is given up
        partial_ = true;
        ++taken_;
    }

    const std::string& text_;
    bool from_end_;
    const Tokenizer& tokenize_;
    size_t edge_;
    int taken_ = 0;
    bool exhausted_ = false;
    bool partial_ = false;
    std::string head_cut_;
};

// A path as it appears in the prompt: one line. A newline in a path from the request would
// end the path line early (and once cut a snippet's kept text before its path ended).
std::string path_line(const std::string& path) {
    std::string line = path;
    std::replace_if(
        line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
    return line;
}

std::string snippet_block(const Language& language, const FileSnippet& s) {
    std::string out = language.comment("Path: " + path_line(s.path)) + "\n";
    size_t pos = 0;
    while (pos < s.text.size()) {
        size_t nl = s.text.find('\n', pos);
        std::string line = s.text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        out += language.comment(line) + "\n";
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    return out;
}

std::string repo_block_text(const FileSnippet& s) {
    std::string text = path_line(s.path) + "\n" + s.text;
    if (!text.empty() && text.back() != '\n') text += '\n';
    return text;
}

// The largest head of `text` (whole lines) whose tokens fit in `budget`; empty if none.
std::string fit_lines(const std::string& text, int budget, const Tokenizer& tokenize, int& used) {
    std::string kept;
    size_t pos = 0;
    used = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        size_t end = nl == std::string::npos ? text.size() : nl + 1;
        if (end - pos > static_cast<size_t>(budget - used) * 16) break;
        int n = static_cast<int>(tokenize(text.substr(pos, end - pos)).size());
        if (used + n > budget) break;
        used += n;
        kept.append(text, pos, end - pos);
        pos = end;
    }
    return kept;
}

} // namespace

BuiltPrompt build_prompt(const FimSpec& spec, const CustomTemplate* custom, const Language& language,
                         const CodeContext& ctx, const PromptBudget& budget, const Tokenizer& tokenize,
                         const Tokenizer& tokenize_special) {
    BuiltPrompt out;
    const auto& fim = spec.tokens;
    // Repo-level blocks need something to say: context snippets or the current file's path.
    out.repo_level = custom == nullptr && fim.repo_name >= 0 && fim.file_sep >= 0 &&
                     (!ctx.snippets.empty() || !ctx.filepath.empty());

    // Fixed parts first: they are always sent.
    std::vector<Token> middle_tokens =
        ctx.middle_prompt.empty() ? std::vector<Token>{} : tokenize(ctx.middle_prompt);
    std::vector<Token> repo_head, file_head;
    if (out.repo_level) {
        repo_head.push_back(fim.repo_name);
        append(repo_head, tokenize(spec.repo_name + "\n"));
        file_head.push_back(fim.file_sep);
        append(file_head,
               tokenize((ctx.filepath.empty() ? std::string("untitled") : path_line(ctx.filepath)) + "\n"));
        // (untitled: snippets were sent for a file without a path)
    }
    // BOS, the three FIM tokens and one spare; the newline put before the prefix; middle, repo heads.
    int fixed = 5 + (budget.newline_before_prefix ? 1 : 0) +
                static_cast<int>(middle_tokens.size() + repo_head.size() + file_head.size());
    int available = std::max(16, budget.max_tokens - fixed);

    LineTaker prefix(ctx.prefix, true, tokenize);
    LineTaker suffix(ctx.suffix, false, tokenize);
    int used = prefix.take(static_cast<int>(available * budget.prefix_share));
    used += suffix.take(static_cast<int>(available * budget.suffix_share));

    std::vector<std::vector<Token>> snippet_tokens; // repo-level blocks
    std::string comment_blocks;                     // otherwise: comments ahead of the prefix
    for (const auto& s : ctx.snippets) {
        int left = available - used;
        if (left <= 8) break;
        std::string block = out.repo_level ? repo_block_text(s) : snippet_block(language, s);
        const int separator = out.repo_level ? 1 : 0; // the <file_sep> before a repo-level block
        int n = 0;
        std::string kept = fit_lines(block, left - separator, tokenize, n);
        if (kept.empty() || kept.find('\n') == kept.rfind('\n')) continue; // not even a header and one line
        used += n + separator;
        if (out.repo_level) {
            out.snippets_used.push_back({s.path, kept.substr(kept.find('\n') + 1)});
        } else { // the original lines that were kept (the block adds a header line)
            size_t lines = static_cast<size_t>(std::count(kept.begin(), kept.end(), '\n')) - 1;
            size_t end = 0;
            for (size_t i = 0; i < lines && end != std::string::npos; ++i) end = s.text.find('\n', end) + 1;
            out.snippets_used.push_back(
                {s.path, end == 0 || end > s.text.size() ? s.text : s.text.substr(0, end)});
        }
        if (out.repo_level)
            snippet_tokens.push_back(tokenize(kept));
        else
            comment_blocks += kept;
    }
    // What is left goes back to the code around the cursor.
    prefix.reopen();
    used += prefix.take(available - used);
    if (budget.anchor_prefix_start) used -= prefix.anchor_start();
    suffix.reopen();
    used += suffix.take(available - used);

    out.prefix_used = prefix.kept();
    out.suffix_used = suffix.kept();
    if (budget.newline_before_prefix) {
        size_t text = out.prefix_used.find_first_not_of(" \t\r\n");
        size_t line = text == std::string::npos ? std::string::npos : out.prefix_used.rfind('\n', text);
        if (line != std::string::npos) out.prefix_used.erase(0, line + 1); // blank lines at the start
        if (!out.prefix_used.empty()) out.prefix_used.insert(0, "\n");
    }
    std::string prefix_text = comment_blocks + out.prefix_used;

    auto& t = out.tokens;
    if (fim.add_bos && fim.bos >= 0) t.push_back(fim.bos);
    if (out.repo_level) {
        append(t, repo_head);
        for (const auto& block : snippet_tokens) {
            t.push_back(fim.file_sep);
            append(t, block);
        }
        append(t, file_head);
    }
    auto prefix_tokens = tokenize(prefix_text);
    auto suffix_tokens = tokenize(out.suffix_used);
    if (custom != nullptr) {
        append(t, tokenize_special(custom->before_prefix));
        append(t, custom->suffix_first ? suffix_tokens : prefix_tokens);
        append(t, tokenize_special(custom->between));
        append(t, custom->suffix_first ? prefix_tokens : suffix_tokens);
        append(t, tokenize_special(custom->after_suffix));
    } else if (spec.layout == FimLayout::spm) {
        t.push_back(fim.suffix);
        append(t, suffix_tokens);
        t.push_back(fim.prefix);
        append(t, prefix_tokens);
        if (fim.middle >= 0) t.push_back(fim.middle);
    } else {
        t.push_back(fim.prefix);
        append(t, prefix_tokens);
        t.push_back(fim.suffix);
        append(t, suffix_tokens);
        t.push_back(fim.middle);
    }
    append(t, middle_tokens);
    return out;
}

} // namespace codepilot::completion
