// The decode thread: admits requests into sequences (reusing cached prefixes), builds one
// llama_batch per step with a token of every generating sequence plus prompt chunks, samples,
// applies stop rules and streams events back.
#include "engine/draft.h"
#include "engine/engine_state.h"
#include "engine/sampler.h"
#include "engine/slot_choice.h"
#include "ggml-cpu.h"

#include <algorithm>
#include <cmath>
#include <spdlog/spdlog.h>

namespace codepilot::engine {
namespace {

constexpr long kMaxSequencesForDrafts = 2;

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

void batch_add(llama_batch& batch, Token token, int pos, int seq, bool output) {
    int i = batch.n_tokens++;
    batch.token[i] = token;
    batch.pos[i] = pos;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = seq;
    batch.logits[i] = output ? 1 : 0;
}

} // namespace

void Engine::State::run() {
    for (;;) {
        std::vector<std::unique_ptr<Job>> admitted;
        EmbedJob* embed_job = nullptr;
        std::deque<AdapterLoad*> loads;
        free_dead_adapters();
        {
            std::unique_lock lock(mu);
            bool active = std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.busy(); });
            if (!active)
                wake.wait(lock, [&] {
                    return stopping || !queue.empty() || !embed_queue.empty() || !adapter_loads.empty();
                });
            if (stopping) break;
            loads.swap(adapter_loads);
            size_t free_slots =
                std::count_if(slots.begin(), slots.end(), [](const Slot& s) { return !s.busy(); });
            // Cancelled jobs leave the queue at once (admit() answers them), not when a slot frees.
            for (auto it = queue.begin(); it != queue.end();) {
                if ((*it)->handle->cancelled()) {
                    admitted.push_back(std::move(*it));
                    it = queue.erase(it);
                } else {
                    ++it;
                }
            }
            while (free_slots > 0 && !queue.empty()) {
                admitted.push_back(std::move(queue.front()));
                queue.pop_front();
                --free_slots;
            }
            if (!embed_queue.empty()) {
                embed_job = embed_queue.front();
                embed_queue.pop_front();
            }
        }
        for (AdapterLoad* load : loads) load_adapter(*load);
        admit(std::move(admitted));
        if (embed_job != nullptr) {
            run_embeddings(*embed_job);
            delete embed_job;
        }
        reap_cancelled();
        step();
    }
    shutdown_all();
}

void Engine::State::admit(std::vector<std::unique_ptr<Job>> jobs) {
    for (auto& job : jobs) {
        if (job->handle->cancelled()) {
            --running; // before the event, as in finish()
            GenerationEvent done;
            done.kind = GenerationEvent::Kind::done;
            done.finish = FinishReason::cancelled;
            if (job->request.on_event) job->request.on_event(done);
            continue;
        }
        place(std::move(job));
    }
}

void Engine::State::reap_cancelled() {
    auto now = Clock::now();
    for (auto& slot : slots) {
        if (!slot.busy()) continue;
        if (slot.job->handle->cancelled())
            finish(slot, FinishReason::cancelled);
        else if (slot.job->request.deadline && now >= *slot.job->request.deadline)
            finish(slot, FinishReason::length);
    }
}

namespace {

// Tokens of a tiled call for `remaining` tiled positions within `cap`: never fewer than
// kTiledRows, and never leaving fewer than kTiledRows behind (each call must stay tiled).
size_t tiled_chunk(size_t remaining, size_t cap) {
    size_t n = std::min(remaining, cap);
    if (n < remaining && remaining - n < kTiledRows) n = remaining - kTiledRows;
    return n >= kTiledRows ? n : 0;
}

} // namespace

void Engine::State::set_reference_kernels(bool on) {
    if (on == use_ref || cpu_backends.empty()) return;
    llama_synchronize(ctx);
    for (ggml_backend_t backend : cpu_backends) ggml_backend_cpu_set_use_ref(backend, on);
    use_ref = on;
}

bool Engine::State::decode_batch() {
    int rc = llama_decode(ctx, batch);
    if (rc == 0) return true;
    spdlog::error("engine: llama_decode failed ({})", rc);
    fail_batch(rc == 1 ? "the KV cache is full" : "decoding failed (" + std::to_string(rc) + ")");
    return false;
}

void Engine::State::step() {
    int budget = options.batch;
    std::vector<Slot*> generating;
    for (auto& slot : slots) {
        slot.batch_output = -1;
        if (!slot.busy() || slot.in_prompt() || slot.next_token < 0) continue;
        size_t room = budget > 1 ? static_cast<size_t>(budget - 1) : 0;
        if (slot.draft.size() > room) slot.draft.resize(room);
        generating.push_back(&slot);
        budget -= 1 + static_cast<int>(slot.draft.size());
    }

    // Prompts in admission order, each chunk as large as the remaining budget allows; the
    // tiled part of a prompt (deterministic engines) in calls of its own.
    std::vector<Slot*> prompting;
    for (auto& slot : slots)
        if (slot.in_prompt()) prompting.push_back(&slot);
    std::sort(prompting.begin(), prompting.end(),
              [](const Slot* a, const Slot* b) { return a->admitted_order < b->admitted_order; });
    struct Chunk {
        Slot* slot;
        size_t n;
        bool tiled;
    };
    std::vector<Chunk> chunks;
    const size_t ubatch = static_cast<size_t>(std::min(options.batch, 512));
    for (Slot* slot : prompting) {
        if (budget <= 0) break;
        size_t done = slot->prompt_done;
        if (done < slot->bulk_end) {
            size_t cap = std::min(std::max(static_cast<size_t>(budget), kTiledRows), ubatch);
            size_t n = tiled_chunk(slot->bulk_end - done, cap);
            if (n == 0) continue;
            chunks.push_back({slot, n, true});
            budget -= static_cast<int>(n);
            done += n;
            if (done < slot->bulk_end || budget <= 0) continue;
        }
        size_t n = std::min(slot->job->request.prompt.size() - done, static_cast<size_t>(budget));
        chunks.push_back({slot, n, false});
        budget -= static_cast<int>(n);
    }

    auto add_prompt = [&](Slot* slot, size_t n) {
        const auto& prompt = slot->job->request.prompt;
        for (size_t k = 0; k < n; ++k) {
            size_t i = slot->prompt_done + k;
            bool last = i + 1 == prompt.size();
            batch_add(batch, prompt[i], static_cast<int>(slot->cached.size() + k), slot->id, last);
            if (last) slot->batch_output = batch.n_tokens - 1;
        }
    };
    auto commit_prompt = [&](Slot* slot, size_t n) {
        const auto& prompt = slot->job->request.prompt;
        slot->cached.insert(slot->cached.end(),
                            prompt.begin() + static_cast<std::ptrdiff_t>(slot->prompt_done),
                            prompt.begin() + static_cast<std::ptrdiff_t>(slot->prompt_done + n));
        slot->prompt_done += n;
        if (!slot->in_prompt()) slot->timings.prompt_ms = ms_between(slot->prompt_start, Clock::now());
    };

    // llama.cpp applies LoRA adapters to a whole context: one decode per adapter among the
    // sequences of this step, the one applied already first (a switch re-reserves the graph).
    // Taken now: sampling a group finishes some of its requests (and drops their adapter).
    std::vector<const LoraAdapter*> adapter_of(slots.size());
    for (auto& slot : slots) adapter_of[static_cast<size_t>(slot.id)] = slot.adapter();
    auto in_group = [&](const Slot* slot, const LoraAdapter* group) {
        return adapter_of[static_cast<size_t>(slot->id)] == group && slot->busy();
    };
    std::vector<const LoraAdapter*> groups;
    auto note_group = [&](const LoraAdapter* a) {
        if (std::find(groups.begin(), groups.end(), a) == groups.end()) groups.push_back(a);
    };
    for (Slot* slot : generating) note_group(slot->adapter());
    for (const auto& c : chunks) note_group(c.slot->adapter());
    std::stable_partition(groups.begin(), groups.end(),
                          [&](const LoraAdapter* a) { return (a ? a->id : 0) == applied_adapter; });

    bool decoded = false;
    for (const LoraAdapter* group : groups) {
        apply_adapter(group);
        bool group_decoded = false;
        for (const auto& c : chunks) {
            if (!c.tiled || !in_group(c.slot, group)) continue;
            batch.n_tokens = 0;
            add_prompt(c.slot, c.n);
            set_reference_kernels(false);
            if (!decode_batch()) return;
            commit_prompt(c.slot, c.n);
            c.slot->tiled_end = c.slot->prompt_done;
            group_decoded = true;
        }

        batch.n_tokens = 0;
        for (Slot* slot : generating) {
            if (!in_group(slot, group)) continue;
            int pos = static_cast<int>(slot->cached.size());
            batch_add(batch, slot->next_token, pos, slot->id, true);
            slot->batch_output = batch.n_tokens - 1;
            for (size_t i = 0; i < slot->draft.size(); ++i)
                batch_add(batch, slot->draft[i], pos + 1 + static_cast<int>(i), slot->id, true);
        }
        for (const auto& c : chunks)
            if (!c.tiled && in_group(c.slot, group)) add_prompt(c.slot, c.n);
        if (batch.n_tokens > 0) {
            set_reference_kernels(options.deterministic);
            if (!decode_batch()) return;
            for (Slot* slot : generating)
                if (in_group(slot, group)) slot->cached.push_back(slot->next_token);
            for (const auto& c : chunks)
                if (!c.tiled && in_group(c.slot, group)) commit_prompt(c.slot, c.n);
            group_decoded = true;
        }
        // The logits are this decode's: sample before the next group's decode replaces them.
        if (group_decoded) sample_outputs(group);
        decoded = decoded || group_decoded;
    }
    if (!decoded) return;
    std::lock_guard lock(stats_mu);
    stats.decode_steps++;
    stats.kv_cells_used = 0;
    for (const auto& s : slots) stats.kv_cells_used += static_cast<int>(s.cached.size());
    for (const auto& c : chunks) stats.prompt_tokens_evaluated += static_cast<int64_t>(c.n);
}

void Engine::State::sample_outputs(const LoraAdapter* group) {
    llama_memory_t mem = llama_get_memory(ctx);
    static const std::vector<Token> kNone;
    // On a CPU a wide batch is compute-bound already: drafts pay off only while few
    // sequences generate (a GPU would afford them at any width).
    const bool may_draft = std::count_if(slots.begin(), slots.end(), [](const Slot& s) {
                               return s.busy() && !s.in_prompt();
                           }) <= kMaxSequencesForDrafts;
    for (auto& slot : slots) {
        if (!slot.busy() || slot.batch_output < 0 || slot.adapter() != group) continue;
        if (slot.job->request.max_tokens == 0) { // warm-up: the prompt is in the cache now
            finish(slot, FinishReason::length);
            continue;
        }
        const bool greedy = is_plain_greedy(slot.job->request.sampling);
        const bool ignore_eos = slot.job->request.ignore_eos;
        const size_t proposed = slot.draft.size();
        size_t accepted = 0;
        int out = slot.batch_output;
        // The drafts were decoded right after this slot's token: each one the model agrees
        // with is already in the cache, and its logits give the next token for free.
        for (;;) {
            Token token = greedy ? argmax_token(ctx, out, info.n_vocab, ignore_eos ? eog_tokens : kNone)
                                 : llama_sampler_sample(slot.sampler, ctx, out);
            if (!accept_token(slot, token, out)) break; // finished (the request is gone)
            if (accepted < proposed && token == slot.draft[accepted]) {
                slot.cached.push_back(token);
                ++accepted;
                out = slot.batch_output + static_cast<int>(accepted);
                continue;
            }
            slot.next_token = token;
            break;
        }
        if (proposed > 0) {
            llama_memory_seq_rm(mem, slot.id, static_cast<llama_pos>(slot.cached.size()),
                                -1); // rejected drafts
            slot.draft_budget.record(static_cast<int>(proposed), static_cast<int>(accepted));
            std::lock_guard lock(stats_mu);
            stats.draft_tokens_proposed += static_cast<int64_t>(proposed);
            stats.draft_tokens_accepted += static_cast<int64_t>(accepted);
        }
        slot.draft.clear();
        if (may_draft && slot.busy() && greedy && slot.job->request.logprobs == 0 &&
            options.speculative_draft > 0) {
            slot.draft_budget.tick();
            const auto& req = slot.job->request;
            int len = std::min({slot.draft_budget.next(), req.max_tokens - slot.generated - 1,
                                ctx_per_sequence - static_cast<int>(slot.cached.size()) - 2});
            if (len > 0) {
                std::vector<Token> history = slot.cached;
                history.push_back(slot.next_token);
                slot.draft = ngram_draft(history, static_cast<size_t>(len));
            }
        }
    }
}

bool Engine::State::accept_token(Slot& slot, Token token, int output_index) {
    const auto& req = slot.job->request;
    auto now = Clock::now();
    if (slot.generated == 0) {
        slot.first_token_at = now;
        slot.timings.first_token_ms = ms_between(slot.job->submitted, now);
    }
    slot.generated++;
    slot.usage.completion_tokens = slot.generated;
    slot.timings.generation_ms = ms_between(slot.first_token_at, now);
    {
        std::lock_guard lock(stats_mu);
        stats.generated_tokens++;
    }
    if (llama_vocab_is_eog(vocab, token) && !req.ignore_eos) {
        finish(slot, FinishReason::stop);
        return false;
    }
    GeneratedToken gen;
    gen.token = token;
    char buf[256];
    int len = llama_token_to_piece(vocab, token, buf, sizeof(buf), 0, false);
    if (len < 0) {
        gen.piece.resize(static_cast<size_t>(-len));
        len = llama_token_to_piece(vocab, token, gen.piece.data(), -len, 0, false);
        gen.piece.resize(static_cast<size_t>(std::max(len, 0)));
    } else {
        gen.piece.assign(buf, static_cast<size_t>(len));
    }
    if (req.logprobs > 0) fill_logprobs(ctx, vocab, output_index, req.logprobs, gen);

    std::string text = slot.text->push(gen.piece);
    slot.unsent.push_back(std::move(gen));
    bool stop_now = false;
    if (!text.empty()) {
        if (req.stop_when) {
            slot.emitted += text;
            stop_now = req.stop_when(slot.emitted);
        }
        GenerationEvent event;
        event.text = std::move(text);
        event.tokens = std::move(slot.unsent);
        slot.unsent.clear();
        emit(slot, std::move(event));
    }
    bool out_of_time = (req.deadline && now >= *req.deadline) ||
                       (req.max_predict_ms > 0 && slot.timings.generation_ms >= req.max_predict_ms);
    if (slot.text->stopped() || stop_now) {
        finish(slot, FinishReason::stop);
        return false;
    }
    if (slot.generated >= req.max_tokens || out_of_time ||
        static_cast<int>(slot.cached.size()) + 1 >= ctx_per_sequence) {
        finish(slot, FinishReason::length);
        return false;
    }
    return true;
}

void Engine::State::emit(Slot& slot, GenerationEvent event) {
    if (slot.job->request.on_event) slot.job->request.on_event(event);
}

void Engine::State::finish(Slot& slot, FinishReason reason, const std::string& error) {
    if (reason != FinishReason::cancelled && reason != FinishReason::error) {
        std::string rest = slot.text->flush();
        if (!rest.empty() || !slot.unsent.empty()) {
            GenerationEvent event;
            event.text = std::move(rest);
            event.tokens = std::move(slot.unsent);
            emit(slot, std::move(event));
        }
    }
    GenerationEvent done;
    done.kind = GenerationEvent::Kind::done;
    done.finish = reason;
    done.usage = slot.usage;
    done.timings = slot.timings;
    done.error = error;
    auto job = std::move(slot.job);

    llama_sampler_free(slot.sampler);
    slot.sampler = nullptr;
    slot.text.reset();
    slot.unsent.clear();
    slot.next_token = -1;
    slot.batch_output = -1;
    slot.last_used = ++clock;
    --running; // before the event: whoever sees "done" also sees the capacity back
    if (job->request.on_event) job->request.on_event(done);
}

void Engine::State::fail_batch(const std::string& error) {
    // The cache state of the failed sequences is unknown: drop it so it is never reused.
    llama_memory_t mem = llama_get_memory(ctx);
    for (auto& slot : slots) {
        if (!slot.busy()) continue;
        finish(slot, FinishReason::error, error);
        llama_memory_seq_rm(mem, slot.id, -1, -1);
        slot.cached.clear();
    }
}

void Engine::State::run_embeddings(EmbedJob& job) {
    std::vector<std::vector<float>> out;
    llama_memory_t mem = llama_get_memory(embed_ctx);
    int n_embd = llama_model_n_embd(model);
    llama_batch eb = llama_batch_init(static_cast<int32_t>(llama_n_batch(embed_ctx)), 0, 1);
    for (const auto& tokens : job.inputs) {
        llama_memory_clear(mem, true);
        eb.n_tokens = 0;
        for (size_t i = 0; i < tokens.size(); ++i) batch_add(eb, tokens[i], static_cast<int>(i), 0, true);
        if (llama_decode(embed_ctx, eb) != 0) {
            llama_batch_free(eb);
            job.done(make_error(ErrorCode::internal, "embedding failed"));
            return;
        }
        const float* v = llama_get_embeddings_seq(embed_ctx, 0);
        if (v == nullptr) {
            llama_batch_free(eb);
            job.done(make_error(ErrorCode::internal, "the model returned no embedding"));
            return;
        }
        double norm = 0;
        for (int i = 0; i < n_embd; ++i) norm += static_cast<double>(v[i]) * v[i];
        norm = norm > 0 ? std::sqrt(norm) : 1.0;
        std::vector<float> e(static_cast<size_t>(n_embd));
        for (int i = 0; i < n_embd; ++i) e[static_cast<size_t>(i)] = static_cast<float>(v[i] / norm);
        out.push_back(std::move(e));
    }
    llama_batch_free(eb);
    job.done(std::move(out));
}

void Engine::State::shutdown_all() {
    for (auto& slot : slots)
        if (slot.busy()) finish(slot, FinishReason::cancelled);
    std::deque<std::unique_ptr<Job>> pending;
    std::deque<EmbedJob*> embeds;
    std::deque<AdapterLoad*> loads;
    {
        std::lock_guard lock(mu);
        pending.swap(queue);
        embeds.swap(embed_queue);
        loads.swap(adapter_loads);
    }
    for (auto* load : loads)
        load->done.set_value(make_error(ErrorCode::unavailable, "the engine is stopping"));
    for (auto& job : pending) {
        --running;
        GenerationEvent done;
        done.kind = GenerationEvent::Kind::done;
        done.finish = FinishReason::cancelled;
        if (job->request.on_event) job->request.on_event(done);
    }
    for (auto* e : embeds) {
        e->done(make_error(ErrorCode::unavailable, "the engine is stopping"));
        delete e;
    }
}

} // namespace codepilot::engine
