// Shared test fixtures: synthesized models (made once, cached in the build tree) and an
// in-process server on an ephemeral port.
#pragma once

#include "app/application.h"
#include "config/config.h"
#include "engine/engine.h"

#include <cstdint>
#include <memory>
#include <string>

namespace codepilot::testenv {

// A tiny random-weight model with StarCoder's real tokenizer (FIM and repo tokens included).
std::string tiny_model();
// The same shape with the Qwen2.5-Coder-style vocabulary (<|fim_prefix|>, <|repo_name|>, ...).
std::string qwen_coder_model();

// A random LoRA adapter for the model at `base_path` (model synth --lora-for), cached as `name`.
std::string lora_for(const std::string& base_path, const std::string& name, uint32_t seed = 7);

// The smallest model with the given vocabulary (for tokenizer and prompt-layout tests).
std::string vocab_model(const std::string& vocab);

// One sequence, a small context, no embeddings: for tokenizer and layout tests.
std::unique_ptr<engine::Engine> load_engine(const std::string& model_path, int ctx = 256);

config::Config test_config(const std::string& model = tiny_model());

// A running server; shut down (gracefully) on destruction.
class TestServer {
public:
    explicit TestServer(const config::Config& config = test_config());
    ~TestServer();
    int port() const { return app_->port(); }
    app::Application& app() { return *app_; }

private:
    std::unique_ptr<app::Application> app_;
};

} // namespace codepilot::testenv
