// The rules shipped with the binary: src/guard/rules.toml, embedded at build time.
#include "guard/guard.h"

#include <stdexcept>

namespace codepilot::guard {
namespace {
constexpr const char* kBuiltinRules =
#include "guard_rules.inc"
    ;
} // namespace

std::string_view RuleSet::builtin_text() {
    return kBuiltinRules;
}

std::shared_ptr<const RuleSet> RuleSet::builtin() {
    // Parsed once; a rule that does not compile is a build defect, caught by the guard tests.
    static const std::shared_ptr<const RuleSet> rules = [] {
        auto parsed = parse(kBuiltinRules, "built-in rules");
        if (!parsed) throw std::logic_error(parsed.error().message);
        return *parsed;
    }();
    return rules;
}

} // namespace codepilot::guard
