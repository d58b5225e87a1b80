#include "app/fleet_builder.h"

#include "core/secret_reference.h"
#include "engine/model_synth.h"

#include <algorithm>
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

} // namespace

// Per-model gauges read the model while it is in the fleet (0 once it is unloaded).
void add_model_gauges(metrics::Registry& metrics, const inference::Fleet::EntryPtr& entry) {
    const metrics::Labels model{{"model", entry->spec.id}};
    std::weak_ptr<const inference::FleetEntry> weak = entry;
    auto read = [weak](auto f) {
        return [weak, f]() -> double {
            auto e = weak.lock();
            return e && !e->retired ? f(*e->backend) : 0.0;
        };
    };
    metrics.gauge("codepilot_model_requests_running", "Generations in flight, per model", model,
                  read([](inference::Backend& b) { return double(b.stats().running); }));
    metrics.gauge("codepilot_model_requests_queued", "Generations waiting for a sequence, per model", model,
                  read([](inference::Backend& b) { return double(b.stats().queued); }));
    metrics.gauge("codepilot_model_serving", "1 while the model serves requests", model,
                  read([](inference::Backend& b) { return b.health().serving ? 1.0 : 0.0; }));
    metrics.gauge("codepilot_model_replicas_up",
                  "Replicas (upstream) or engines (local) that can take requests", model,
                  read([](inference::Backend& b) { return double(b.health().replicas_up); }));
    metrics.gauge(
        "codepilot_model_memory_bytes", "Weights and KV cache in memory, per model (local models)", model,
        read([](inference::Backend& b) { return double(b.info().model_bytes + b.info().kv_bytes); }));
}

Result<std::unique_ptr<inference::Companion>> completion_companion(const inference::ModelSpec& spec,
                                                                   inference::Backend& backend,
                                                                   const api::CompletionSettings& completion,
                                                                   metrics::Registry& metrics) {
    if (!spec.serves(inference::Task::completion)) {
        spdlog::info("model '{}' ({})", spec.id, backend.kind());
        return std::unique_ptr<inference::Companion>();
    }
    std::optional<completion::CustomTemplate> custom;
    auto fim = api::CompletionService::resolve_template(backend, completion, custom);
    if (!fim) return make_error(fim.error().code, "model '" + spec.id + "': " + fim.error().message);
    spdlog::info("model '{}' ({}): FIM family {}, layout {}{}", spec.id, backend.kind(),
                 completion::to_string(fim->family),
                 fim->layout == completion::FimLayout::spm ? "SPM" : "PSM",
                 custom ? " (custom template)" : "");
    return std::unique_ptr<inference::Companion>(
        std::make_unique<api::CompletionService>(backend, completion, metrics, spec.id));
}

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
    // LoRA adapters load onto their base models: those first.
    std::stable_partition(models.begin(), models.end(), [](const auto& m) { return m.backend != "lora"; });
    BuiltFleet out;
    out.fleet = std::make_unique<inference::Fleet>();
    for (const auto& m : models) {
        auto backend = inference::make_backend(m, *out.fleet);
        if (!backend) return backend.error();
        auto spec = inference::spec_of(m);
        auto companion = completion_companion(spec, **backend, completion, metrics);
        if (!companion) return companion.error();
        if (auto st =
                out.fleet->add(std::move(spec), std::move(backend.value()), std::move(companion.value()));
            !st)
            return st.error();
        add_model_gauges(metrics, out.fleet->find(m.id));
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
