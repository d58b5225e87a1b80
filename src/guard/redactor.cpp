// Secret redaction on RE2: automata that run in time linear in the input, with no recursion
// and no backtracking, so a 2 MiB prompt cannot stall the caller or exhaust its stack.
#include "guard/guard.h"

#include <cctype>
#include <memory>
#include <re2/re2.h>
#include <vector>

namespace codepilot::guard {
namespace {

// No upper bounds on the secret itself: they were there because libstdc++'s regex recursed per
// repetition, and they let a token longer than the bound slip through (a 400-character GitHub
// token matched nothing). The bounds left are part of what a rule means (a name suffix, spaces).
struct Rule {
    const char* kind;
    std::unique_ptr<RE2> pattern;
    int group; // the part to mask (0: the whole match)
};

std::unique_ptr<RE2> compile(const char* pattern, bool icase) {
    RE2::Options options;
    options.set_case_sensitive(!icase);
    options.set_encoding(RE2::Options::EncodingLatin1); // bytes, as before: prompts need not be valid UTF-8
    options.set_log_errors(false);
    return std::make_unique<RE2>(pattern, options);
}

const std::vector<Rule>& rules() {
    static const std::vector<Rule> all = [] {
        auto r = [](const char* kind, const char* pattern, int group = 0, bool icase = false) {
            return Rule{kind, compile(pattern, icase), group};
        };
        std::vector<Rule> v;
        v.push_back(r("aws_access_key", R"(\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)"));
        v.push_back(r("github_token", R"(\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b)"));
        v.push_back(r("slack_token", R"(\bxox[abpors]-[A-Za-z0-9-]{10,}\b)"));
        v.push_back(r("codepilot_key", R"(\bcpk_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}\b)"));
        v.push_back(r("jwt", R"(\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b)"));
        v.push_back(r("bearer_token", R"((?:[Bb]earer)[ \t]{1,8}([A-Za-z0-9._~+/=-]{16,}))", 1));
        v.push_back(r("url_password", R"([a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@]+:([^@\s/]+)@)", 1));
        // password = "…", api_key: '…', SECRET_TOKEN=… (the value only)
        v.push_back(r(
            "assigned_secret",
            R"((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token|client[_-]?secret)[A-Za-z0-9_-]{0,64}["']?[ \t]{0,8}[:=][ \t]{0,8}["']?([^\s"',;]{6,}))",
            1, true));
        return v;
    }();
    return all;
}

// PEM private key blocks, found by hand: a regex would have to span the whole block.
// fuzz_redactor found three ways a key went out unmasked, each a rule below: a header is one
// line ("-----BEGIN X" without dashes took the next line's key header as its end); an END
// line's dashes are on that line (else the next key's header dashes were its end); and the
// mask starts at the first "-----BEGIN " of the header's line ("-----BEGIN X-----BEGIN RSA
// PRIVATE KEY-----" left "-----BEGIN X" behind to make a header with whatever came next).
int redact_private_keys(std::string& text) {
    int found = 0;
    size_t floor = 0; // where the last mask ended
    size_t at = 0;
    while ((at = text.find("-----BEGIN ", at)) != std::string::npos) {
        const size_t header_end = text.find("-----", at + 11);
        if (header_end == std::string::npos) break;
        const std::string_view header(text.data() + at, header_end + 5 - at);
        if (header.find('\n') != std::string_view::npos) { // not a header: look on from here
            at += 11;
            continue;
        }
        if (header.find("PRIVATE KEY") == std::string_view::npos) {
            at = header_end; // another header may begin with these dashes
            continue;
        }
        size_t start = at;
        for (size_t i = at; i > floor && text[i - 1] != '\n'; --i)
            if (text.compare(i - 1, 11, "-----BEGIN ") == 0) start = i - 1;
        // The block ends with its END line; unterminated, at the end of the text.
        const size_t end = text.find("-----END ", header_end);
        size_t stop = text.size();
        if (end != std::string::npos) {
            const size_t line_end = text.find('\n', end);
            const size_t close = text.find("-----", end + 9);
            if (close != std::string::npos && close < line_end)
                stop = close + 5;
            else if (line_end != std::string::npos)
                stop = line_end;
        }
        text.replace(start, stop - start, "[REDACTED:private_key]");
        at = floor = start + 22;
        ++found;
    }
    return found;
}

constexpr std::string_view kPlaceholder = "[REDACTED:";

// One rule over the text: every non-overlapping match, leftmost first, replaced.
int apply(const Rule& rule, std::string& text) {
    const RE2& re = *rule.pattern;
    const re2::StringPiece input(text);
    re2::StringPiece groups[2];
    const int wanted = rule.group + 1;
    std::string result;
    size_t search = 0, last = 0;
    int found = 0;
    while (search <= text.size() && re.Match(input, search, text.size(), RE2::UNANCHORED, groups, wanted)) {
        const size_t match_end = static_cast<size_t>(groups[0].data() - text.data()) + groups[0].size();
        search = match_end > search ? match_end : search + 1; // an empty match cannot stall the scan
        const re2::StringPiece& part = groups[rule.group];
        const size_t start = static_cast<size_t>(part.data() - text.data());
        if (start < last) continue;
        // An earlier rule's placeholder is not a secret: "token=[REDACTED:jwt]" stays as it is,
        // and redacting a redacted text changes nothing (found writing fuzz_redactor).
        if (text.compare(start, kPlaceholder.size(), kPlaceholder) == 0) continue;
        result.append(text, last, start - last);
        result += "[REDACTED:";
        result += rule.kind;
        result += ']';
        // A secret is masked to the end of its token (a trailing "." or ")" of the same word too).
        size_t end = start + part.size();
        while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) &&
               std::string_view("\"',;@").find(text[end]) == std::string_view::npos)
            ++end;
        last = end;
        ++found;
    }
    if (found) {
        result.append(text, last, std::string::npos);
        text = std::move(result);
    }
    return found;
}

} // namespace

Redaction redact_secrets(std::string_view input) {
    Redaction out{std::string(input), 0};
    for (const auto& rule : rules()) out.secrets += apply(rule, out.text);
    // Last, over the text as the rules left it: a mask that runs to the end of its token can
    // join the pieces of a header ("-----BEGIN …xoxb-…  PRIVATE KEY-----"), and what follows such
    // a header must go too (found by fuzz_redactor).
    out.secrets += redact_private_keys(out.text);
    return out;
}

} // namespace codepilot::guard
