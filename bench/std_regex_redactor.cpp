// The redactor as it was before RE2 (commit f93a9e3, src/guard/redactor.cpp), kept only so that
// bench/audit_writer.cpp can measure before and after in one run. Not used by the server.
#include "guard/guard.h"

#include <cctype>
#include <regex>
#include <vector>

namespace codepilot::bench {
namespace {

// Quantifiers are bounded: libstdc++'s regex recurses per repetition, so an unbounded one
// over a long run of letters could exhaust the stack.
struct Rule {
    const char* kind;
    std::regex pattern;
    int group; // the part to mask (0: the whole match)
};

const std::vector<Rule>& rules() {
    static const std::vector<Rule> all = [] {
        auto r = [](const char* kind, const char* pattern, int group = 0, bool icase = false) {
            auto flags = std::regex::ECMAScript | (icase ? std::regex::icase : std::regex::ECMAScript);
            return Rule{kind, std::regex(pattern, flags), group};
        };
        return std::vector<Rule>{
            r("aws_access_key", R"(\b(?:AKIA|ASIA)[0-9A-Z]{16}\b)"),
            r("github_token", R"(\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b)"),
            r("slack_token", R"(\bxox[abpors]-[A-Za-z0-9-]{10,255}\b)"),
            r("codepilot_key", R"(\bcpk_[A-Za-z0-9]{8}_[A-Za-z0-9]{40}\b)"),
            r("jwt", R"(\beyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{8,4096}\b)"),
            r("bearer_token", R"((?:[Bb]earer)[ \t]{1,8}([A-Za-z0-9._~+/=-]{16,4096}))", 1),
            r("url_password", R"([a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@]{1,256}:([^@\s/]{1,256})@)", 1),
            // password = "…", api_key: '…', SECRET_TOKEN=… (the value only)
            r("assigned_secret",
              R"((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token|client[_-]?secret)[A-Za-z0-9_-]{0,64}["']?[ \t]{0,8}[:=][ \t]{0,8}["']?([^\s"',;]{6,512}))",
              1, true),
        };
    }();
    return all;
}

// PEM private key blocks, found by hand: a regex would have to span the whole block.
int redact_private_keys(std::string& text) {
    int found = 0;
    size_t at = 0;
    while ((at = text.find("-----BEGIN ", at)) != std::string::npos) {
        size_t header_end = text.find("-----", at + 11);
        if (header_end == std::string::npos) break;
        std::string_view header(text.data() + at, header_end + 5 - at);
        if (header.find("PRIVATE KEY") == std::string_view::npos) {
            at = header_end + 5;
            continue;
        }
        size_t end = text.find("-----END ", header_end);
        size_t end_close = end == std::string::npos ? std::string::npos : text.find("-----", end + 9);
        size_t stop =
            end_close == std::string::npos ? text.size() : end_close + 5; // unterminated: to the end
        text.replace(at, stop - at, "[REDACTED:private_key]");
        at += 22;
        ++found;
    }
    return found;
}

} // namespace

guard::Redaction redact_secrets_std_regex(std::string_view input) {
    guard::Redaction out{std::string(input), 0};
    out.secrets += redact_private_keys(out.text);
    for (const auto& rule : rules()) {
        std::string result;
        std::string& text = out.text;
        auto begin = std::sregex_iterator(text.begin(), text.end(), rule.pattern);
        size_t last = 0;
        int found = 0;
        for (auto it = begin; it != std::sregex_iterator(); ++it) {
            const auto& m = *it;
            size_t start = static_cast<size_t>(m.position(rule.group)),
                   length = static_cast<size_t>(m.length(rule.group));
            if (start < last) continue;
            result.append(text, last, start - last);
            result += std::string("[REDACTED:") + rule.kind + "]";
            // The quantifiers are bounded: a longer secret is masked to the end of its token.
            size_t end = start + length;
            while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) &&
                   std::string_view("\"',;@").find(text[end]) == std::string_view::npos)
                ++end;
            last = end;
            ++found;
        }
        if (!found) continue;
        result.append(text, last, std::string::npos);
        text = std::move(result);
        out.secrets += found;
    }
    return out;
}

} // namespace codepilot::bench
