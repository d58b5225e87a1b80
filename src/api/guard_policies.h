// Guard policies that tenants' administrators set at run time (PUT /admin/v1/tenants/{tenant}/
// guard, `codepilot guard policy set`), over the configuration's: the form of the stored
// document, its validation, and the live set every request's policy is read from, kept in step
// with the store (this replica at once, the others at their next poll).
#pragma once

#include "api/prompt_guard.h"
#include "config/config.h"
#include "store/database.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace codepilot::api {

// The server's rules: built in, or those of guard.rules_file.
Result<std::shared_ptr<const guard::RuleSet>> server_rules(const std::string& rules_file);
// The guard as configured ([guard] and [[guard.tenants]]); errors name the setting.
Result<PromptGuard> configure_guard(const config::GuardConfig& config, metrics::Registry* metrics);

// A tenant's stored policy. Each field is optional: absent, the configuration's value holds.
struct GuardSpec {
    std::optional<PromptAction> prompts;
    std::optional<OutputAction> output;
    std::optional<bool> pii;
    std::optional<std::vector<std::string>> deny;   // replaces the configuration's denylist
    nlohmann::json rules = nlohmann::json::array(); // the tenant's own rules: objects with rules.toml's keys
    std::vector<std::string> allow;                 // allowlist values (RE2) added to the server's
};

inline constexpr size_t kMaxOwnRules = 100, kMaxPatternBytes = 4096;

// Errors name the field (and a rule by its index or id) and what is wrong with it.
Result<GuardSpec> parse_guard_spec(const nlohmann::json& document);
nlohmann::json to_json(const GuardSpec& spec);
// The rules and allowlist of a spec in the rules.toml form ("" when it has none).
Result<std::string> rules_toml(const GuardSpec& spec);

// A policy as its settings (and the ids of the tenant's own rules) read in an API answer.
nlohmann::json describe(const GuardPolicy& policy, const guard::RuleSet& server_rules);

class GuardPolicies {
public:
    GuardPolicies(PromptGuard configured, metrics::Registry* metrics);
    ~GuardPolicies();
    GuardPolicies(const GuardPolicies&) = delete;
    GuardPolicies& operator=(const GuardPolicies&) = delete;

    // The policy in force for a tenant's caller now ("" : callers without a tenant).
    std::shared_ptr<const GuardPolicy> policy_for(const std::string& tenant) const;
    const PromptGuard& configured() const { return configured_; }
    // `spec` over the configuration's policy for `tenant`: refused with the reason when a rule
    // or pattern does not compile, matches the empty string or reuses a server rule's id.
    Result<GuardPolicy> compile(const std::string& tenant, const GuardSpec& spec) const;
    // Reads every stored policy and compiles those that changed; a stored policy that no longer
    // compiles (the server's rules changed under it) keeps its last good form, or else the
    // configuration's, and is reported by stored_error(). Blocking: not on an I/O thread.
    Status reload(store::Database& db);
    std::optional<std::string> stored_error(const std::string& tenant) const;
    // How many tenants' stored policies do not compile (codepilot_guard_policy_errors).
    int stored_errors() const;
    // reload() every `every` on a thread of its own, until destruction.
    void poll(store::Database& db, std::chrono::milliseconds every);

private:
    struct Stored {
        std::string spec;
        int64_t updated_at = 0;
        std::shared_ptr<const GuardPolicy> policy; // null: none that compiled
        std::string error;
    };
    PromptGuard configured_;
    metrics::Registry* metrics_;
    std::shared_ptr<const GuardPolicy> default_;
    std::map<std::string, std::shared_ptr<const GuardPolicy>> configured_tenants_;
    std::mutex reload_mu_; // one reload at a time: a slower, older read never replaces a newer one
    mutable std::mutex mu_;
    std::map<std::string, Stored> stored_; // by tenant name
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread poller_;
};

} // namespace codepilot::api
