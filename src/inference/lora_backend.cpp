// A LoRA adapter as a Backend of its own: the base model's engine decodes, with the adapter
// applied to this backend's generations only. Routing, visibility, canaries, metrics and
// outcomes then treat an adapter like any model; the engine keeps its cached prefixes apart.
#include "inference/in_flight.h"

#include <atomic>

namespace codepilot::inference {
namespace {

class LoraBackend final : public Backend {
public:
    LoraBackend(std::shared_ptr<const FleetEntry> base, std::shared_ptr<const engine::LoraAdapter> adapter)
        : base_entry_(std::move(base)), base_(*base_entry_->backend), adapter_(std::move(adapter)),
          in_flight_(std::make_shared<std::atomic<int>>(0)) {
        info_ = base_.info();
        info_.path = adapter_->path;
        info_.model_bytes = adapter_->file_bytes; // the base's weights and cache are counted there
        info_.kv_bytes = 0;
        info_.has_embeddings = false;
    }

    const char* kind() const override { return "lora"; }

    Result<std::shared_ptr<engine::Generation>> submit(GenerationRequest request) override {
        if (stopped_.load()) return make_error(ErrorCode::unavailable, "the adapter is unloading");
        request.adapter = adapter_;
        return submit_counted(std::move(request), in_flight_,
                              [this](GenerationRequest r) { return base_.submit(std::move(r)); });
    }

    Status embed(std::vector<std::vector<Token>>, std::function<void(Result<Embeddings>)>) override {
        return make_error(ErrorCode::unsupported, "a LoRA adapter does not serve embeddings");
    }
    std::vector<Token> tokenize(const std::string& text, bool add_special,
                                bool parse_special) const override {
        return base_.tokenize(text, add_special, parse_special);
    }
    std::string detokenize(const std::vector<Token>& tokens) const override {
        return base_.detokenize(tokens);
    }
    std::string token_text(Token token) const override { return base_.token_text(token); }
    Result<std::string> apply_chat_template(const std::vector<engine::ChatMessage>& messages) const override {
        return base_.apply_chat_template(messages);
    }
    const engine::ModelInfo& info() const override { return info_; }
    const engine::FimTokens& fim_tokens() const override { return base_.fim_tokens(); }
    // The base engine's counters: the adapter shares its sequences and queue.
    engine::EngineStats stats() const override { return base_.stats(); }
    Health health() const override {
        Health h = base_.health();
        if (stopped_.load()) {
            h.serving = false;
            h.state = "stopped";
            h.replicas_up = 0;
        }
        return h;
    }
    int in_flight() const override { return in_flight_->load(); }
    // Stops this adapter only: the base keeps serving its own traffic.
    void stop() override { stopped_ = true; }

private:
    std::shared_ptr<const FleetEntry> base_entry_; // keeps the base engine alive
    Backend& base_;
    std::shared_ptr<const engine::LoraAdapter> adapter_;
    engine::ModelInfo info_;
    std::shared_ptr<std::atomic<int>> in_flight_;
    std::atomic<bool> stopped_{false};
};

} // namespace

Result<std::unique_ptr<Backend>> lora_backend(std::shared_ptr<const FleetEntry> base, const std::string& path,
                                              float scale) {
    engine::Engine* engine = base->backend->local_engine();
    if (engine == nullptr)
        return make_error(ErrorCode::invalid_argument,
                          "the base model '" + base->spec.id + "' is " + base->backend->kind() +
                              ": LoRA adapters apply to a local GGUF model",
                          "base");
    auto adapter = engine->load_adapter(path, scale);
    if (!adapter) return adapter.error();
    return std::unique_ptr<Backend>(
        std::make_unique<LoraBackend>(std::move(base), std::move(adapter.value())));
}

} // namespace codepilot::inference
