// From a [[models]] entry (the config file's or the registry's) to a spec and a backend.
#include "core/secret_reference.h"
#include "inference/inference.h"

#include <algorithm>

namespace codepilot::inference {
namespace {

Result<std::unique_ptr<Backend>> load_local(const config::FleetModelConfig& model) {
    const auto& m = model.local;
    engine::EngineOptions eo;
    eo.model_path = m.path;
    eo.threads = m.threads;
    eo.parallel = m.parallel;
    eo.ctx = m.ctx;
    eo.batch = m.batch;
    eo.queue_size = m.queue_size;
    eo.embeddings = m.embeddings;
    eo.gpu_layers = m.gpu_layers;
    eo.deterministic = m.deterministic;
    eo.kv_unified = m.kv_unified;
    eo.speculative_draft = m.speculative_draft;
    auto engine = engine::Engine::load(eo);
    if (!engine)
        return make_error(engine.error().code, "model '" + model.id + "': " + engine.error().message);
    return local_backend(std::move(engine.value()));
}

Result<std::unique_ptr<Backend>> connect_upstream(const config::FleetModelConfig& m) {
    UpstreamOptions o;
    o.id = m.id;
    o.urls = m.urls;
    o.model = m.upstream_model;
    auto key = read_secret({m.api_key_file, m.api_key_env, "api_key_file", "api_key_env"});
    if (!key) return make_error(key.error().code, "model '" + m.id + "': " + key.error().message);
    o.api_key = *key;
    o.ca_file = m.ca_file;
    o.fim = m.fim;
    o.context = m.context;
    o.embeddings = std::find(m.roles.begin(), m.roles.end(), "embedding") != m.roles.end();
    o.connect_timeout_ms = m.connect_timeout_ms;
    o.first_byte_timeout_ms = m.first_byte_timeout_ms;
    o.idle_timeout_ms = m.idle_timeout_ms;
    o.max_attempts = m.max_attempts;
    o.health_interval_ms = m.health_interval_ms;
    o.breaker_failures = m.breaker_failures;
    o.breaker_cooldown_ms = m.breaker_cooldown_ms;
    return upstream_backend(o);
}

} // namespace

ModelSpec spec_of(const config::FleetModelConfig& m) {
    ModelSpec s;
    s.id = m.id;
    s.version = m.version;
    for (const auto& r : m.roles)
        if (auto task = parse_task(r)) s.roles.push_back(*task);
    s.aliases = m.aliases;
    s.tenants = m.tenants;
    s.fallback = m.fallback;
    s.canary_of = m.canary_of;
    s.canary_share = m.canary_share;
    s.canary_tenants = m.canary_tenants;
    s.base = m.base;
    s.attach_tenants = m.attach_tenants;
    return s;
}

Result<std::unique_ptr<Backend>> make_backend(const config::FleetModelConfig& m, const Fleet& fleet) {
    if (m.backend == "upstream") return connect_upstream(m);
    if (m.backend == "lora") {
        auto base = fleet.find(m.base);
        if (!base || base->retired || base->spec.id != m.base) // by id: an alias may move
            return make_error(ErrorCode::unavailable,
                              "model '" + m.id + "': its base model '" + m.base + "' is not loaded");
        auto adapter = lora_backend(base, m.local.path, m.lora_scale);
        if (!adapter)
            return make_error(adapter.error().code, "model '" + m.id + "': " + adapter.error().message);
        return adapter;
    }
    if (m.local.path.empty())
        return make_error(ErrorCode::invalid_argument, "model '" + m.id + "': a local model needs 'path'");
    return load_local(m);
}

} // namespace codepilot::inference
