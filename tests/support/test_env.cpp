#include "support/test_env.h"

#include "engine/model_synth.h"

#include <filesystem>
#include <stdexcept>
#include <unistd.h>

#ifndef CODEPILOT_TEST_MODEL_DIR
#define CODEPILOT_TEST_MODEL_DIR "/tmp/codepilot-test-models"
#endif

namespace codepilot::testenv {
namespace {

std::string synth_cached(const std::string& name, engine::SynthOptions options) {
    std::string path = std::string(CODEPILOT_TEST_MODEL_DIR) + "/" + name + ".gguf";
    if (std::filesystem::exists(path)) return path;
    options.output = path;
    auto st = engine::synth_model(options);
    if (!st) throw std::runtime_error("cannot synthesize test model: " + st.error().message);
    return path;
}

engine::SynthOptions shape(const std::string& vocab, int layers, int embd, int heads, int kv_heads, int ff) {
    engine::SynthOptions o;
    o.vocab = vocab;
    o.layers = layers;
    o.embd = embd;
    o.heads = heads;
    o.kv_heads = kv_heads;
    o.ff = ff;
    o.type = "q8_0";
    return o;
}

} // namespace

std::string tiny_model() {
    return synth_cached("tiny-starcoder", shape("starcoder", 2, 64, 4, 2, 128));
}
std::string qwen_coder_model() {
    return synth_cached("tiny-qwen2-coder", shape("qwen2-coder", 2, 64, 4, 2, 128));
}

std::string lora_for(const std::string& base_path, const std::string& name, uint32_t seed) {
    std::string path = std::string(CODEPILOT_TEST_MODEL_DIR) + "/" + name + ".gguf";
    if (std::filesystem::exists(path)) return path;
    engine::LoraSynthOptions o;
    o.output = path;
    o.base = base_path;
    o.seed = seed;
    auto st = engine::synth_lora(o);
    if (!st) throw std::runtime_error("cannot synthesize test adapter: " + st.error().message);
    return path;
}

std::string vocab_model(const std::string& vocab) {
    return synth_cached("vocab-" + vocab, shape(vocab, 1, 32, 1, 1, 32));
}

std::unique_ptr<engine::Engine> load_engine(const std::string& model_path, int ctx) {
    engine::EngineOptions o;
    o.model_path = model_path;
    o.parallel = 1;
    o.ctx = ctx;
    o.threads = 1;
    o.embeddings = false;
    auto e = engine::Engine::load(o);
    if (!e) throw std::runtime_error(e.error().message);
    return std::move(e.value());
}

config::Config test_config(const std::string& model) {
    config::Config c;
    c.data_dir = std::filesystem::temp_directory_path() / ("codepilot-test-" + std::to_string(::getpid()));
    c.server.port = 0;
    c.server.io_threads = 2;
    c.server.shutdown_grace_s = 5;
    c.model.path = model;
    c.model.name = "tiny";
    c.model.parallel = 4;
    c.model.ctx = 4 * 1024;
    c.model.threads = 2;
    // Most suites test inference, not identity: auth off (loopback) and a private in-memory store.
    c.auth.enabled = false;
    c.store.url = "sqlite::memory:";
    return c;
}

TestServer::TestServer(const config::Config& config) {
    auto app = app::Application::create(config);
    if (!app) throw std::runtime_error("cannot start test server: " + app.error().message);
    app_ = std::move(app.value());
    app_->start();
}

TestServer::~TestServer() {
    app_->shutdown();
}

} // namespace codepilot::testenv
