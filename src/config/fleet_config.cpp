// [[models]] and [routing]: the fleet of models and how requests are routed among them.
#include "config/setters.h"

#include <algorithm>
#include <set>

namespace codepilot::config {

std::string apply_table(const toml::table& table, const std::string& where,
                        std::map<std::string, Setter>& known) {
    for (const auto& [key, value] : table) {
        std::string k(key.str());
        auto it = known.find(k);
        if (it == known.end()) return where + " has an unknown key '" + k + "'";
        if (auto err = it->second(value); !err.empty()) return where + " '" + k + "' " + err;
    }
    return "";
}

namespace {

std::map<std::string, Setter> model_setters(FleetModelConfig& m) {
    auto& l = m.local;
    return {
        {"id", string(m.id)},
        {"version", string(m.version)},
        {"backend", string(m.backend)},
        {"roles", strings(m.roles)},
        {"aliases", strings(m.aliases)},
        {"tenants", strings(m.tenants)},
        {"fallback", strings(m.fallback)},
        {"canary_of", string(m.canary_of)},
        {"canary_share", integer(m.canary_share, 0, 100)},
        {"canary_tenants", strings(m.canary_tenants)},
        {"path", string(l.path)},
        {"base", string(m.base)},
        {"lora_scale", real(m.lora_scale, -16.0, 16.0)},
        {"attach_tenants", strings(m.attach_tenants)},
        {"threads", integer(l.threads, 0, 1024)},
        {"parallel", integer(l.parallel, 1, 256)},
        {"ctx", integer(l.ctx, 64, 1 << 22)},
        {"batch", integer(l.batch, 16, 1 << 16)},
        {"queue_size", integer(l.queue_size, 0, 1 << 20)},
        {"gpu_layers", integer(l.gpu_layers, -1, 100000)},
        {"deterministic", boolean(l.deterministic)},
        {"kv_unified", boolean(l.kv_unified)},
        {"speculative_draft", integer(l.speculative_draft, 0, 64)},
        {"urls", strings(m.urls)},
        {"upstream_model", string(m.upstream_model)},
        {"api_key",
         refused("is not accepted: a key must not sit in the config file; set api_key_file or api_key_env")},
        {"api_key_file", string(m.api_key_file)},
        {"api_key_env", string(m.api_key_env)},
        {"ca_file", string(m.ca_file)},
        {"fim", string(m.fim)},
        {"context", integer(m.context, 64, 1 << 22)},
        {"connect_timeout_ms", integer(m.connect_timeout_ms, 10, 600000)},
        {"first_byte_timeout_ms", integer(m.first_byte_timeout_ms, 10, 3600000)},
        {"idle_timeout_ms", integer(m.idle_timeout_ms, 10, 3600000)},
        {"max_attempts", integer(m.max_attempts, 1, 16)},
        {"health_interval_ms", integer(m.health_interval_ms, 0, 3600000)},
        {"breaker_failures", integer(m.breaker_failures, 1, 1000)},
        {"breaker_cooldown_ms", integer(m.breaker_cooldown_ms, 10, 3600000)},
    };
}

} // namespace

std::string parse_models(const toml::node& node, std::vector<FleetModelConfig>& out) {
    const auto* array = node.as_array();
    if (!array) return "must be an array of tables ([[models]])";
    out.clear();
    for (size_t i = 0; i < array->size(); ++i) {
        const auto* table = (*array)[i].as_table();
        if (!table) return "must be an array of tables ([[models]])";
        FleetModelConfig m;
        m.local.embeddings = false;
        bool roles_given = table->contains("roles");
        auto known = model_setters(m);
        if (auto err = apply_table(*table, "entry " + std::to_string(i + 1), known); !err.empty()) return err;
        if (roles_given && std::find(m.roles.begin(), m.roles.end(), "embedding") != m.roles.end())
            m.local.embeddings = true;
        out.push_back(std::move(m));
    }
    return "";
}

std::string parse_routing_rules(const toml::node& node, std::vector<RoutingRuleConfig>& out) {
    const auto* array = node.as_array();
    if (!array) return "must be an array of tables ([[routing.rules]])";
    out.clear();
    for (size_t i = 0; i < array->size(); ++i) {
        const auto* table = (*array)[i].as_table();
        if (!table) return "must be an array of tables ([[routing.rules]])";
        RoutingRuleConfig r;
        std::map<std::string, Setter> known = {
            {"task", string(r.task)},
            {"tenant", string(r.tenant)},
            {"tier", string(r.tier)},
            {"min_prompt_tokens", integer(r.min_prompt_tokens, 0, 1 << 22)},
            {"model", string(r.model)}};
        if (auto err = apply_table(*table, "rule " + std::to_string(i + 1), known); !err.empty()) return err;
        if (r.model.empty()) return "rule " + std::to_string(i + 1) + " needs 'model'";
        out.push_back(std::move(r));
    }
    return "";
}

namespace {
Error bad_model(const std::string& msg) {
    return make_error(ErrorCode::invalid_argument, msg);
}
const std::set<std::string> kRoles = {"completion", "chat", "embedding"};

// What one entry must hold on its own (names across entries are checked by the caller).
Status check_entry(const FleetModelConfig& m, const std::string& where) {
    if (m.id.empty()) return bad_model(where + ": 'id' is required");
    if (m.roles.empty())
        return bad_model(where + ": 'roles' must name at least one of completion, chat, embedding");
    for (const auto& r : m.roles)
        if (!kRoles.count(r))
            return bad_model(where + ": role '" + r + "' is not one of completion, chat, embedding");
    if (m.backend == "local") {
        if (!m.urls.empty()) return bad_model(where + ": 'urls' is for backend = \"upstream\"");
        if (m.local.path.empty()) return bad_model(where + ": a local model needs 'path' (a GGUF file)");
        if (m.local.ctx < m.local.parallel * 16) return bad_model(where + ": ctx is too small for parallel");
    } else if (m.backend == "upstream") {
        if (m.urls.empty()) return bad_model(where + ": an upstream needs 'urls'");
        if (!m.local.path.empty()) return bad_model(where + ": 'path' is for backend = \"local\"");
        for (const auto& u : m.urls)
            if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
                return bad_model(where + ": url '" + u + "' must start with http:// or https://");
    } else if (m.backend == "lora") {
        if (m.base.empty()) return bad_model(where + ": a LoRA adapter needs 'base' (the model it adapts)");
        if (m.base == m.id) return bad_model(where + ": 'base' must name another model");
        if (m.local.path.empty()) return bad_model(where + ": a LoRA adapter needs 'path' (its GGUF file)");
        if (!m.urls.empty()) return bad_model(where + ": 'urls' is for backend = \"upstream\"");
        if (std::find(m.roles.begin(), m.roles.end(), "embedding") != m.roles.end())
            return bad_model(where + ": a LoRA adapter serves completion and chat, not embedding");
    } else {
        return bad_model(where + ": backend must be local, upstream or lora (got '" + m.backend + "')");
    }
    if (m.backend != "lora" && (!m.base.empty() || !m.attach_tenants.empty()))
        return bad_model(where + ": 'base' and 'attach_tenants' are for backend = \"lora\"");
    return Ok{};
}
} // namespace

Result<FleetModelConfig> parse_model_entry(const std::string& toml_text) {
    toml::table table;
    try {
        table = toml::parse(std::string_view(toml_text), std::string_view("model entry"));
    } catch (const toml::parse_error& e) {
        return make_error(ErrorCode::invalid_argument,
                          std::string("the model entry is not valid TOML: ") + std::string(e.description()));
    }
    FleetModelConfig m;
    m.local.embeddings = false;
    auto known = model_setters(m);
    if (auto err = apply_table(table, "the model entry", known); !err.empty())
        return make_error(ErrorCode::invalid_argument, err);
    if (std::find(m.roles.begin(), m.roles.end(), "embedding") != m.roles.end()) m.local.embeddings = true;
    const std::string where = "model" + (m.id.empty() ? std::string() : " '" + m.id + "'");
    if (auto st = check_entry(m, where); !st) return st.error();
    for (const auto& a : m.aliases)
        if (a == m.id) return bad_model(where + ": alias '" + a + "' is its own id");
    if (m.canary_of == m.id && !m.id.empty()) return bad_model(where + ": canary_of must name another model");
    return m;
}

Status validate_models(const std::vector<FleetModelConfig>& models, const RoutingConfig& routing) {
    auto bad = bad_model;
    std::set<std::string> names;
    for (size_t i = 0; i < models.size(); ++i) {
        const auto& m = models[i];
        const std::string where =
            "models[" + std::to_string(i) + "]" + (m.id.empty() ? "" : " ('" + m.id + "')");
        if (auto st = check_entry(m, where); !st) return st;
        std::vector<std::string> own = m.aliases;
        own.push_back(m.id);
        for (const auto& n : own)
            if (!names.insert(n).second)
                return bad_model(where + ": the name '" + n + "' is used by two models");
    }
    for (const auto& m : models)
        for (const auto& f : m.fallback)
            if (!names.count(f)) return bad("models ('" + m.id + "'): fallback '" + f + "' is not a model");
    for (const auto& m : models) {
        if (m.backend != "lora") continue;
        auto base = std::find_if(models.begin(), models.end(), [&](const auto& b) { return b.id == m.base; });
        if (base == models.end()) return bad("models ('" + m.id + "'): base '" + m.base + "' is not a model");
        if (base->backend != "local")
            return bad("models ('" + m.id + "'): base '" + m.base +
                       "' must be a local model (LoRA adapters apply to a loaded GGUF)");
    }
    for (const auto& m : models)
        if (!m.canary_of.empty() && (!names.count(m.canary_of) || m.canary_of == m.id))
            return bad("models ('" + m.id + "'): canary_of '" + m.canary_of + "' is not another model");
    for (const auto& r : routing.rules) {
        if (!r.task.empty() && !kRoles.count(r.task))
            return bad("routing.rules: task '" + r.task + "' is not one of completion, chat, embedding");
        if (!models.empty() && !names.count(r.model)) return bad("routing.rules: no model '" + r.model + "'");
    }
    for (const auto* d : {&routing.completion, &routing.chat, &routing.embedding})
        if (!d->empty() && !models.empty() && !names.count(*d)) return bad("routing: no model '" + *d + "'");
    return Ok{};
}

} // namespace codepilot::config
