#include "api/prompt_guard.h"

#include "api/errors.h"

#include <nlohmann/json.hpp>
#include <sstream>
#include <toml++/toml.h>

namespace codepilot::api {
namespace {

using json = nlohmann::json;

struct Walk {
    const guard::RuleSet& rules;
    guard::ScanOptions options;
    PromptAction action;
    guard::Placeholders placeholders; // one set for the whole request: stable across fields
    GuardedBody out;
    bool changed = false;

    // Returns false once a block has been decided.
    bool visit(json& node, const std::string& path) {
        if (node.is_string()) {
            auto& text = node.get_ref<std::string&>();
            auto found = rules.scan(text, options);
            if (found.empty()) return true;
            for (const auto& f : found) out.rules.push_back(f.rule);
            if (action == PromptAction::block) {
                const auto& f = found.front();
                out.blocked = make_error(ErrorCode::invalid_argument,
                                         "'" + path + "' holds a secret (rule " + f.rule + ") on line " +
                                             std::to_string(f.line) +
                                             "; nothing was sent to the model. Remove it, or ask an "
                                             "administrator about this tenant's guard policy",
                                         path);
                return false;
            }
            if (action == PromptAction::redact) {
                text = guard::redact(text, found, placeholders);
                changed = true;
            }
            return true;
        }
        if (node.is_array()) {
            for (size_t i = 0; i < node.size(); ++i)
                if (!visit(node[i], path + "[" + std::to_string(i) + "]")) return false;
        } else if (node.is_object()) {
            for (auto& [key, value] : node.items())
                if (!visit(value, path.empty() ? key : path + "." + key)) return false;
        }
        return true;
    }
};

} // namespace

namespace {
// The configuration's names of the actions, one table each way.
template <typename E> struct Named {
    E value;
    const char* name;
};
constexpr Named<PromptAction> kPromptActions[] = {{PromptAction::off, "off"},
                                                  {PromptAction::log, "log"},
                                                  {PromptAction::redact, "redact"},
                                                  {PromptAction::block, "block"}};
constexpr Named<OutputAction> kOutputActions[] = {{OutputAction::off, "off"},
                                                  {OutputAction::log, "log"},
                                                  {OutputAction::mask, "mask"},
                                                  {OutputAction::end, "end"}};

template <typename E, size_t N>
std::optional<E> parse_named(const Named<E> (&table)[N], std::string_view text) {
    for (const auto& n : table)
        if (text == n.name) return n.value;
    return std::nullopt;
}
template <typename E, size_t N> const char* name_of(const Named<E> (&table)[N], E value) {
    for (const auto& n : table)
        if (n.value == value) return n.name;
    return "off";
}
} // namespace

std::optional<PromptAction> parse_prompt_action(std::string_view text) {
    return parse_named(kPromptActions, text);
}
const char* to_string(PromptAction action) {
    return name_of(kPromptActions, action);
}
std::optional<OutputAction> parse_output_action(std::string_view text) {
    return parse_named(kOutputActions, text);
}
const char* to_string(OutputAction action) {
    return name_of(kOutputActions, action);
}

guard::OutputFilter OutputGuard::filter() const {
    guard::ScanOptions o;
    o.pii = pii;
    return guard::OutputFilter(rules, o, action == OutputAction::end);
}

void count_findings(metrics::Registry* metrics, const std::vector<std::string>& rules,
                    const std::string& action) {
    if (!metrics) return;
    for (const auto& rule : rules)
        metrics
            ->counter("codepilot_guard_findings_total", "Secrets the guard found, by rule and action",
                      {{"rule", rule}, {"action", action}})
            .inc();
}

void OutputGuard::count(const guard::OutputFilter& f) const {
    count_findings(metrics, f.rules(), std::string("output_") + to_string(action));
}

Result<std::shared_ptr<const guard::RuleSet>> with_denylist(const std::shared_ptr<const guard::RuleSet>& base,
                                                            const std::vector<std::string>& patterns,
                                                            const std::string& where) {
    if (patterns.empty()) return base;
    std::ostringstream text;
    for (size_t i = 0; i < patterns.size(); ++i) {
        toml::table rule{{"id", "deny_" + std::to_string(i + 1)},
                         {"description", "denylist entry " + std::to_string(i + 1)},
                         {"regex", patterns[i]},
                         {"case_insensitive", true}};
        text << "[[rule]]\n" << rule << "\n";
    }
    return guard::RuleSet::extend(base, text.str(), where);
}

Result<GuardPolicy> build_policy(const GuardSettings& settings, std::shared_ptr<const guard::RuleSet> rules,
                                 metrics::Registry* metrics, const std::string& where) {
    GuardPolicy out{settings, std::move(rules), nullptr};
    if (settings.output == OutputAction::off) return out;
    auto output = std::make_shared<OutputGuard>();
    output->action = settings.output;
    output->pii = settings.pii;
    output->metrics = metrics;
    auto output_rules = with_denylist(out.rules, settings.deny, where + " deny");
    if (!output_rules) return output_rules.error();
    output->rules = *output_rules;
    out.output = std::move(output);
    return out;
}

const GuardPolicy& PromptGuard::policy_for(const std::string& tenant) const {
    auto it = tenants.find(tenant);
    return it == tenants.end() ? policy : it->second;
}

GuardedBody guard_body(const GuardPolicy& policy, const std::string& body) {
    if (policy.settings.prompts == PromptAction::off || !policy.rules) return {};
    json doc = json::parse(body, nullptr, false);
    if (doc.is_discarded()) return {}; // not JSON: the handler refuses it, nothing reaches a model
    Walk walk{*policy.rules, {}, policy.settings.prompts, {}, {}};
    walk.options.pii = policy.settings.pii;
    walk.visit(doc, "");
    if (walk.changed) walk.out.body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
    return std::move(walk.out);
}

} // namespace codepilot::api
