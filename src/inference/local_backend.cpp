// The local llama.cpp engine as a Backend: a thin adapter that also counts what is in flight,
// so that unloading can drain first.
#include "inference/inference.h"

#include <atomic>

namespace codepilot::inference {
namespace {

class LocalBackend final : public Backend {
public:
    explicit LocalBackend(std::unique_ptr<engine::Engine> engine)
        : engine_(std::move(engine)), in_flight_(std::make_shared<std::atomic<int>>(0)) {}
    ~LocalBackend() override { engine_->stop(); }

    const char* kind() const override { return "local"; }

    Result<std::shared_ptr<engine::Generation>> submit(GenerationRequest request) override {
        if (!request.messages.empty() && request.prompt.empty()) {
            auto text = engine_->apply_chat_template(request.messages);
            if (!text) return text.error();
            request.prompt = engine_->tokenize(*text, true, true);
        }
        engine::GenerationRequest plain = std::move(static_cast<engine::GenerationRequest&>(request));
        auto counter = in_flight_;
        auto relay = std::move(plain.on_event);
        plain.on_event = [counter, relay = std::move(relay)](const engine::GenerationEvent& ev) {
            if (relay) relay(ev);
            if (ev.kind == engine::GenerationEvent::Kind::done) counter->fetch_sub(1);
        };
        counter->fetch_add(1);
        auto handle = engine_->submit(std::move(plain));
        if (!handle) counter->fetch_sub(1);
        return handle;
    }

    Status embed(std::vector<std::vector<Token>> inputs,
                 std::function<void(Result<Embeddings>)> done) override {
        return engine_->embed(std::move(inputs), std::move(done));
    }
    std::vector<Token> tokenize(const std::string& text, bool add_special,
                                bool parse_special) const override {
        return engine_->tokenize(text, add_special, parse_special);
    }
    std::string detokenize(const std::vector<Token>& tokens) const override {
        return engine_->detokenize(tokens);
    }
    std::string token_text(Token token) const override { return engine_->token_text(token); }
    Result<std::string> apply_chat_template(const std::vector<engine::ChatMessage>& messages) const override {
        return engine_->apply_chat_template(messages);
    }
    const engine::ModelInfo& info() const override { return engine_->info(); }
    const engine::FimTokens& fim_tokens() const override { return engine_->fim_tokens(); }
    engine::EngineStats stats() const override { return engine_->stats(); }
    Health health() const override {
        Health h;
        h.serving = !stopped_.load();
        h.state = h.serving ? "serving" : "stopped";
        h.replicas_up = h.serving ? 1 : 0;
        return h;
    }
    int in_flight() const override { return in_flight_->load(); }
    void stop() override {
        stopped_ = true;
        engine_->stop();
    }
    engine::Engine* local_engine() override { return engine_.get(); }

private:
    std::unique_ptr<engine::Engine> engine_;
    std::shared_ptr<std::atomic<int>> in_flight_;
    std::atomic<bool> stopped_{false};
};

} // namespace

std::unique_ptr<Backend> local_backend(std::unique_ptr<engine::Engine> engine) {
    return std::make_unique<LocalBackend>(std::move(engine));
}

} // namespace codepilot::inference
