// The rule engine: every rule is an RE2 automaton (linear time, no backtracking, no recursion).
// One Aho-Corasick pass finds every rule keyword in the text; a rule then runs only over the
// lines around its keywords' occurrences (a line before, two after; `multiline` rules from
// there for 64 KiB), and rules without keywords around the matches of one alternation of them
// all, so ordinary code costs about two passes however many rules there are.
#include "guard/guard.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <re2/re2.h>
#include <set>
#include <toml++/toml.h>

namespace codepilot::guard {
namespace {

enum class Check { none, luhn, iban };

struct Rule {
    std::string id, description;
    std::unique_ptr<RE2> regex;
    int group = 0;
    double entropy = 0;
    bool pii = false;
    Check check = Check::none;
    std::vector<std::unique_ptr<RE2>> allow;
    std::vector<std::string> keywords; // lower-cased
    std::string pattern;               // the regex as written, and its case flag (for a prefilter)
    bool icase = false;
    bool always = true;     // no keywords: runs on the whole text
    bool multiline = false; // its matches may run over many lines (key blocks)
};

// All keywords of all rules in one automaton over lower-cased bytes: every occurrence, in
// one pass, with a table lookup per byte.
class KeywordAutomaton {
public:
    void add(const std::string& keyword, size_t id) {
        int state = 0;
        for (unsigned char c : keyword) {
            if (goto_[static_cast<size_t>(state)][c] == 0) { // a new state (the table grows: no references)
                const int created = static_cast<int>(goto_.size());
                goto_.emplace_back();
                goto_.back().fill(0);
                out_.emplace_back();
                goto_[static_cast<size_t>(state)][c] = created;
            }
            state = goto_[static_cast<size_t>(state)][c];
        }
        out_[static_cast<size_t>(state)].push_back({id, keyword.size()});
    }
    // Turns the trie into a full transition table (failure links folded in).
    void build() {
        std::vector<int> fail(goto_.size(), 0), queue;
        for (int c = 0; c < 256; ++c)
            if (int s = goto_[0][static_cast<size_t>(c)]; s != 0) queue.push_back(s);
        for (size_t head = 0; head < queue.size(); ++head) {
            const int s = queue[head];
            const auto& f_out = out_[static_cast<size_t>(fail[static_cast<size_t>(s)])];
            out_[static_cast<size_t>(s)].insert(out_[static_cast<size_t>(s)].end(), f_out.begin(),
                                                f_out.end());
            for (int c = 0; c < 256; ++c) {
                int& next = goto_[static_cast<size_t>(s)][static_cast<size_t>(c)];
                const int via_fail =
                    goto_[static_cast<size_t>(fail[static_cast<size_t>(s)])][static_cast<size_t>(c)];
                if (next != 0) {
                    fail[static_cast<size_t>(next)] = via_fail;
                    queue.push_back(next);
                } else {
                    next = via_fail;
                }
            }
        }
    }
    // Calls found(keyword id, first byte) for every occurrence, case-insensitively.
    template <typename F> void scan(std::string_view text, F&& found) const {
        int state = 0;
        for (size_t i = 0; i < text.size(); ++i) {
            state = goto_[static_cast<size_t>(state)][static_cast<unsigned char>(lower(text[i]))];
            for (const auto& [id, length] : out_[static_cast<size_t>(state)]) found(id, i + 1 - length);
        }
    }
    bool empty() const { return goto_.size() == 1; }

private:
    static char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
    std::vector<std::array<int, 256>> goto_ = {std::array<int, 256>{}};
    std::vector<std::vector<std::pair<size_t, size_t>>> out_ = {{}};
};

// Where a rule runs for a keyword at `at`: from the line before to the end of the second
// line after (or to the end of the text).
// A multiline rule's matches (key blocks, manifests) are far shorter than this: a 16384-bit RSA
// key in PEM is about 12 KiB. Bounding its window keeps a rule whose keyword is common in some
// file from running to the end of a large one at every occurrence.
constexpr size_t kMultilineWindow = 64 * 1024;

std::pair<size_t, size_t> window_around(std::string_view text, size_t at, bool to_end) {
    size_t begin = at;
    for (int lines = 0; begin > 0; --begin)
        if (text[begin - 1] == '\n' && ++lines == 2) break;
    if (to_end) {
        if (text.size() - at <= kMultilineWindow) return {begin, text.size()};
        const size_t line_end = text.find('\n', at + kMultilineWindow);
        return {begin, line_end == std::string_view::npos ? text.size() : line_end};
    }
    size_t end = at;
    for (int lines = 0; end < text.size(); ++end)
        if (text[end] == '\n' && ++lines == 3) break;
    return {begin, end};
}

RE2::Options options(bool icase) {
    RE2::Options o;
    o.set_encoding(RE2::Options::EncodingLatin1); // bytes: text need not be valid UTF-8
    o.set_case_sensitive(!icase);
    o.set_log_errors(false);
    o.set_max_mem(64 << 20);
    return o;
}

Error bad(const std::string& where, const std::string& what) {
    return make_error(ErrorCode::invalid_argument, where + ": " + what);
}

// A regex RE2 accepts, that matches no empty string, and has the capture group it names.
Result<std::unique_ptr<RE2>> compile(const std::string& where, const std::string& pattern, bool icase,
                                     int group) {
    auto re = std::make_unique<RE2>(pattern, options(icase));
    if (!re->ok()) return bad(where, "the regex does not compile (" + re->error() + ")");
    // A rule that can match nothing at all would "find" a secret everywhere.
    for (std::string_view probe : {"", " ", "a", "A", "0", "-", "\n", "=", "\""}) {
        re2::StringPiece match;
        if (re->Match(probe, 0, probe.size(), RE2::UNANCHORED, &match, 1) && match.empty())
            return bad(where, "the regex matches the empty string");
    }
    if (group < 0 || group > re->NumberOfCapturingGroups())
        return bad(where, "secret_group " + std::to_string(group) + " is not a group of the regex");
    return re;
}

Result<std::vector<std::string>> strings(const toml::node& node, const std::string& where) {
    const auto* array = node.as_array();
    if (!array) return bad(where, "must be an array of strings");
    std::vector<std::string> out;
    for (const auto& item : *array) {
        if (!item.is_string()) return bad(where, "must be an array of strings");
        out.push_back(*item.value<std::string>());
    }
    return out;
}

const toml::array kNoRules;

} // namespace

// Rules and allowlist entries are immutable once compiled and shared: a set extended with a
// tenant's own rules holds the server's compiled rules, not copies.
// Rules without keywords (the personal-data ones) would each be a pass over the whole text. One
// RE2 of all of them (an alternation: one DFA pass) finds where any may match instead, and each
// then runs around those places only, as keyword rules do.
struct Prefilter {
    std::unique_ptr<RE2> any; // null: the rules run over the whole text
    std::vector<size_t> rules;
};

struct RuleSet::Impl {
    std::vector<std::shared_ptr<const Rule>> rules;
    Prefilter plain_prefilter, pii_prefilter;             // the keyword-less rules, by whether they are PII
    std::vector<std::shared_ptr<const RE2>> allow_values; // global allowlist
    KeywordAutomaton keywords;
    std::vector<std::vector<size_t>> keyword_rules; // keyword index -> rules it enables

    // The keyword automaton over every rule's keywords.
    void index() {
        std::vector<std::string> words;
        for (size_t r = 0; r < rules.size(); ++r)
            for (const auto& k : rules[r]->keywords) {
                auto at = std::find(words.begin(), words.end(), k);
                if (at == words.end()) {
                    words.push_back(k);
                    keyword_rules.emplace_back();
                    at = words.end() - 1;
                }
                keyword_rules[static_cast<size_t>(at - words.begin())].push_back(r);
            }
        for (size_t k = 0; k < words.size(); ++k) keywords.add(words[k], k);
        keywords.build();
        for (bool pii : {false, true}) {
            Prefilter& p = pii ? pii_prefilter : plain_prefilter;
            std::string any;
            for (size_t r = 0; r < rules.size(); ++r) {
                const Rule& rule = *rules[r];
                if (!rule.always || rule.multiline || rule.pii != pii) continue; // multiline: whole text
                p.rules.push_back(r);
                any +=
                    (any.empty() ? "" : "|") + std::string(rule.icase ? "(?i:" : "(?:") + rule.pattern + ")";
            }
            if (p.rules.empty()) continue;
            auto re = std::make_unique<RE2>(any, options(false));
            if (re->ok()) p.any = std::move(re); // else (too large for RE2's budget) each runs whole
        }
    }

    bool allowed(const Rule& rule, std::string_view secret) const {
        for (const auto& re : rule.allow)
            if (RE2::PartialMatch(secret, *re)) return true;
        for (const auto& re : allow_values)
            if (RE2::PartialMatch(secret, *re)) return true;
        return false;
    }
    bool has(const std::string& id) const {
        return std::any_of(rules.begin(), rules.end(), [&](const auto& r) { return r->id == id; });
    }
};

RuleSet::RuleSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RuleSet::~RuleSet() = default;

Result<std::shared_ptr<const RuleSet>> RuleSet::parse(std::string_view text, const std::string& origin) {
    return extend(nullptr, text, origin);
}

Result<std::shared_ptr<const RuleSet>> RuleSet::extend(const std::shared_ptr<const RuleSet>& base,
                                                       std::string_view text, const std::string& origin) {
    toml::table doc;
    try {
        doc = toml::parse(text, std::string_view(origin));
    } catch (const toml::parse_error& e) {
        return bad(origin, std::string("not valid TOML: ") + std::string(e.description()));
    }
    auto impl = std::make_unique<Impl>();
    std::set<std::string> ids;
    if (base) {
        impl->rules = base->impl_->rules;
        impl->allow_values = base->impl_->allow_values;
        for (const auto& r : impl->rules) ids.insert(r->id);
    }
    for (const auto& [key, value] : doc) {
        if (key.str() != "rule" && key.str() != "allowlist")
            return bad(origin, "unknown section '" + std::string(key.str()) + "'");
    }
    if (const auto* allow = doc["allowlist"].as_table()) {
        for (const auto& [key, value] : *allow) {
            if (key.str() != "values")
                return bad(origin, "allowlist has an unknown key '" + std::string(key.str()) + "'");
            auto values = strings(value, origin + " allowlist.values");
            if (!values) return values.error();
            for (const auto& v : *values) {
                auto re = std::make_unique<RE2>(v, options(false));
                if (!re->ok())
                    return bad(origin + " allowlist.values",
                               "'" + v + "' does not compile (" + re->error() + ")");
                impl->allow_values.push_back(std::move(re));
            }
        }
    }
    const auto* rules = doc["rule"].as_array();
    if (!rules && !doc["rule"] && base) rules = &kNoRules;
    if (!rules)
        return bad(origin,
                   doc["rule"] ? "'rule' must be an array of tables ([[rule]])" : "no [[rule]] entries");
    for (size_t i = 0; i < rules->size(); ++i) {
        const auto* t = (*rules)[i].as_table();
        std::string where = origin + " rule " + std::to_string(i + 1);
        if (!t) return bad(where, "must be a table ([[rule]])");
        Rule rule;
        std::string regex;
        bool icase = false;
        std::vector<std::string> rule_keywords, allow;
        for (const auto& [key, bound_value] : *t) {
            const std::string k(key.str());
            const toml::node& value = bound_value; // clang 14 cannot capture a structured binding
            auto text_of = [&](std::string& out) -> Status {
                if (!value.is_string()) return bad(where, "'" + k + "' must be a string");
                out = *value.value<std::string>();
                return Ok{};
            };
            Status st = Ok{};
            std::string check;
            if (k == "id")
                st = text_of(rule.id);
            else if (k == "description")
                st = text_of(rule.description);
            else if (k == "regex")
                st = text_of(regex);
            else if (k == "validate") {
                st = text_of(check);
                if (st && check == "luhn")
                    rule.check = Check::luhn;
                else if (st && check == "iban")
                    rule.check = Check::iban;
                else if (st)
                    st = bad(where, "validate must be luhn or iban (got '" + check + "')");
            } else if (k == "secret_group") {
                if (!value.is_integer() || *value.value<int64_t>() < 0 || *value.value<int64_t>() > 99)
                    st = bad(where, "'secret_group' must be an integer between 0 and 99");
                else
                    rule.group = static_cast<int>(*value.value<int64_t>());
            } else if (k == "entropy") {
                if (!value.is_number())
                    st = bad(where, "'entropy' must be a number");
                else {
                    rule.entropy = value.is_integer() ? static_cast<double>(*value.value<int64_t>())
                                                      : *value.value<double>();
                    if (!(rule.entropy >= 0 && rule.entropy <= 8))
                        st = bad(where, "'entropy' must be between 0 and 8 bits");
                }
            } else if (k == "case_insensitive" || k == "pii" || k == "multiline") {
                if (!value.is_boolean())
                    st = bad(where, "'" + k + "' must be true or false");
                else
                    (k == "pii"         ? rule.pii
                     : k == "multiline" ? rule.multiline
                                        : icase) = *value.value<bool>();
            } else if (k == "keywords" || k == "allow") {
                auto list = strings(value, where + " '" + k + "'");
                if (!list)
                    st = list.error();
                else
                    (k == "keywords" ? rule_keywords : allow) = std::move(list.value());
            } else {
                st = bad(where, "unknown key '" + k + "'");
            }
            if (!st) return st.error();
        }
        if (rule.id.empty()) return bad(where, "'id' is required");
        where = origin + " rule '" + rule.id + "'";
        if (!ids.insert(rule.id).second)
            return bad(where, base && base->impl_->has(rule.id) ? "the id is one of the server's rules"
                                                                : "the id is used twice");
        if (regex.empty()) return bad(where, "'regex' is required");
        auto re = compile(where, regex, icase, rule.group);
        if (!re) return re.error();
        rule.regex = std::move(re.value());
        rule.pattern = regex;
        rule.icase = icase;
        for (const auto& a : allow) {
            auto are = std::make_unique<RE2>(a, options(icase));
            if (!are->ok()) return bad(where, "allow '" + a + "' does not compile (" + are->error() + ")");
            rule.allow.push_back(std::move(are));
        }
        for (auto& k : rule_keywords) {
            if (k.empty()) return bad(where, "a keyword is empty");
            std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
        }
        rule.always = rule_keywords.empty();
        rule.keywords = std::move(rule_keywords);
        impl->rules.push_back(std::make_shared<const Rule>(std::move(rule)));
    }
    impl->index();
    return std::shared_ptr<const RuleSet>(new RuleSet(std::move(impl)));
}

std::vector<Finding> RuleSet::scan(std::string_view text, const ScanOptions& o) const {
    const auto& s = *impl_;
    using Span = std::pair<size_t, size_t>;
    // Per rule, the merged spans it runs over (in order: keyword occurrences come in order).
    std::vector<std::vector<Span>> spans(s.rules.size());
    for (size_t r = 0; r < s.rules.size(); ++r)
        if (s.rules[r]->always && s.rules[r]->multiline) spans[r].push_back({0, text.size()});
    for (const Prefilter* p : {&s.plain_prefilter, &s.pii_prefilter}) {
        if (p->rules.empty() || (p == &s.pii_prefilter && !o.pii)) continue;
        if (!p->any) {
            for (size_t r : p->rules) spans[r].push_back({0, text.size()});
            continue;
        }
        re2::StringPiece m;
        size_t pos = 0;
        while (pos < text.size() && p->any->Match(text, pos, text.size(), RE2::UNANCHORED, &m, 1)) {
            const size_t at = static_cast<size_t>(m.data() - text.data());
            Span w = window_around(text, at, false);
            w.second = std::max(w.second, at + m.size());
            for (size_t r : p->rules) { // in order: merged with the last when they touch
                auto& list = spans[r];
                if (!list.empty() && w.first <= list.back().second)
                    list.back().second = std::max(list.back().second, w.second);
                else
                    list.push_back(w);
            }
            pos = std::max(w.second, at + 1);
        }
    }
    s.keywords.scan(text, [&](size_t keyword, size_t at) {
        std::optional<Span> lines, rest; // this occurrence's windows, found once
        for (size_t r : s.keyword_rules[keyword]) {
            auto& list = spans[r];
            if (!list.empty() && at < list.back().second) continue; // inside the last span already
            auto& cached = s.rules[r]->multiline ? rest : lines;
            if (!cached) cached = window_around(text, at, s.rules[r]->multiline);
            const Span w = *cached;
            if (!list.empty() && w.first <= list.back().second)
                list.back().second = std::max(list.back().second, w.second);
            else
                list.push_back(w);
        }
    });
    struct Candidate {
        size_t begin, end, rule;
    };
    std::vector<Candidate> found;
    std::array<re2::StringPiece, 100> groups;
    for (size_t r = 0; r < s.rules.size(); ++r) {
        const Rule& rule = *s.rules[r];
        if (spans[r].empty() || (rule.pii && !o.pii)) continue;
        const int n = rule.group + 1;
        for (const auto& [from, to] : spans[r]) {
            size_t pos = from;
            while (pos <= to && rule.regex->Match(text, pos, to, RE2::UNANCHORED, groups.data(), n)) {
                const size_t match_end =
                    static_cast<size_t>(groups[0].data() - text.data()) + groups[0].size();
                pos = std::max(match_end, pos + 1);
                const auto& g = groups[static_cast<size_t>(rule.group)];
                if (g.data() == nullptr || g.empty()) continue;
                std::string_view secret(g.data(), g.size());
                if (rule.entropy > 0 && shannon_entropy(secret) < rule.entropy) continue;
                if (rule.check == Check::luhn && !luhn_valid(secret)) continue;
                if (rule.check == Check::iban && !iban_valid(secret)) continue;
                if (s.allowed(rule, secret)) continue;
                const size_t begin = static_cast<size_t>(g.data() - text.data());
                found.push_back({begin, begin + g.size(), r});
            }
        }
    }
    std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
        if (a.begin != b.begin) return a.begin < b.begin;
        if (a.end != b.end) return a.end > b.end;
        return a.rule < b.rule;
    });
    std::vector<Finding> out;
    size_t covered = 0, line = 1, counted = 0;
    for (const auto& c : found) {
        if (!out.empty() && c.begin < covered) continue; // overlaps a kept finding
        line += static_cast<size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(counted),
                                               text.begin() + static_cast<std::ptrdiff_t>(c.begin), '\n'));
        counted = c.begin;
        out.push_back({s.rules[c.rule]->id, c.begin, c.end, static_cast<int>(line)});
        covered = c.end;
    }
    return out;
}

std::vector<std::string> RuleSet::ids() const {
    std::vector<std::string> out;
    for (const auto& r : impl_->rules) out.push_back(r->id);
    return out;
}

size_t RuleSet::size() const {
    return impl_->rules.size();
}

double shannon_entropy(std::string_view s) {
    if (s.empty()) return 0;
    std::array<size_t, 256> counts{};
    for (unsigned char c : s) counts[c]++;
    double h = 0;
    for (size_t n : counts)
        if (n > 0) {
            const double p = static_cast<double>(n) / static_cast<double>(s.size());
            h -= p * std::log2(p);
        }
    return h;
}

bool luhn_valid(std::string_view s) {
    std::string digits;
    for (char c : s)
        if (c >= '0' && c <= '9')
            digits.push_back(c);
        else if (c != ' ' && c != '-')
            return false;
    if (digits.size() < 13 || digits.size() > 19) return false;
    int sum = 0;
    bool twice = false;
    for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
        int d = *it - '0';
        if (twice && (d *= 2) > 9) d -= 9;
        sum += d;
        twice = !twice;
    }
    return sum % 10 == 0;
}

bool iban_valid(std::string_view s) {
    std::string iban;
    for (char c : s)
        if (c != ' ') iban.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (iban.size() < 15 || iban.size() > 34) return false;
    std::string moved = iban.substr(4) + iban.substr(0, 4);
    int rest = 0;
    for (char c : moved) {
        if (c >= '0' && c <= '9')
            rest = (rest * 10 + (c - '0')) % 97;
        else if (c >= 'A' && c <= 'Z')
            rest = (rest * 100 + (c - 'A' + 10)) % 97;
        else
            return false;
    }
    return rest == 1;
}

} // namespace codepilot::guard
