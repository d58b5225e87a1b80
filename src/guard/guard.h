// The guard: secret and personal-data detection. A rule set (src/guard/rules.toml, shipped in
// the binary, or a file of the same form) compiled once, and a scan that finds every secret in a
// text in time linear in its length: one engine for the server and `codepilot guard scan`.
#pragma once

#include "core/result.h"

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace codepilot::guard {

struct Finding {
    std::string rule;          // the rule's id (what users see; never the value)
    size_t begin = 0, end = 0; // byte range of the secret in the scanned text
    int line = 1;              // 1-based line of `begin`
};

struct ScanOptions {
    bool pii = false; // also the personal-data rules (e-mail, phone, IBAN, card numbers), off by default
};

class RuleSet {
public:
    // Parses rules in the rules.toml form (docs/guard.md). Errors name the rule and what is
    // wrong: a regex RE2 cannot compile (backreferences, lookaround), one that matches the empty
    // string, an unknown key, a duplicate id.
    static Result<std::shared_ptr<const RuleSet>> parse(std::string_view toml, const std::string& origin);
    // `base`'s rules and allowlist (shared, not recompiled) and those of `toml`, which may hold
    // only an allowlist; an id of `base` may not be used again.
    static Result<std::shared_ptr<const RuleSet>> extend(const std::shared_ptr<const RuleSet>& base,
                                                         std::string_view toml, const std::string& origin);
    // The rules shipped with the binary, and their text (to extend with more rules).
    static std::shared_ptr<const RuleSet> builtin();
    static std::string_view builtin_text();

    // Every secret in `text`, in order; overlapping matches keep the earliest-starting, then the
    // longest, then the rule listed first. Thread-safe.
    std::vector<Finding> scan(std::string_view text, const ScanOptions& options = {}) const;

    std::vector<std::string> ids() const;
    size_t size() const;

    ~RuleSet();
    struct Impl;

private:
    explicit RuleSet(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Typed placeholders for redacted secrets, one set per request: the first distinct value of a
// rule becomes <SECRET:rule>, the next <SECRET:rule_2>, ...; the same value gets the same
// placeholder wherever it occurs, so redacted code still reads naturally and the same file
// redacts to the same text (the prefix cache keeps working while a developer types).
class Placeholders {
public:
    const std::string& name(const std::string& rule, std::string_view value);

private:
    std::map<std::pair<std::string, std::string>, std::string> names_;
    std::map<std::string, int> counts_;
};

// `text` with each finding replaced by its placeholder (findings as scan() returns them).
std::string redact(std::string_view text, const std::vector<Finding>& findings, Placeholders& placeholders);

// The guard on a stream of model output: push() takes each piece and returns the text that is
// safe to show now, holding back the word still being written (a secret is a run without white
// space; at most `hold` bytes of it) and any match that may still grow (a key block), as with
// stop strings; finish() returns the rest. Secrets are masked with placeholders, or, with
// `end_on_secret`, the text stops before the first one and ended() turns true.
class OutputFilter {
public:
    OutputFilter(std::shared_ptr<const RuleSet> rules, ScanOptions options, bool end_on_secret,
                 size_t hold = 4096);
    std::string push(std::string_view piece);
    std::string finish();
    bool ended() const { return ended_; }
    bool masked() const { return masked_; }                          // some text was replaced (or cut)
    const std::vector<std::string>& rules() const { return found_; } // the rule of each finding

private:
    std::string release(size_t cut, bool final);
    std::shared_ptr<const RuleSet> rules_;
    ScanOptions options_;
    bool end_on_secret_;
    size_t hold_;
    std::string shown_tail_; // the last bytes already shown: context for rules such as "password = ..."
    std::string unsent_;
    Placeholders placeholders_;
    std::vector<std::string> found_;
    bool ended_ = false, masked_ = false;
};

struct Redaction {
    std::string text;
    int secrets = 0; // how many were replaced
};

// The audit trail's redaction of stored prompts: every secret and every piece of personal data
// (the PII rules on) that `rules` find (the built-in rules when null) becomes its placeholder;
// the redacted text is scanned again until nothing more is found.
Redaction redact_secrets(std::string_view text, const RuleSet* rules = nullptr);

// Shannon entropy of `s` in bits per byte.
double shannon_entropy(std::string_view s);
// Checksums that tell a real card or account number from a run of digits.
bool luhn_valid(std::string_view digits);
bool iban_valid(std::string_view iban);

} // namespace codepilot::guard
