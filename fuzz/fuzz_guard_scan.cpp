// The guard's rule engine over any bytes, with the built-in rules and the personal-data ones:
// findings lie inside the text, come in order without overlapping, name a rule of the set and
// carry the right line; a scan of the same text finds the same again (no hidden state); and the
// prefilter that runs keyword-less rules only around its matches finds exactly what those rules
// find over the whole text (the same rules marked multiline, which bypass it).
#include "fuzz_check.h"
#include "guard/guard.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <toml++/toml.h>

using namespace codepilot::guard;

namespace {

std::shared_ptr<const RuleSet> without_prefilter() {
    toml::table doc = toml::parse(RuleSet::builtin_text(), std::string_view("built-in rules"));
    for (auto& node : *doc["rule"].as_array()) {
        auto& rule = *node.as_table();
        if (!rule.contains("keywords")) rule.insert_or_assign("multiline", true);
    }
    std::ostringstream text;
    text << doc;
    return *RuleSet::parse(text.str(), "built-in rules, whole-text");
}

bool same(const std::vector<Finding>& a, const std::vector<Finding>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].rule != b[i].rule || a[i].begin != b[i].begin || a[i].end != b[i].end) return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const auto rules = RuleSet::builtin();
    static const auto ids = rules->ids();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    ScanOptions all;
    all.pii = true;
    const auto found = rules->scan(text, all);
    size_t last_end = 0;
    for (const auto& f : found) {
        fuzz_check(f.begin < f.end && f.end <= text.size(), "fuzz_guard_scan", "a finding outside the text");
        fuzz_check(f.begin >= last_end, "fuzz_guard_scan", "findings overlap or are out of order");
        fuzz_check(std::find(ids.begin(), ids.end(), f.rule) != ids.end(), "fuzz_guard_scan",
                   "an unknown rule");
        const auto lines =
            std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(f.begin), '\n');
        fuzz_check(f.line == lines + 1, "fuzz_guard_scan", "a wrong line number");
        last_end = f.end;
    }
    const auto again = rules->scan(text, all);
    fuzz_check(again.size() == found.size(), "fuzz_guard_scan", "a second scan found something else");
    static const auto whole = without_prefilter();
    fuzz_check(same(found, whole->scan(text, all)), "fuzz_guard_scan",
               "the prefilter and a whole-text scan found different things");
    return 0;
}
