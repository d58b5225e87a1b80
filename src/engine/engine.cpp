// Engine: loading a GGUF model and the thread-safe entry points around the decode thread.
#include "engine/engine.h"

#include "engine/engine_state.h"
#include "engine/slot_choice.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama-context.h" // internal header of the pinned tree: get_sched() to reach the CPU backend

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <spdlog/spdlog.h>
#include <thread>

namespace codepilot::engine {
namespace {

// Set while this thread makes a llama.cpp call whose failure reason exists only in its log.
thread_local std::string* captured_error = nullptr;

void log_from_llama(ggml_log_level level, const char* text, void*) {
    std::string_view line(text);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) return;
    if (level == GGML_LOG_LEVEL_ERROR && captured_error != nullptr) captured_error->assign(line);
    switch (level) {
    case GGML_LOG_LEVEL_ERROR:
        spdlog::error("llama: {}", line);
        break;
    case GGML_LOG_LEVEL_WARN:
        // Expected: the embedding context asks for mean pooling on a model that has none.
        if (line.find("pooling_type") != std::string_view::npos)
            spdlog::debug("llama: {}", line);
        else
            spdlog::warn("llama: {}", line);
        break;
    default:
        spdlog::trace("llama: {}", line);
        break;
    }
}

// The CPU backends, whose attention kernel a deterministic engine chooses per call
// (slot_choice.h): the tiled and split-KV kernels are picked by batch shape and round
// differently from the reference kernel, which visits cells in the same order whatever the batch.
std::vector<ggml_backend_t> cpu_backends(llama_context* ctx) {
    std::vector<ggml_backend_t> out;
    ggml_backend_sched_t sched = ctx->get_sched();
    for (int i = 0; i < ggml_backend_sched_get_n_backends(sched); ++i) {
        ggml_backend_t backend = ggml_backend_sched_get_backend(sched, i);
        if (ggml_backend_is_cpu(backend)) out.push_back(backend);
    }
    return out;
}

void init_backend_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(log_from_llama, nullptr);
        llama_backend_init();
    });
}

std::string meta_string(const llama_model* model, const char* key) {
    char buf[512];
    int n = llama_model_meta_val_str(model, key, buf, sizeof(buf));
    return n > 0 ? std::string(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1))) : std::string();
}

} // namespace

const char* to_string(FinishReason reason) {
    switch (reason) {
    case FinishReason::stop:
        return "stop";
    case FinishReason::length:
        return "length";
    case FinishReason::cancelled:
        return "cancelled";
    case FinishReason::error:
        return "error";
    case FinishReason::content_filter:
        return "content_filter";
    }
    return "stop";
}

Engine::State::~State() {
    {
        // The model frees the adapters it still holds, dead ones included.
        std::lock_guard lock(reaper->mu);
        reaper->closed = true;
        reaper->dead.clear();
    }
    if (batch.token != nullptr) llama_batch_free(batch);
    for (auto& slot : slots)
        if (slot.sampler != nullptr) llama_sampler_free(slot.sampler);
    if (embed_ctx != nullptr) llama_free(embed_ctx);
    if (ctx != nullptr) llama_free(ctx);
    if (model != nullptr) llama_model_free(model);
}

Engine::Engine(std::unique_ptr<State> state) : state_(std::move(state)) {}

Engine::~Engine() {
    stop();
}

Result<std::unique_ptr<Engine>> Engine::load(const EngineOptions& options) {
    init_backend_once();
    if (!std::filesystem::exists(options.model_path))
        return make_error(ErrorCode::not_found, "model file not found: " + options.model_path);
    if (options.parallel < 1 || options.ctx < options.parallel * 16 || options.batch < 1)
        return make_error(ErrorCode::invalid_argument, "invalid engine options (parallel, ctx or batch)");

    auto state = std::make_unique<State>();
    state->options = options;
    int threads =
        options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());

    auto mparams = llama_model_default_params();
    mparams.n_gpu_layers = options.gpu_layers;
    state->model = llama_model_load_from_file(options.model_path.c_str(), mparams);
    if (state->model == nullptr)
        return make_error(ErrorCode::invalid_argument, "cannot load model " + options.model_path +
                                                           " (not a GGUF file llama.cpp can read?)");
    state->vocab = llama_model_get_vocab(state->model);

    auto cparams = llama_context_default_params();
    cparams.n_ctx = static_cast<uint32_t>(options.ctx);
    cparams.n_batch = static_cast<uint32_t>(options.batch);
    cparams.n_ubatch = static_cast<uint32_t>(std::min(options.batch, 512));
    cparams.n_seq_max = static_cast<uint32_t>(options.parallel);
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    // Per-sequence KV streams by default: attention then rounds the same whatever else is in
    // the batch. A unified pool stores shared prefixes once but breaks that exactness.
    cparams.kv_unified = options.kv_unified;
    cparams.no_perf = true;
    state->ctx = llama_init_from_model(state->model, cparams);
    if (state->ctx == nullptr) return make_error(ErrorCode::internal, "cannot create a llama context");

    if (options.deterministic) {
        state->cpu_backends = cpu_backends(state->ctx);
        state->set_reference_kernels(true);
        state->tiled_calls =
            !state->cpu_backends.empty() && std::min(options.batch, 512) >= 2 * static_cast<int>(kTiledRows);
    }
    // A unified pool shares cells between sequences, and a shift would move them for all.
    state->can_shift = !options.kv_unified && llama_memory_can_shift(llama_get_memory(state->ctx));
    state->ctx_per_sequence = options.ctx / options.parallel;
    if (options.embeddings) {
        auto eparams = cparams;
        eparams.n_ctx = static_cast<uint32_t>(std::min(state->ctx_per_sequence, 4096));
        eparams.n_batch = eparams.n_ctx;
        eparams.n_ubatch = eparams.n_ctx;
        eparams.n_seq_max = 1;
        eparams.embeddings = true;
        if (eparams.pooling_type == LLAMA_POOLING_TYPE_UNSPECIFIED ||
            eparams.pooling_type == LLAMA_POOLING_TYPE_NONE)
            eparams.pooling_type = LLAMA_POOLING_TYPE_MEAN;
        state->embed_ctx = llama_init_from_model(state->model, eparams);
        if (state->embed_ctx == nullptr) spdlog::warn("engine: embeddings are unavailable for this model");
    }

    auto& info = state->info;
    info.path = options.model_path;
    info.architecture = meta_string(state->model, "general.architecture");
    char desc[256];
    llama_model_desc(state->model, desc, sizeof(desc));
    info.description = desc;
    info.n_params = static_cast<int64_t>(llama_model_n_params(state->model));
    info.model_bytes = static_cast<int64_t>(llama_model_size(state->model));
    {
        const int64_t heads = std::max(1, llama_model_n_head(state->model));
        const int64_t kv_width =
            llama_model_n_embd(state->model) / heads * llama_model_n_head_kv(state->model);
        // K and V per layer and cell, f16 (the engine's cache type).
        info.kv_bytes = static_cast<int64_t>(llama_n_ctx(state->ctx)) * llama_model_n_layer(state->model) *
                        kv_width * 2 * 2;
    }
    info.n_ctx_train = llama_model_n_ctx_train(state->model);
    info.n_vocab = llama_vocab_n_tokens(state->vocab);
    info.n_embd = llama_model_n_embd(state->model);
    info.ctx_per_sequence = state->ctx_per_sequence;
    info.has_embeddings = state->embed_ctx != nullptr;
    info.can_shift = state->can_shift;
    const char* tmpl = llama_model_chat_template(state->model, nullptr);
    info.chat_template = tmpl != nullptr ? tmpl : "";

    auto& fim = state->fim;
    fim.prefix = llama_vocab_fim_pre(state->vocab);
    fim.suffix = llama_vocab_fim_suf(state->vocab);
    fim.middle = llama_vocab_fim_mid(state->vocab);
    fim.pad = llama_vocab_fim_pad(state->vocab);
    fim.repo_name = llama_vocab_fim_rep(state->vocab);
    fim.file_sep = llama_vocab_fim_sep(state->vocab);
    fim.bos = llama_vocab_bos(state->vocab);
    fim.eos = llama_vocab_eos(state->vocab);
    fim.add_bos = llama_vocab_get_add_bos(state->vocab);
    // llama.cpp's detection misses some spellings (StarCoder2's <repo_name>/<file_sep>).
    auto special_token = [&](std::initializer_list<const char*> spellings) -> Token {
        for (const char* text : spellings) {
            Token t[2];
            int n = llama_tokenize(state->vocab, text, static_cast<int32_t>(std::strlen(text)), t, 2, false,
                                   true);
            if (n == 1 && llama_vocab_get_attr(state->vocab, t[0]) &
                              (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED))
                return t[0];
        }
        return -1;
    };
    if (fim.repo_name < 0) fim.repo_name = special_token({"<repo_name>", "<reponame>", "<|repo_name|>"});
    if (fim.file_sep < 0) fim.file_sep = special_token({"<file_sep>", "<filename>", "<|file_sep|>"});
    info.has_fim = fim.prefix >= 0 && fim.suffix >= 0 && fim.middle >= 0;
    info.has_repo_tokens = fim.repo_name >= 0 && fim.file_sep >= 0;

    for (Token t = 0; t < info.n_vocab; ++t)
        if (llama_vocab_is_eog(state->vocab, t)) state->eog_tokens.push_back(t);

    state->slots.resize(static_cast<size_t>(options.parallel));
    for (int i = 0; i < options.parallel; ++i) state->slots[static_cast<size_t>(i)].id = i;
    state->batch = llama_batch_init(options.batch + options.parallel, 0, 1);

    spdlog::info("engine: loaded {} ({}, {} params, vocab {}, fim {}), ctx {} = {} x {}, {} threads",
                 options.model_path, info.description, info.n_params, info.n_vocab,
                 info.has_fim ? "yes" : "no", options.ctx, options.parallel, state->ctx_per_sequence,
                 threads);

    State* raw = state.get();
    raw->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<Engine>(new Engine(std::move(state)));
}

Result<std::shared_ptr<Generation>> Engine::submit(GenerationRequest request) {
    auto& s = *state_;
    if (request.prompt.empty())
        return make_error(ErrorCode::invalid_argument, "the prompt is empty", "prompt");
    if (static_cast<int>(request.prompt.size()) >= s.ctx_per_sequence)
        return make_error(ErrorCode::context_overflow,
                          "the prompt has " + std::to_string(request.prompt.size()) +
                              " tokens but a request's context holds " + std::to_string(s.ctx_per_sequence) +
                              " (prompt and completion together)",
                          "prompt");
    for (Token t : request.prompt)
        if (t < 0 || t >= s.info.n_vocab)
            return make_error(ErrorCode::invalid_argument,
                              "token id " + std::to_string(t) + " is out of range", "prompt");
    if (request.max_tokens < 0) request.max_tokens = 0; // 0: evaluate the prompt only (cache warm-up)

    auto job = std::make_unique<Job>();
    job->request = std::move(request);
    job->handle = std::make_shared<Generation>();
    job->submitted = Clock::now();
    auto handle = job->handle;
    {
        std::lock_guard lock(s.mu);
        if (s.stopping) return make_error(ErrorCode::unavailable, "the engine is stopping");
        if (s.running.load() >= s.options.parallel + s.options.queue_size)
            return make_error(ErrorCode::overloaded,
                              "the server is busy: all sequences and the queue are full");
        ++s.running;
        s.queue.push_back(std::move(job));
    }
    s.wake.notify_one();
    return handle;
}

Status Engine::embed(std::vector<std::vector<Token>> inputs, std::function<void(Result<Embeddings>)> done) {
    auto& s = *state_;
    if (s.embed_ctx == nullptr)
        return make_error(ErrorCode::unsupported, "this model does not serve embeddings");
    int limit = static_cast<int>(llama_n_ctx(s.embed_ctx));
    for (const auto& tokens : inputs) {
        if (tokens.empty()) return make_error(ErrorCode::invalid_argument, "an input is empty", "input");
        if (static_cast<int>(tokens.size()) > limit)
            return make_error(ErrorCode::context_overflow,
                              "an input has " + std::to_string(tokens.size()) + " tokens; the limit is " +
                                  std::to_string(limit),
                              "input");
        for (Token t : tokens)
            if (t < 0 || t >= s.info.n_vocab)
                return make_error(ErrorCode::invalid_argument,
                                  "token id " + std::to_string(t) + " is out of range", "input");
    }
    auto job = std::make_unique<EmbedJob>();
    job->inputs = std::move(inputs);
    job->done = std::move(done);
    {
        std::lock_guard lock(s.mu);
        if (s.stopping) return make_error(ErrorCode::unavailable, "the engine is stopping");
        if (static_cast<int>(s.embed_queue.size()) >= s.options.queue_size + 1)
            return make_error(ErrorCode::overloaded, "the server is busy: the embedding queue is full");
        s.embed_queue.push_back(job.release());
    }
    s.wake.notify_one();
    return Ok{};
}

Result<std::shared_ptr<const LoraAdapter>> Engine::load_adapter(const std::string& path, float scale) {
    auto& s = *state_;
    if (!std::filesystem::is_regular_file(path))
        return make_error(ErrorCode::not_found, "adapter file not found: " + path, "path");
    AdapterLoad load;
    load.path = path;
    load.scale = scale;
    auto result = load.done.get_future();
    {
        std::lock_guard lock(s.mu);
        if (s.stopping) return make_error(ErrorCode::unavailable, "the engine is stopping");
        s.adapter_loads.push_back(&load);
    }
    s.wake.notify_one();
    return result.get(); // the decode thread answers every load, also when it stops
}

void Engine::State::load_adapter(AdapterLoad& load) {
    std::string why;
    captured_error = &why;
    llama_adapter_lora* handle = llama_adapter_lora_init(model, load.path.c_str());
    captured_error = nullptr;
    if (handle == nullptr) {
        // "llama_adapter_lora_init_from_file_ptr: failed to apply lora adapter: <reason>"
        for (const char* marker : {"failed to apply lora adapter: ", ": "})
            if (auto at = why.find(marker); at != std::string::npos) {
                why = why.substr(at + std::strlen(marker));
                break;
            }
        load.done.set_value(make_error(ErrorCode::invalid_argument,
                                       "the LoRA adapter " + load.path + " does not fit model " +
                                           options.model_path + ": " + (why.empty() ? "unreadable" : why),
                                       "path"));
        return;
    }
    auto reaper_ref = reaper;
    std::shared_ptr<LoraAdapter> adapter(new LoraAdapter(), [reaper_ref](LoraAdapter* a) {
        {
            std::lock_guard lock(reaper_ref->mu);
            if (!reaper_ref->closed) reaper_ref->dead.push_back(a->handle);
        }
        delete a;
    });
    adapter->id = next_adapter_id++;
    adapter->path = load.path;
    adapter->scale = load.scale;
    std::error_code ec;
    adapter->file_bytes = static_cast<int64_t>(std::filesystem::file_size(load.path, ec));
    adapter->handle = handle;
    spdlog::info("engine: LoRA adapter {} loaded onto {} (scale {})", load.path, options.model_path,
                 load.scale);
    load.done.set_value(std::shared_ptr<const LoraAdapter>(std::move(adapter)));
}

void Engine::State::free_dead_adapters() {
    std::vector<llama_adapter_lora*> dead;
    {
        std::lock_guard lock(reaper->mu);
        dead.swap(reaper->dead);
    }
    if (dead.empty()) return;
    // The context may still have a dead adapter set: clear it before the adapter goes.
    llama_set_adapters_lora(ctx, nullptr, 0, nullptr);
    applied_adapter = 0;
    for (auto* handle : dead) llama_adapter_lora_free(handle);
}

void Engine::State::apply_adapter(const LoraAdapter* adapter) {
    const uint64_t id = adapter ? adapter->id : 0;
    if (id == applied_adapter) return;
    if (adapter == nullptr) {
        llama_set_adapters_lora(ctx, nullptr, 0, nullptr);
    } else {
        llama_adapter_lora* handle = adapter->handle;
        float scale = adapter->scale;
        llama_set_adapters_lora(ctx, &handle, 1, &scale);
    }
    applied_adapter = id;
}

std::vector<Token> Engine::tokenize(const std::string& text, bool add_special, bool parse_special) const {
    std::vector<Token> tokens(text.size() + 8);
    int n = llama_tokenize(state_->vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
    if (n < 0) {
        tokens.resize(static_cast<size_t>(-n));
        n = llama_tokenize(state_->vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
    }
    tokens.resize(static_cast<size_t>(std::max(n, 0)));
    return tokens;
}

std::string Engine::detokenize(const std::vector<Token>& tokens) const {
    std::string text(tokens.size() * 8 + 16, '\0');
    int n = llama_detokenize(state_->vocab, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), false, false);
    if (n < 0) {
        text.resize(static_cast<size_t>(-n));
        n = llama_detokenize(state_->vocab, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), false, false);
    }
    text.resize(static_cast<size_t>(std::max(n, 0)));
    return text;
}

std::string Engine::token_text(Token token) const {
    if (token < 0 || token >= state_->info.n_vocab) return {};
    char buf[256];
    int n = llama_token_to_piece(state_->vocab, token, buf, sizeof(buf), 0, true);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

Result<std::string> Engine::apply_chat_template(const std::vector<ChatMessage>& messages) const {
    std::vector<llama_chat_message> chat;
    size_t total = 0;
    for (const auto& m : messages) {
        chat.push_back({m.role.c_str(), m.content.c_str()});
        total += m.role.size() + m.content.size();
    }
    // The GGUF's template when llama.cpp knows it; ChatML otherwise (what most code models speak).
    const std::string& tmpl = state_->info.chat_template;
    for (const char* candidate : {tmpl.empty() ? nullptr : tmpl.c_str(), "chatml"}) {
        if (candidate == nullptr) continue;
        std::string out(total * 2 + 256, '\0');
        int n = llama_chat_apply_template(candidate, chat.data(), chat.size(), true, out.data(),
                                          static_cast<int32_t>(out.size()));
        if (n > static_cast<int>(out.size())) {
            out.resize(static_cast<size_t>(n));
            n = llama_chat_apply_template(candidate, chat.data(), chat.size(), true, out.data(),
                                          static_cast<int32_t>(out.size()));
        }
        if (n >= 0) {
            out.resize(static_cast<size_t>(n));
            return out;
        }
    }
    return make_error(ErrorCode::unsupported, "the chat template could not be applied");
}

const ModelInfo& Engine::info() const {
    return state_->info;
}
const FimTokens& Engine::fim_tokens() const {
    return state_->fim;
}

EngineStats Engine::stats() const {
    EngineStats out;
    {
        std::lock_guard lock(state_->stats_mu);
        out = state_->stats;
    }
    {
        std::lock_guard lock(state_->mu);
        out.queued = static_cast<int>(state_->queue.size());
    }
    out.running = std::max(0, state_->running.load() - out.queued);
    out.kv_cells_total = static_cast<int>(llama_n_ctx(state_->ctx));
    return out;
}

void Engine::stop() {
    if (!state_) return;
    {
        std::lock_guard lock(state_->mu);
        state_->stopping = true;
    }
    state_->wake.notify_all();
    if (state_->thread.joinable()) state_->thread.join();
}

} // namespace codepilot::engine
