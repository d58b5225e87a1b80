// The guard on the request path: every string of an inference request's JSON body (prompt,
// messages, segments, snippets and their file paths, input_extra, ...) is scanned before any
// handler reads it, and redacted, refused or counted as the caller's tenant's policy says
// (docs/guard.md). Token-id prompts carry no text to scan.
#pragma once

#include "core/result.h"
#include "guard/guard.h"
#include "metrics/metrics.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace codepilot::api {

enum class PromptAction { off, log, redact, block };
std::optional<PromptAction> parse_prompt_action(std::string_view text);
const char* to_string(PromptAction action);

// What becomes of a secret in the model's output.
enum class OutputAction { off, log, mask, end };
std::optional<OutputAction> parse_output_action(std::string_view text);
const char* to_string(OutputAction action);

// The output side of a policy, set on the exchange by the gate (Exchange::guard) and applied
// by run_generations() to every generation's text, streamed or not. Built once per policy.
struct OutputGuard {
    std::shared_ptr<const guard::RuleSet> rules; // the prompt rules, plus the policy's denylist
    OutputAction action = OutputAction::mask;
    bool pii = false;
    metrics::Registry* metrics = nullptr;
    guard::OutputFilter filter() const;
    // Counts what a filter found (codepilot_guard_findings_total, action output_<action>).
    void count(const guard::OutputFilter& filter) const;
};

// A policy as configured ([guard], [[guard.tenants]]) or set for a tenant at run time.
struct GuardSettings {
    PromptAction prompts = PromptAction::redact;
    OutputAction output = OutputAction::mask;
    bool pii = false;
    std::vector<std::string> deny; // output denylist: RE2 patterns, case-insensitive
};

// A policy compiled: what the gate and run_generations() apply.
struct GuardPolicy {
    GuardSettings settings;
    std::shared_ptr<const guard::RuleSet> rules; // for prompts: the server's, plus a tenant's own
    std::shared_ptr<const OutputGuard> output;   // null: output = off
};

// Counts findings as codepilot_guard_findings_total{rule, action}.
void count_findings(metrics::Registry* metrics, const std::vector<std::string>& rules,
                    const std::string& action);

// `base` with each denylist pattern added as a rule deny_1, deny_2, ... (case-insensitive); a
// pattern RE2 refuses, or one that matches the empty string, is named.
Result<std::shared_ptr<const guard::RuleSet>> with_denylist(const std::shared_ptr<const guard::RuleSet>& base,
                                                            const std::vector<std::string>& patterns,
                                                            const std::string& where);

// `settings` over `rules` (the output side adds the denylist). `where` names it in errors.
Result<GuardPolicy> build_policy(const GuardSettings& settings, std::shared_ptr<const guard::RuleSet> rules,
                                 metrics::Registry* metrics, const std::string& where);

// The guard as configured: the server's rules and the policies of the configuration file.
struct PromptGuard {
    std::shared_ptr<const guard::RuleSet> rules;
    GuardPolicy policy;                         // everyone's, and callers without a tenant
    std::map<std::string, GuardPolicy> tenants; // by tenant name
    const GuardPolicy& policy_for(const std::string& tenant) const;
};

struct GuardedBody {
    std::vector<std::string> rules;  // the rule of each finding, in order
    std::optional<std::string> body; // redact: the body to hand on, when something was replaced
    std::optional<Error> blocked;    // block: the answer (names the rule, the field and the line)
};

// CPU work in proportion to the body: run it off the I/O threads.
GuardedBody guard_body(const GuardPolicy& policy, const std::string& body);

} // namespace codepilot::api
