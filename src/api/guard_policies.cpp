#include "api/guard_policies.h"

#include "api/errors.h"
#include "store/guard_store.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>
#include <spdlog/spdlog.h>
#include <sstream>
#include <toml++/toml.h>

namespace codepilot::api {
namespace {

using json = nlohmann::json;

Error bad_field(const std::string& field, const std::string& what) {
    return make_error(ErrorCode::invalid_argument, "'" + field + "' " + what, field);
}

Result<std::vector<std::string>> patterns(const json& value, const std::string& field) {
    if (!value.is_array()) return bad_field(field, "must be an array of strings");
    if (value.size() > kMaxOwnRules)
        return bad_field(field, "holds more than " + std::to_string(kMaxOwnRules) + " entries");
    std::vector<std::string> out;
    for (const auto& item : value) {
        if (!item.is_string() || item.get_ref<const std::string&>().empty())
            return bad_field(field, "must be an array of non-empty strings");
        if (item.get_ref<const std::string&>().size() > kMaxPatternBytes)
            return bad_field(field,
                             "holds a pattern longer than " + std::to_string(kMaxPatternBytes) + " bytes");
        out.push_back(item.get<std::string>());
    }
    return out;
}

// One rule object as a TOML table with the same keys: strings, numbers, booleans and arrays
// of strings (the rules.toml parser then checks the keys and compiles the regex).
Result<toml::table> rule_table(const json& rule, size_t index) {
    const std::string where = "rules[" + std::to_string(index) + "]";
    if (!rule.is_object()) return bad_field("rules", "entry " + std::to_string(index) + " must be an object");
    toml::table out;
    for (const auto& [key, value] : rule.items()) {
        const std::string field = where + "." + key;
        if (value.is_string()) {
            if (value.get_ref<const std::string&>().size() > kMaxPatternBytes)
                return bad_field(field, "is longer than " + std::to_string(kMaxPatternBytes) + " bytes");
            out.insert(key, value.get<std::string>());
        } else if (value.is_boolean()) {
            out.insert(key, value.get<bool>());
        } else if (value.is_number_integer()) {
            out.insert(key, value.get<int64_t>());
        } else if (value.is_number()) {
            out.insert(key, value.get<double>());
        } else if (value.is_array()) {
            auto list = patterns(value, field);
            if (!list) return list.error();
            toml::array array;
            for (const auto& s : *list) array.push_back(s);
            out.insert(key, std::move(array));
        } else {
            return bad_field(field, "must be a string, number, boolean or array of strings");
        }
    }
    return out;
}

} // namespace

Result<std::shared_ptr<const guard::RuleSet>> server_rules(const std::string& rules_file) {
    if (rules_file.empty()) return guard::RuleSet::builtin();
    std::ifstream in(rules_file, std::ios::binary);
    if (!in) return make_error(ErrorCode::invalid_argument, "guard.rules_file: cannot read " + rules_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto rules = guard::RuleSet::parse(text, rules_file);
    if (!rules) return make_error(rules.error().code, "guard.rules_file: " + rules.error().message);
    return *rules;
}

Result<PromptGuard> configure_guard(const config::GuardConfig& config, metrics::Registry* metrics) {
    PromptGuard guard;
    auto rules = server_rules(config.rules_file);
    if (!rules) return rules.error();
    guard.rules = *rules;
    auto policy = [&](const config::GuardPolicyConfig& p, const std::string& where) -> Result<GuardPolicy> {
        auto action = parse_prompt_action(p.prompts);
        if (!action)
            return make_error(ErrorCode::invalid_argument,
                              where + ": prompts must be redact, block, log or off (got '" + p.prompts +
                                  "')");
        auto output = parse_output_action(p.output);
        if (!output)
            return make_error(ErrorCode::invalid_argument,
                              where + ": output must be mask, end, log or off (got '" + p.output + "')");
        return build_policy(GuardSettings{*action, *output, p.pii, p.deny}, guard.rules, metrics, where);
    };
    auto all = policy(config.policy, "guard");
    if (!all) return all.error();
    guard.policy = std::move(*all);
    for (const auto& t : config.tenants) {
        auto own = policy(t.policy, "guard.tenants ('" + t.name + "')");
        if (!own) return own.error();
        guard.tenants[t.name] = std::move(*own);
    }
    return guard;
}

Result<GuardSpec> parse_guard_spec(const json& doc) {
    if (!doc.is_object()) return make_error(ErrorCode::invalid_argument, "the policy must be a JSON object");
    static const std::set<std::string> known = {"prompts", "output", "pii", "deny", "rules", "allow"};
    GuardSpec spec;
    for (const auto& [key, value] : doc.items()) {
        if (!known.count(key))
            return bad_field(key, "is not a guard policy field (prompts, output, pii, deny, rules, allow)");
        if (value.is_null()) continue; // as absent: the configuration's value
        if (key == "prompts") {
            auto action = value.is_string() ? parse_prompt_action(value.get<std::string>()) : std::nullopt;
            if (!action) return bad_field(key, "must be redact, block, log or off");
            spec.prompts = action;
        } else if (key == "output") {
            auto action = value.is_string() ? parse_output_action(value.get<std::string>()) : std::nullopt;
            if (!action) return bad_field(key, "must be mask, end, log or off");
            spec.output = action;
        } else if (key == "pii") {
            if (!value.is_boolean()) return bad_field(key, "must be true or false");
            spec.pii = value.get<bool>();
        } else if (key == "deny") {
            auto list = patterns(value, key);
            if (!list) return list.error();
            spec.deny = std::move(*list);
        } else if (key == "allow") {
            auto list = patterns(value, key);
            if (!list) return list.error();
            spec.allow = std::move(*list);
        } else if (key == "rules") {
            if (!value.is_array()) return bad_field(key, "must be an array of rule objects");
            if (value.size() > kMaxOwnRules)
                return bad_field(key, "holds more than " + std::to_string(kMaxOwnRules) + " rules");
            for (size_t i = 0; i < value.size(); ++i)
                if (auto t = rule_table(value[i], i); !t) return t.error();
            spec.rules = value;
        }
    }
    return spec;
}

json to_json(const GuardSpec& spec) {
    json out = json::object();
    if (spec.prompts) out["prompts"] = to_string(*spec.prompts);
    if (spec.output) out["output"] = to_string(*spec.output);
    if (spec.pii) out["pii"] = *spec.pii;
    if (spec.deny) out["deny"] = *spec.deny;
    if (!spec.rules.empty()) out["rules"] = spec.rules;
    if (!spec.allow.empty()) out["allow"] = spec.allow;
    return out;
}

Result<std::string> rules_toml(const GuardSpec& spec) {
    std::ostringstream text;
    if (!spec.allow.empty()) {
        toml::array values;
        for (const auto& v : spec.allow) values.push_back(v);
        text << "[allowlist]\n" << toml::table{{"values", std::move(values)}} << "\n\n";
    }
    for (size_t i = 0; i < spec.rules.size(); ++i) {
        auto t = rule_table(spec.rules[i], i);
        if (!t) return t.error();
        text << "[[rule]]\n" << *t << "\n\n";
    }
    return text.str();
}

json describe(const GuardPolicy& p, const guard::RuleSet& server_rules) {
    std::set<std::string> server;
    for (auto& id : server_rules.ids()) server.insert(std::move(id));
    json own = json::array();
    if (p.rules)
        for (const auto& id : p.rules->ids())
            if (!server.count(id)) own.push_back(id);
    return json{{"prompts", to_string(p.settings.prompts)},
                {"output", to_string(p.settings.output)},
                {"pii", p.settings.pii},
                {"deny", p.settings.deny},
                {"rules", p.rules ? p.rules->size() : 0},
                {"own_rules", own}};
}

GuardPolicies::GuardPolicies(PromptGuard configured, metrics::Registry* metrics)
    : configured_(std::move(configured)), metrics_(metrics) {
    default_ = std::make_shared<const GuardPolicy>(configured_.policy);
    for (const auto& [name, policy] : configured_.tenants)
        configured_tenants_[name] = std::make_shared<const GuardPolicy>(policy);
}

GuardPolicies::~GuardPolicies() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (poller_.joinable()) poller_.join();
}

std::shared_ptr<const GuardPolicy> GuardPolicies::policy_for(const std::string& tenant) const {
    std::lock_guard lock(mu_);
    if (auto it = stored_.find(tenant); it != stored_.end() && it->second.policy) return it->second.policy;
    auto it = configured_tenants_.find(tenant);
    return it == configured_tenants_.end() ? default_ : it->second;
}

Result<GuardPolicy> GuardPolicies::compile(const std::string& tenant, const GuardSpec& spec) const {
    const GuardPolicy& inherited = configured_.policy_for(tenant);
    GuardSettings settings = inherited.settings;
    if (spec.prompts) settings.prompts = *spec.prompts;
    if (spec.output) settings.output = *spec.output;
    if (spec.pii) settings.pii = *spec.pii;
    if (spec.deny) settings.deny = *spec.deny;
    std::shared_ptr<const guard::RuleSet> rules = configured_.rules;
    if (!spec.rules.empty() || !spec.allow.empty()) {
        auto text = rules_toml(spec);
        if (!text) return text.error();
        auto extended = guard::RuleSet::extend(rules, *text, "policy");
        if (!extended) return make_error(ErrorCode::invalid_argument, extended.error().message, "rules");
        rules = *extended;
    }
    auto policy = build_policy(settings, rules, metrics_, "policy");
    if (!policy) return make_error(ErrorCode::invalid_argument, policy.error().message, "deny");
    return policy;
}

Status GuardPolicies::reload(store::Database& db) {
    std::lock_guard serial(reload_mu_);
    store::GuardStore store(db);
    auto rows = store.policies();
    if (!rows) return rows.error();
    std::map<std::string, Stored> fresh;
    {
        std::lock_guard lock(mu_);
        for (const auto& row : *rows)
            if (auto it = stored_.find(row.tenant); it != stored_.end()) fresh[row.tenant] = it->second;
    }
    for (const auto& row : *rows) {
        Stored& s = fresh[row.tenant];
        if (s.spec == row.spec && s.updated_at == row.updated_at) continue; // unchanged: compiled already
        s.spec = row.spec;
        s.updated_at = row.updated_at;
        auto spec = parse_guard_spec(json::parse(row.spec, nullptr, false));
        auto policy = spec ? compile(row.tenant, *spec) : Result<GuardPolicy>(spec.error());
        if (policy) {
            s.policy = std::make_shared<const GuardPolicy>(std::move(*policy));
            s.error.clear();
        } else {
            s.error = policy.error().message;
            spdlog::error("guard: the stored policy of tenant '{}' does not compile ({}); {} applies",
                          row.tenant, s.error,
                          s.policy ? "its last good form" : "the configuration's policy");
        }
    }
    std::lock_guard lock(mu_);
    stored_.swap(fresh);
    return Ok{};
}

std::optional<std::string> GuardPolicies::stored_error(const std::string& tenant) const {
    std::lock_guard lock(mu_);
    auto it = stored_.find(tenant);
    if (it == stored_.end() || it->second.error.empty()) return std::nullopt;
    return it->second.error;
}

int GuardPolicies::stored_errors() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(
        std::count_if(stored_.begin(), stored_.end(), [](const auto& s) { return !s.second.error.empty(); }));
}

void GuardPolicies::poll(store::Database& db, std::chrono::milliseconds every) {
    if (auto st = reload(db); !st)
        spdlog::error("guard: cannot read stored policies: {}", st.error().message);
    poller_ = std::thread([this, &db, every] {
        std::unique_lock lock(mu_);
        while (!wake_.wait_for(lock, every, [this] { return stopping_; })) {
            lock.unlock();
            if (auto st = reload(db); !st)
                spdlog::warn("guard: cannot reload stored policies: {}", st.error().message);
            lock.lock();
        }
    });
}

} // namespace codepilot::api
