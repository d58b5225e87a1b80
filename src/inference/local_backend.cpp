// The local llama.cpp engine as a Backend: a thin adapter that also counts what is in flight,
// so that unloading can drain first.
#include "inference/in_flight.h"

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
        return submit_counted(std::move(static_cast<engine::GenerationRequest&>(request)), in_flight_,
                              [this](engine::GenerationRequest r) { return engine_->submit(std::move(r)); });
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
