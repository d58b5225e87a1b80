#include "audit/audit.h"

namespace codepilot::audit {

std::string canonical_body(const Record& r) {
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
