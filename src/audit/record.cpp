#include "audit/audit.h"
#include "guard/guard.h"

namespace codepilot::audit {

namespace {

// The text as the policy keeps it: cut at max_bytes (on a UTF-8 boundary), then redacted or sealed.
nlohmann::json kept_text(const std::string& text, const PromptPolicy& policy) {
    std::string cut = text;
    bool truncated = false;
    if (cut.size() > policy.max_bytes) {
        size_t at = policy.max_bytes;
        while (at > 0 && (static_cast<unsigned char>(cut[at]) & 0xC0) == 0x80) --at;
        cut.resize(at);
        truncated = true;
    }
    nlohmann::json out;
    if (policy.storage == PromptStorage::redacted) {
        auto r = guard::redact_secrets(cut, policy.rules.get());
        out = {{"text", r.text}, {"secrets_redacted", r.secrets}};
    } else {
        out = {{"sealed", seal(policy.keys, cut)}};
    }
    if (truncated) out["truncated_from_bytes"] = text.size();
    return out;
}

} // namespace

std::string canonical_body(const Record& r, const PromptPolicy& policy) {
    nlohmann::json j; // object keys are kept sorted: the dump is canonical
    j["kind"] = r.kind;
    j["at_ms"] = r.at_ms;
    j["request_id"] = r.request_id;
    j["tenant"] = r.tenant;
    j["user"] = r.username;
    j["key_prefix"] = r.key_prefix;
    j["auth"] = r.auth_method;
    j["client_ip"] = r.client_ip;
    j["user_agent"] = r.user_agent;
    if (r.kind == "call") {
        j["method"] = r.method;
        j["route"] = r.route;
        j["model"] = r.model;
        j["status"] = r.status;
        j["prompt_tokens"] = r.prompt_tokens;
        j["completion_tokens"] = r.completion_tokens;
        j["cached_tokens"] = r.cached_tokens;
        j["latency_ms"] = r.latency_ms;
        if (!r.guard_rules.empty()) j["guard"] = r.guard_rules; // absent before the guard: old rows verify
        if (policy.storage != PromptStorage::none && (!r.prompt.empty() || !r.completion.empty())) {
            j["prompt"] = kept_text(r.prompt, policy);
            j["completion"] = kept_text(r.completion, policy);
        }
    } else {
        j["action"] = r.action;
        j["object"] = r.object;
        j["before"] = r.before;
        j["after"] = r.after;
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Durability> parse_durability(std::string_view text) {
    if (text == "sync") return Durability::sync;
    if (text == "batched") return Durability::batched;
    if (text == "off") return Durability::off;
    return std::nullopt;
}

} // namespace codepilot::audit
