#include "app/fleet_builder.h"

#include "core/secret_reference.h"
#include "engine/model_synth.h"

#include <filesystem>
#include <spdlog/spdlog.h>

namespace codepilot::app {
namespace {

namespace fs = std::filesystem;

Status synthesize_demo(const std::string& path) {
    if (fs::exists(path)) return Ok{};
    engine::SynthOptions synth;
    synth.output = path;
    synth.vocab = "qwen2-coder";
    synth.layers = 4;
    synth.embd = 128;
    synth.heads = 4;
    synth.kv_heads = 2;
    synth.ff = 256;
    synth.type = "q8_0";
    if (auto st = engine::synth_model(synth); !st)
        return make_error(st.error().code, "cannot synthesize the demo model: " + st.error().message);
    return Ok{};
}

Result<std::unique_ptr<inference::Backend>> load_local(const config::ModelConfig& m, const std::string& id) {
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
    if (!engine) return make_error(engine.error().code, "model '" + id + "': " + engine.error().message);
    return inference::local_backend(std::move(engine.value()));
}

Result<std::unique_ptr<inference::Backend>> connect_upstream(const config::FleetModelConfig& m) {
    inference::UpstreamOptions o;
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
    return inference::upstream_backend(o);
}

inference::ModelSpec spec_of(const config::FleetModelConfig& m) {
    inference::ModelSpec s;
    s.id = m.id;
    s.version = m.version;
    for (const auto& r : m.roles) s.roles.push_back(*inference::parse_task(r));
    s.aliases = m.aliases;
    s.tenants = m.tenants;
    s.fallback = m.fallback;
    s.canary_of = m.canary_of;
    s.canary_share = m.canary_share;
    s.canary_tenants = m.canary_tenants;
    return s;
}

void add_gauges(metrics::Registry& metrics, const std::string& id, inference::Backend* b) {
    const metrics::Labels model{{"model", id}};
    metrics.gauge("codepilot_model_requests_running", "Generations in flight, per model", model,
                  [b] { return b->stats().running; });
    metrics.gauge("codepilot_model_requests_queued", "Generations waiting for a sequence, per model", model,
                  [b] { return b->stats().queued; });
    metrics.gauge("codepilot_model_serving", "1 while the model serves requests", model,
                  [b] { return b->health().serving ? 1.0 : 0.0; });
    metrics.gauge("codepilot_model_replicas_up",
                  "Replicas (upstream) or engines (local) that can take requests", model,
                  [b] { return b->health().replicas_up; });
}

} // namespace

Result<BuiltFleet> build_fleet(const config::Config& config, const std::string& demo_path,
                               const api::CompletionSettings& completion, metrics::Registry& metrics) {
    std::vector<config::FleetModelConfig> models = config.models;
    if (models.empty()) { // the single [model] section
        config::FleetModelConfig m;
        m.local = config.model;
        if (m.local.path.empty()) {
            m.local.path = demo_path;
            if (auto st = synthesize_demo(demo_path); !st) return st.error();
            spdlog::warn("no model configured: serving a synthesized demo model with random weights ({}).",
                         demo_path);
            spdlog::warn("its output is noise. Serve a real GGUF with: codepilot serve --model "
                         "qwen2.5-coder-1.5b-q4_k_m.gguf");
        }
        m.id = config.model.name.empty() ? fs::path(m.local.path).stem().string() : config.model.name;
        m.roles = {"completion", "chat"};
        if (config.model.embeddings) m.roles.push_back("embedding");
        models.push_back(std::move(m));
    }
    BuiltFleet out;
    out.fleet = std::make_unique<inference::Fleet>();
    for (const auto& m : models) {
        Result<std::unique_ptr<inference::Backend>> backend =
            m.backend == "upstream" ? connect_upstream(m)
            : m.local.path.empty()
                ? Result<std::unique_ptr<inference::Backend>>(make_error(
                      ErrorCode::invalid_argument, "model '" + m.id + "': a local model needs 'path'"))
                : load_local(m.local, m.id);
        if (!backend) return backend.error();
        inference::Backend* raw = backend->get();
        auto spec = spec_of(m);
        const bool completes = spec.serves(inference::Task::completion);
        if (auto st = out.fleet->add(std::move(spec), std::move(backend.value())); !st) return st.error();
        add_gauges(metrics, m.id, raw);
        if (completes) {
            std::optional<completion::CustomTemplate> custom;
            auto fim = api::CompletionService::resolve_template(*raw, completion, custom);
            if (!fim) return make_error(fim.error().code, "model '" + m.id + "': " + fim.error().message);
            auto service = std::make_unique<api::CompletionService>(*raw, completion, metrics, m.id);
            out.service_by_model[m.id] = service.get();
            out.services.push_back(std::move(service));
            spdlog::info("model '{}' ({}): FIM family {}, layout {}{}", m.id, raw->kind(),
                         completion::to_string(fim->family),
                         fim->layout == completion::FimLayout::spm ? "SPM" : "PSM",
                         custom ? " (custom template)" : "");
        } else {
            spdlog::info("model '{}' ({})", m.id, raw->kind());
        }
    }
    std::map<inference::Task, std::string> defaults;
    if (!config.routing.completion.empty()) defaults[inference::Task::completion] = config.routing.completion;
    if (!config.routing.chat.empty()) defaults[inference::Task::chat] = config.routing.chat;
    if (!config.routing.embedding.empty()) defaults[inference::Task::embedding] = config.routing.embedding;
    std::vector<inference::RoutingRule> rules;
    for (const auto& r : config.routing.rules) {
        inference::RoutingRule rule;
        if (!r.task.empty()) rule.task = inference::parse_task(r.task);
        rule.tenant = r.tenant;
        rule.tier = r.tier;
        rule.min_prompt_tokens = r.min_prompt_tokens;
        rule.model = r.model;
        rules.push_back(std::move(rule));
    }
    if (auto st = out.fleet->configure_routing(std::move(defaults), std::move(rules)); !st) return st.error();
    auto d = out.fleet->default_for(inference::Task::completion);
    out.default_model = d ? *d : out.fleet->entries().front()->spec.id;
    return out;
}

} // namespace codepilot::app
