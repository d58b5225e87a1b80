// Internal: the state shared by engine.cpp (loading, tokenizing) and decode_loop.cpp.
#pragma once

#include "engine/draft.h"
#include "engine/engine.h"
#include "engine/slot_choice.h"
#include "engine/text_stream.h"
#include "ggml-backend.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <llama.h>
#include <mutex>
#include <optional>
#include <thread>

namespace codepilot::engine {

using Clock = std::chrono::steady_clock;

struct Job {
    GenerationRequest request;
    std::shared_ptr<Generation> handle;
    Clock::time_point submitted;
};

struct AdapterLoad {
    std::string path;
    float scale = 1.0f;
    std::promise<Result<std::shared_ptr<const LoraAdapter>>> done;
};

// Adapters whose last holder let go, freed by the decode thread (llama.cpp's model must not
// change while it decodes). Outlives the engine when a holder does: then the model frees them.
struct AdapterReaper {
    std::mutex mu;
    std::vector<llama_adapter_lora*> dead;
    bool closed = false; // the model is gone (it freed every adapter it still had)
};

struct EmbedJob {
    std::vector<std::vector<Token>> inputs;
    std::function<void(Result<Engine::Embeddings>)> done;
};

// One llama sequence: its cached tokens outlive the request that filled them.
struct Slot {
    int id = 0;
    std::vector<Token> cached; // tokens whose KV is in this sequence, in order
    std::string scope;
    uint64_t last_used = 0;
    // Exactness bookkeeping (deterministic engines, slot_choice.h): cached positions below
    // tiled_end came from the tiled attention kernel; those from inexact_from on were
    // computed after a shifted chunk and differ from a cold start.
    size_t tiled_end = 0;
    size_t inexact_from = SIZE_MAX;
    size_t bulk_end = 0; // this request's prompt positions below it go to tiled calls
    size_t exact_len() const { return std::min(cached.size(), inexact_from); }

    // The request running here, if any.
    std::unique_ptr<Job> job;
    llama_sampler* sampler = nullptr;
    std::optional<TextStream> text;
    size_t prompt_done = 0; // prompt tokens in the KV cache
    Token next_token = -1;  // sampled, not yet evaluated
    int generated = 0;
    int batch_output = -1;              // index of this slot's logits in the current batch
    std::vector<GeneratedToken> unsent; // tokens whose text is still held back
    std::string emitted;                // text emitted so far (only kept when stop_when is set)
    std::vector<Token> draft;           // speculative tokens to verify after next_token
    DraftBudget draft_budget;
    Usage usage;
    Timings timings;
    Clock::time_point prompt_start, first_token_at;
    uint64_t admitted_order = 0;

    bool busy() const { return job != nullptr; }
    const LoraAdapter* adapter() const { return job ? job->request.adapter.get() : nullptr; }
    bool in_prompt() const { return job && prompt_done < job->request.prompt.size(); }
};

struct Engine::State {
    EngineOptions options;
    llama_model* model = nullptr;
    llama_context* ctx = nullptr;
    llama_context* embed_ctx = nullptr;
    const llama_vocab* vocab = nullptr;
    ModelInfo info;
    FimTokens fim;
    std::vector<Token> eog_tokens;
    int ctx_per_sequence = 0;
    bool can_shift = false;   // KV positions can be moved (per-sequence streams, RoPE model)
    bool tiled_calls = false; // deterministic: prompts in tiled calls, the rest by reference (slot_choice.h)
    std::vector<ggml_backend_t> cpu_backends; // whose kernel choice is switched per call
    bool use_ref = false;                     // as last set on cpu_backends
    void set_reference_kernels(bool on);

    std::mutex mu;
    std::condition_variable wake;
    std::deque<std::unique_ptr<Job>> queue; // guarded by mu
    std::deque<EmbedJob*> embed_queue;      // guarded by mu
    std::deque<AdapterLoad*> adapter_loads; // guarded by mu
    bool stopping = false;                  // guarded by mu
    std::atomic<int> running{0};

    std::shared_ptr<AdapterReaper> reaper = std::make_shared<AdapterReaper>();
    std::atomic<uint64_t> next_adapter_id{1};

    // Decode-thread only.
    uint64_t applied_adapter = 0; // LoraAdapter::id set on ctx (0: none); ids are never reused
    std::vector<Slot> slots;
    llama_batch batch{};
    uint64_t clock = 0;
    std::thread thread;

    mutable std::mutex stats_mu;
    EngineStats stats;

    ~State();
    void run(); // the decode thread

private:
    void admit(std::vector<std::unique_ptr<Job>> jobs);
    void place(std::unique_ptr<Job> job);
    size_t apply_reuse_plan(Slot& slot, const ReusePlan& plan); // returns the tokens kept
    void load_adapter(AdapterLoad& load);
    void free_dead_adapters();
    void apply_adapter(const LoraAdapter* adapter);
    void step();
    bool decode_batch(); // false: the step failed (its requests are finished with an error)
    void sample_outputs(const LoraAdapter* group);
    bool accept_token(Slot& slot, Token token, int output_index);
    void finish(Slot& slot, FinishReason reason, const std::string& error = {});
    void fail_batch(const std::string& error);
    void reap_cancelled();
    void run_embeddings(EmbedJob& job);
    void emit(Slot& slot, GenerationEvent event);
    void shutdown_all();
};

} // namespace codepilot::engine
