// Redaction with typed placeholders that are stable within a request.
#include "guard/guard.h"

namespace codepilot::guard {

const std::string& Placeholders::name(const std::string& rule, std::string_view value) {
    auto key = std::make_pair(rule, std::string(value));
    auto it = names_.find(key);
    if (it != names_.end()) return it->second;
    const int n = ++counts_[rule];
    std::string placeholder = "<SECRET:" + rule + (n == 1 ? "" : "_" + std::to_string(n)) + ">";
    return names_.emplace(std::move(key), std::move(placeholder)).first->second;
}

std::string redact(std::string_view text, const std::vector<Finding>& findings, Placeholders& placeholders) {
    std::string out;
    out.reserve(text.size());
    size_t at = 0;
    for (const auto& f : findings) {
        out.append(text.substr(at, f.begin - at));
        out += placeholders.name(f.rule, text.substr(f.begin, f.end - f.begin));
        at = f.end;
    }
    out.append(text.substr(at));
    return out;
}

Redaction redact_secrets(std::string_view text, const RuleSet* rules) {
    ScanOptions options;
    options.pii = true; // the trail keeps no one's e-mail address or card number either
    const RuleSet& set = rules ? *rules : *RuleSet::builtin();
    Redaction out{std::string(text), 0};
    Placeholders placeholders;
    // A placeholder changes the context of what is next to it: a value that a neighbour's
    // boundary hid may match once the neighbour is replaced. Passes until none finds more, so
    // that what is stored holds nothing the rules would still find (a few passes at most).
    for (int pass = 0; pass < 8; ++pass) {
        const auto found = set.scan(out.text, options);
        if (found.empty()) break;
        out.text = redact(out.text, found, placeholders);
        out.secrets += static_cast<int>(found.size());
    }
    return out;
}

} // namespace codepilot::guard
