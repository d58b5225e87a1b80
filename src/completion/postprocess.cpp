#include "completion/postprocess.h"

#include <algorithm>

namespace codepilot::completion {
namespace {

int indentation(const std::string& line) {
    int width = 0;
    for (char c : line) {
        if (c == ' ') width += 1;
        else if (c == '\t') width += 4;
        else break;
    }
    return width;
}

bool blank(const std::string& line) {
    return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

bool ends_with_opener(const std::string& line) {
    std::string t = trim(line);
    if (t.empty()) return false;
    char c = t.back();
    if (c == ':' || c == '{' || c == '(' || c == '[') return true;
    auto ends = [&](const char* w) {
        std::string s(w);
        return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0;
    };
    return ends("=>") || ends(" do") || ends(" then") || ends("->");
}

bool closing_line(const std::string& trimmed) {
    static const char* closers[] = {"}", "};", "},", ")", ");", "),", "]", "];", "],", "end", "fi", "done", "esac"};
    return std::any_of(std::begin(closers), std::end(closers), [&](const char* c) { return trimmed == c; });
}

bool starts_with_stop_word(const std::string& trimmed, const Language& language) {
    return std::any_of(language.stop_words.begin(), language.stop_words.end(),
                       [&](const std::string& w) { return trimmed.rfind(w, 0) == 0; });
}

}  // namespace

Cursor analyze_cursor(const std::string& prefix, const std::string& suffix) {
    Cursor c;
    size_t nl = prefix.rfind('\n');
    std::string line_before = nl == std::string::npos ? prefix : prefix.substr(nl + 1);
    size_t snl = suffix.find('\n');
    c.rest_of_line = snl == std::string::npos ? suffix : suffix.substr(0, snl);
    if (!c.rest_of_line.empty() && c.rest_of_line.back() == '\r') c.rest_of_line.pop_back();
    if (snl != std::string::npos) {
        size_t pos = snl + 1;
        while (pos < suffix.size()) {
            size_t e = suffix.find('\n', pos);
            std::string line = suffix.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
            if (!blank(line)) {
                c.next_suffix_line = trim(line);
                break;
            }
            if (e == std::string::npos) break;
            pos = e + 1;
        }
    }
    c.indent = indentation(line_before);
    bool text_before = !blank(line_before);
    bool text_after = !blank(c.rest_of_line);
    if (!text_before) {
        c.mode = CompletionMode::block;
        c.block_limit = c.indent;
        // At an empty line right after an opener, the body may start deeper than the cursor.
        std::string_view prev = nl == std::string::npos ? std::string_view() : std::string_view(prefix).substr(0, nl);
        size_t pnl = prev.rfind('\n');
        std::string prev_line(pnl == std::string_view::npos ? prev : prev.substr(pnl + 1));
        if (ends_with_opener(prev_line)) c.block_limit = std::min(c.indent, indentation(prev_line) + 1);
    } else if (!text_after && ends_with_opener(line_before)) {
        c.mode = CompletionMode::block;
        c.block_limit = c.indent + 1;
    } else {
        c.mode = CompletionMode::line;
    }
    return c;
}

size_t completion_end(const std::string& text, const Cursor& cursor, const Language& language) {
    if (cursor.mode == CompletionMode::line) {
        size_t nl = text.find('\n');
        return nl;  // npos while the line goes on
    }
    // Block: judge each complete line after the first (which continues the cursor's line).
    size_t pos = text.find('\n');
    if (pos == std::string::npos) return std::string::npos;
    int blank_run = 0;
    int stop_limit = std::max(cursor.block_limit, 1);
    while (true) {
        size_t start = pos + 1;
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) return std::string::npos;  // line not complete yet
        std::string line = text.substr(start, nl - start);
        if (blank(line)) {
            if (++blank_run >= 2) return pos;  // two blank lines: the block is over
        } else {
            blank_run = 0;
            int ind = indentation(line);
            std::string t = trim(line);
            if (ind < cursor.block_limit) {
                // A closing line ends the block; keep it unless the suffix already closes it.
                if (closing_line(t) && t != cursor.next_suffix_line) return nl;
                return pos;
            }
            if (ind < stop_limit && starts_with_stop_word(t, language)) return pos;
        }
        pos = nl;
    }
}

std::string postprocess(const std::string& text, const Cursor& cursor, const Language& language) {
    std::string out = text;
    size_t end = completion_end(out, cursor, language);
    if (end != std::string::npos) out.erase(end);

    if (cursor.mode == CompletionMode::line) {
        // Drop the longest tail that repeats the start of the rest of the line.
        const std::string& rest = cursor.rest_of_line;
        for (size_t k = std::min(out.size(), rest.size()); k > 0; --k) {
            if (out.compare(out.size() - k, k, rest, 0, k) == 0) {
                out.erase(out.size() - k);
                break;
            }
        }
        while (!out.empty() && (out.back() == ' ' || out.back() == '\t') && blank(cursor.rest_of_line)) out.pop_back();
        return out;
    }
    // Block: drop trailing blank lines, then a last line that the suffix already has.
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t' || out.back() == '\r'))
        out.pop_back();
    size_t last_nl = out.rfind('\n');
    if (last_nl != std::string::npos && !cursor.next_suffix_line.empty() &&
        trim(out.substr(last_nl + 1)) == cursor.next_suffix_line) {
        out.erase(last_nl);
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\t')) out.pop_back();
    }
    return out;
}

bool uses_crlf(const std::string& text) { return text.find("\r\n") != std::string::npos; }

std::string to_lf(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i)
        if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) out += text[i];
    return out;
}

std::string to_crlf(const std::string& text) {
    std::string out;
    out.reserve(text.size() + text.size() / 16);
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
        out += text[i];
    }
    return out;
}

}  // namespace codepilot::completion
