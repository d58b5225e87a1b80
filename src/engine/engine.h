// The engine: one loaded GGUF model, its decode thread, continuous batching, prefix reuse
// across requests, sampling, stop rules, cancellation and embeddings.
// It knows nothing of HTTP, users or JSON; callers hand it tokens and get events back.
#pragma once

#include "core/result.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct llama_adapter_lora;

namespace codepilot::engine {

using Token = int32_t;

// A LoRA adapter loaded onto an engine's model (Engine::load_adapter). A request that carries
// it is decoded with it applied, and its cached prefixes are kept apart from every other
// adapter's and the base model's. Freed (on the decode thread) when the last holder lets go.
struct LoraAdapter {
    uint64_t id = 0; // unique per engine: part of the prefix-cache scope
    std::string path;
    float scale = 1.0f;
    int64_t file_bytes = 0; // about what its tensors take in memory
    llama_adapter_lora* handle = nullptr;
};

struct EngineOptions {
    std::string model_path;
    int threads = 0;        // 0: all cores
    int parallel = 4;       // sequences decoded together
    int ctx = 8192;         // KV cells for all sequences: ctx / parallel per request
    int batch = 512;        // tokens per decode step
    int queue_size = 64;    // waiting requests before submit() refuses
    bool embeddings = true; // create an embedding context
    int gpu_layers = -1;    // layers offloaded when built with a GPU backend
    // CPU: use ggml's reference attention path, whose rounding does not depend on what else
    // is in the batch, so that a request gives the same tokens alone or batched.
    bool deterministic = true;
    // One KV cell pool for all sequences (shared prefixes stored once) instead of a stream
    // per sequence; saves memory, but results then depend on batch composition.
    bool kv_unified = false;
    // Greedy requests: verify up to this many tokens drafted from the sequence itself per
    // step (n-gram lookup; no second model). 0 disables.
    int speculative_draft = 8;
};

struct SamplingParams {
    float temperature = 0.8f; // <= 0: greedy
    int top_k = 40;           // <= 0: off
    float top_p = 0.95f;      // 1: off
    float min_p = 0.05f;      // 0: off
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    float repeat_penalty = 1.0f;
    int penalty_last_n = 64;
    uint32_t seed = 0xFFFFFFFF; // 0xFFFFFFFF: random
};

struct TokenLogprob {
    std::string text;
    float logprob = 0.0f;
};

struct GeneratedToken {
    Token token = 0;
    std::string piece;                      // the token's text (may be a partial UTF-8 sequence)
    float logprob = 0.0f;                   // filled when logprobs were asked for
    std::vector<TokenLogprob> top_logprobs; // ditto
};

// content_filter: the answer was cut by the API's output guard (never set by the engine).
enum class FinishReason { stop, length, cancelled, error, content_filter };

const char* to_string(FinishReason reason);

struct Usage {
    int prompt_tokens = 0;
    int cached_tokens = 0; // prompt tokens whose KV was reused from an earlier request
    int completion_tokens = 0;
    int shifted_tokens = 0; // of cached_tokens, those moved to a new position (kv_shift_min_chunk)
};

struct Timings {
    double queue_ms = 0;       // from submit to a sequence being assigned
    double prompt_ms = 0;      // evaluating the prompt (excluding reused tokens)
    double generation_ms = 0;  // from the first to the last generated token
    double first_token_ms = 0; // from submit to the first generated token
};

// Events go to the request's callback on the decode thread; the callback must not block.
struct GenerationEvent {
    enum class Kind { text, done } kind = Kind::text;
    std::string text;                   // kind == text: safe-to-show text (complete UTF-8, no stop text)
    std::vector<GeneratedToken> tokens; // the tokens that produced `text` (for logprobs)
    FinishReason finish = FinishReason::stop; // kind == done
    Usage usage;                              // kind == done
    Timings timings;                          // kind == done
    std::string error;                        // finish == error
    ErrorCode error_code =
        ErrorCode::internal; // finish == error: its kind (upstream backends: bad_gateway, ...)
};

struct GenerationRequest {
    std::vector<Token> prompt;
    SamplingParams sampling;
    int max_tokens = 16; // 0: only evaluate the prompt (fills the KV cache)
    std::vector<std::string> stop;
    bool ignore_eos = false;
    int logprobs = 0;        // top alternatives to report per token (0: none)
    std::string cache_scope; // prefix-cache isolation key (a tenant); "" is shared
    // Decoded with this LoRA adapter applied (null: the base model). Sequences of different
    // adapters go to separate llama_decode calls (llama.cpp applies adapters per context).
    std::shared_ptr<const LoraAdapter> adapter;
    // After the common prefix, runs of at least this many cached tokens that this prompt has
    // at an earlier position (text deleted before them) are moved there by shifting their
    // KV positions instead of being evaluated again. Approximate: those tokens keep the
    // attention state of their old context, so the output can differ from a cold start's
    // (docs/completion.md has the measured effect). 0: exact reuse only. Needs per-sequence
    // KV streams and a model whose cache can shift (ModelInfo::can_shift).
    int kv_shift_min_chunk = 0;
    // Called on the decode thread with all text emitted so far after each piece; true ends
    // generation (finish_reason "stop"). Lets callers stop as soon as a code block is done.
    std::function<bool(const std::string&)> stop_when;
    // Generation ends ("length") at this time point, with what was generated so far.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    // Generation ends ("length") this long after the first generated token (0: no limit).
    int max_predict_ms = 0;
    std::function<void(const GenerationEvent&)> on_event;
};

// A submitted request; cancel() stops it within one decode step and frees its sequence.
class Generation {
public:
    void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
    bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

private:
    std::atomic<bool> cancelled_{false};
};

struct ModelInfo {
    std::string path;
    std::string architecture;
    std::string description;
    int64_t n_params = 0;
    int64_t model_bytes = 0; // weights in memory (0: unknown, an upstream)
    int64_t kv_bytes = 0;    // the KV cache of all sequences (estimate)
    int n_ctx_train = 0;
    int n_vocab = 0;
    int n_embd = 0;
    int ctx_per_sequence = 0; // prompt + completion limit of one request
    bool has_fim = false;
    bool has_repo_tokens = false;
    bool has_embeddings = false;
    bool can_shift = false; // kv_shift_min_chunk can apply (per-sequence streams, RoPE, no recurrence)
    std::string chat_template;
};

struct FimTokens {
    Token prefix = -1, suffix = -1, middle = -1, pad = -1, repo_name = -1, file_sep = -1;
    Token bos = -1, eos = -1;
    bool add_bos = false;
};

struct EngineStats {
    int64_t requests_started = 0;
    int64_t prompt_tokens = 0; // prompt tokens of admitted requests
    int64_t prompt_tokens_evaluated = 0;
    int64_t cached_tokens = 0;  // prompt tokens reused from the KV cache
    int64_t shifted_tokens = 0; // ... of which moved to a new position
    int64_t generated_tokens = 0;
    int64_t decode_steps = 0;
    int64_t draft_tokens_proposed = 0; // speculative tokens verified
    int64_t draft_tokens_accepted = 0; // ... that the model agreed with
    int running = 0;                   // sequences assigned to requests
    int queued = 0;
    int kv_cells_used = 0; // cells holding cached tokens (as of the last step)
    int kv_cells_total = 0;
};

struct ChatMessage {
    std::string role;
    std::string content;
};

class Engine {
public:
    // Loads the model and starts the decode thread.
    static Result<std::unique_ptr<Engine>> load(const EngineOptions& options);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues a request. Fails with context_overflow, overloaded or unavailable.
    Result<std::shared_ptr<Generation>> submit(GenerationRequest request);

    using Embeddings = std::vector<std::vector<float>>;
    // Mean-pooled, L2-normalised embeddings, computed on the decode thread between steps;
    // `done` is called there. An error returned here means `done` will not be called.
    Status embed(std::vector<std::vector<Token>> inputs, std::function<void(Result<Embeddings>)> done);

    // Loads a GGUF LoRA adapter for this engine's model, on the decode thread between two steps
    // (llama.cpp's model is not safe to change while it decodes); blocks until it is done.
    // Errors: not_found (no file), invalid_argument (not an adapter, or one made for another
    // base model: the message says which tensor or key does not fit), unavailable (stopping).
    Result<std::shared_ptr<const LoraAdapter>> load_adapter(const std::string& path, float scale = 1.0f);

    std::vector<Token> tokenize(const std::string& text, bool add_special, bool parse_special) const;
    std::string detokenize(const std::vector<Token>& tokens) const;
    std::string token_text(Token token) const;
    Result<std::string> apply_chat_template(const std::vector<ChatMessage>& messages) const;

    const ModelInfo& info() const;
    const FimTokens& fim_tokens() const;
    EngineStats stats() const;

    // Stops the decode thread; pending and running requests finish with FinishReason::cancelled.
    void stop();

private:
    struct State;
    explicit Engine(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

} // namespace codepilot::engine
