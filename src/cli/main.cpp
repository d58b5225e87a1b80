// codepilot: the one binary. `serve` runs the server; `model synth` writes test models.
#include "app/application.h"
#include "cli/admin_commands.h"
#include "config/config.h"
#include "engine/model_synth.h"

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <spdlog/spdlog.h>

#ifndef CODEPILOT_VERSION
#define CODEPILOT_VERSION "0.0.0"
#endif
#ifndef CODEPILOT_GIT_SHA
#define CODEPILOT_GIT_SHA "unknown"
#endif

namespace {

using namespace codepilot;

struct ServeFlags {
    std::string config_path, model, data_dir, host, port_file, log_level = "info", name;
    std::optional<int> port, threads, parallel, ctx;
    std::string auth; // on | off
};

int serve(const ServeFlags& f) {
    spdlog::set_level(spdlog::level::from_str(f.log_level));
    config::Config cfg;
    if (!f.config_path.empty()) {
        auto loaded = config::load_config_file(f.config_path);
        if (!loaded) {
            std::cerr << "error: " << loaded.error().message << "\n";
            return 2;
        }
        cfg = loaded.value();
    }
    if (!f.model.empty()) cfg.model.path = f.model;
    if (!f.name.empty()) cfg.model.name = f.name;
    if (!f.data_dir.empty()) cfg.data_dir = f.data_dir;
    if (!f.host.empty()) cfg.server.host = f.host;
    if (f.port) cfg.server.port = *f.port;
    if (f.threads) cfg.model.threads = *f.threads;
    if (f.parallel) cfg.model.parallel = *f.parallel;
    if (f.ctx) cfg.model.ctx = *f.ctx;
    if (!f.auth.empty()) cfg.auth.enabled = f.auth == "on";
    if (auto st = config::validate(cfg); !st) {
        std::cerr << "error: " << st.error().message << "\n";
        return 2;
    }
    auto app = app::Application::create(cfg);
    if (!app) {
        std::cerr << "error: " << app.error().message << "\n";
        return 1;
    }
    if (!f.port_file.empty()) std::ofstream(f.port_file) << (*app)->port() << "\n";
    (*app)->run();
    spdlog::info("stopped");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App cli{"Codepilot: a private, self-hosted AI coding assistant server"};
    cli.set_version_flag("--version",
                         std::string("codepilot ") + CODEPILOT_VERSION + " (" + CODEPILOT_GIT_SHA + ")");
    cli.require_subcommand(1);

    ServeFlags sf;
    auto* serve_cmd = cli.add_subcommand("serve", "Serve the configured model over HTTP");
    serve_cmd->add_option("--config", sf.config_path, "TOML configuration file")->check(CLI::ExistingFile);
    serve_cmd->add_option("--model", sf.model, "GGUF model file (default: a synthesized demo model)");
    serve_cmd->add_option("--model-name", sf.name, "model id shown to clients (default: the file name)");
    serve_cmd->add_option("--data-dir", sf.data_dir, "data directory (default ./data)");
    serve_cmd->add_option("--host", sf.host, "listen address (default 127.0.0.1)");
    serve_cmd->add_option("--port", sf.port, "listen port (default 8080; 0 picks a free one)")
        ->check(CLI::Range(0, 65535));
    serve_cmd->add_option("--threads", sf.threads, "inference threads (default: all cores)")
        ->check(CLI::Range(0, 1024));
    serve_cmd->add_option("--parallel", sf.parallel, "sequences decoded together (default 4)")
        ->check(CLI::Range(1, 256));
    serve_cmd->add_option("--ctx", sf.ctx, "KV cache cells shared by all sequences (default 8192)")
        ->check(CLI::Range(64, 1 << 22));
    serve_cmd->add_option("--port-file", sf.port_file, "write the bound port to this file");
    serve_cmd
        ->add_option("--auth", sf.auth,
                     "on (default) | off: off is for local development and needs a loopback host")
        ->check(CLI::IsMember({"on", "off"}));
    serve_cmd->add_option("--log-level", sf.log_level, "trace|debug|info|warn|error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

    auto* model_cmd = cli.add_subcommand("model", "Model tools");
    model_cmd->require_subcommand(1);
    engine::SynthOptions so;
    auto* synth = model_cmd->add_subcommand(
        "synth", "Write a random-weight llama GGUF with a real tokenizer (for tests)");
    synth->add_option("output", so.output, "output .gguf path")->required();
    synth->add_option("--vocab", so.vocab,
                      "vocabulary: a models/ggml-vocab-NAME.gguf of the pinned tree, or qwen2-coder");
    synth->add_option("--vocab-file", so.vocab_file, "vocabulary GGUF file (overrides --vocab)");
    synth->add_option("--layers", so.layers, "transformer blocks")->check(CLI::Range(1, 512));
    synth->add_option("--embd", so.embd, "embedding width")->check(CLI::Range(32, 65536));
    synth->add_option("--heads", so.heads, "attention heads")->check(CLI::Range(1, 512));
    synth->add_option("--kv-heads", so.kv_heads, "key/value heads")->check(CLI::Range(1, 512));
    synth->add_option("--ff", so.ff, "feed-forward width")->check(CLI::Range(32, 1 << 20));
    synth->add_option("--type", so.type, "weight type")->check(CLI::IsMember({"f32", "f16", "q8_0"}));
    synth->add_option("--seed", so.seed, "random seed");
    synth->add_option("--ctx-train", so.ctx_train, "context length recorded in the model")
        ->check(CLI::Range(64, 1 << 22));
    bool untied = false;
    synth->add_flag("--untied", untied, "write a separate output matrix");
    std::string lora_for;
    int lora_rank = 4;
    float lora_strength = 1.0f;
    synth
        ->add_option("--lora-for", lora_for,
                     "write a random LoRA adapter for this base GGUF instead of a model")
        ->check(CLI::ExistingFile);
    synth->add_option("--lora-rank", lora_rank, "adapter rank (with --lora-for)")->check(CLI::Range(1, 1024));
    synth
        ->add_option("--lora-strength", lora_strength,
                     "adapter update size, 1 = about the weights' (with --lora-for)")
        ->check(CLI::Range(0.0, 100.0));
    auto* vocabs = model_cmd->add_subcommand("vocabs", "List the vocabularies `synth` can use");
    auto run_admin = cli::add_admin_commands(cli);

    CLI11_PARSE(cli, argc, argv);

    if (serve_cmd->parsed()) return serve(sf);
    if (int code = run_admin(); code >= 0) return code;
    if (synth->parsed()) {
        so.tie_embeddings = !untied;
        Status st = Ok{};
        if (!lora_for.empty()) {
            engine::LoraSynthOptions lo;
            lo.output = so.output;
            lo.base = lora_for;
            lo.rank = lora_rank;
            lo.strength = lora_strength;
            lo.seed = so.seed;
            st = engine::synth_lora(lo);
        } else {
            st = engine::synth_model(so);
        }
        if (!st) {
            std::cerr << "error: " << st.error().message << "\n";
            return 1;
        }
        std::cout << "wrote " << so.output << "\n";
        return 0;
    }
    if (vocabs->parsed()) {
        for (const auto& v : engine::available_vocabs(engine::default_vocab_dir())) std::cout << v << "\n";
        return 0;
    }
    return 0;
}
