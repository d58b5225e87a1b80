// Config: the one typed, validated configuration of a Codepilot process.
// Sources, later ones winning: embedded defaults < TOML file < command-line flags.
#pragma once

#include <cstdint>
#include <string>

#include "core/result.h"

namespace codepilot::config {

struct ServerConfig {
    std::string host = "127.0.0.1";
    int port = 8080;
    int io_threads = 2;
    int64_t max_body_bytes = 32 * 1024 * 1024;  // IDE clients send whole files
    int max_header_bytes = 16 * 1024;
    int read_timeout_s = 30;      // a request (headers and body) must arrive within this
    int keep_alive_timeout_s = 60;  // an idle keep-alive connection is closed after this
    int shutdown_grace_s = 15;    // SIGTERM: in-flight requests may finish within this
    int max_connections = 1024;
};

struct ModelConfig {
    std::string path;       // empty: a synthesized demo model in data_dir
    std::string name;       // id shown by /v1/models; default: the file name without .gguf
    int threads = 0;        // 0: all cores
    int parallel = 4;       // sequences decoded together
    int ctx = 8192;         // KV cache cells in all; each request may use ctx / parallel
    int batch = 512;        // tokens per decode step
    int max_tokens_cap = 4096;  // upper bound for a request's max_tokens
    int queue_size = 64;    // requests waiting for a free sequence before 503
    bool embeddings = true; // serve /v1/embeddings
    int gpu_layers = -1;    // with a GPU build: layers to offload (-1 all)
    bool deterministic = true;  // same tokens alone or batched (CPU reference attention kernel)
    bool kv_unified = false;    // one KV pool for all sequences (less memory, batch-dependent rounding)
    int speculative_draft = 8;  // greedy requests: tokens drafted by n-gram lookup per step (0: off)
};

struct CompletionConfig {
    std::string fim_template = "auto";  // auto | psm | spm | family | "...{prefix}...{suffix}..."
    int max_prompt_tokens = 1536;       // prompt budget: nearest code, then context snippets
    int max_tokens = 64;                // default completion length
    int deadline_ms = 30000;            // server-side limit; the text so far is returned on expiry
    std::string repo_name = "repo";     // after <repo_name> for models with repo-level tokens
    bool current_line_after_middle = true;  // typing on a line re-evaluates only that line
};

struct Config {
    std::string data_dir = "./data";
    ServerConfig server;
    ModelConfig model;
    CompletionConfig completion;
};

// Parses TOML text; unknown keys and wrong types are errors naming the key.
Result<Config> parse_config(const std::string& toml_text, const std::string& source_name = "config");
// Reads and parses a file.
Result<Config> load_config_file(const std::string& path);
// Checks ranges and relations between values.
Status validate(const Config& config);

}  // namespace codepilot::config
