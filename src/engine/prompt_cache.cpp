// Placing a request in a sequence: which cached KV it reuses (the common prefix, chunks
// shifted into place, or, for exact requests, only what a cold start would compute alike).
#include "engine/engine_state.h"
#include "engine/sampler.h"
#include "engine/slot_choice.h"

#include <algorithm>

namespace codepilot::engine {

namespace {
// The prefix cache is scoped by tenant and adapter: KV computed with an adapter differs from
// the base model's, and no cached state crosses tenants.
std::string cache_key(const GenerationRequest& request) {
    if (!request.adapter) return request.cache_scope;
    return request.cache_scope + '\x1f' + "lora:" + std::to_string(request.adapter->id);
}
} // namespace

void Engine::State::place(std::unique_ptr<Job> job) {
    const auto& prompt = job->request.prompt;
    const std::string scope = cache_key(job->request);
    std::vector<SlotView> views;
    views.reserve(slots.size());
    for (const auto& s : slots) views.push_back({s.busy(), &s.cached, s.scope, s.last_used});
    llama_memory_t mem = llama_get_memory(ctx);
    const size_t min_chunk =
        can_shift ? static_cast<size_t>(std::max(job->request.kv_shift_min_chunk, 0)) : 0;
    SlotChoice choice = choose_slot(views, prompt, scope, min_chunk);
    Slot& slot = slots[static_cast<size_t>(choice.slot)];
    ReusePlan& plan = choice.plan;

    // What of the source a cold start would have computed alike: exact requests keep no more.
    const Slot* source = choice.source >= 0 ? &slots[static_cast<size_t>(choice.source)] : nullptr;
    const size_t source_tiled = source ? source->tiled_end : 0;
    const size_t boundary = tiled_calls ? tiled_boundary(prompt.size()) : 0;
    size_t exact_keep = std::min(plan.prefix, source ? source->exact_len() : 0);
    if (tiled_calls) exact_keep = exact_reuse(exact_keep, exact_keep, source_tiled, boundary);
    if (min_chunk == 0) plan.prefix = exact_keep;

    if (choice.source != choice.slot) {
        llama_memory_seq_rm(mem, slot.id, -1, -1);
        slot.cached.clear();
        if (source != nullptr && plan.reused() > 0) {
            if (options.kv_unified) {
                // A unified pool shares the copied cells, so they can never be shifted (can_shift is off).
                llama_memory_seq_cp(mem, choice.source, slot.id, 0, static_cast<llama_pos>(plan.prefix));
                slot.cached.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(plan.prefix));
            } else {
                // Across per-sequence streams llama.cpp copies whole buffers; the plan trims the copy.
                llama_memory_seq_cp(mem, choice.source, slot.id, -1, -1);
                slot.cached = source->cached;
            }
        }
    }
    const size_t reuse = slot.cached.empty() ? 0 : apply_reuse_plan(slot, plan);
    const size_t shifted = reuse > plan.prefix ? reuse - plan.prefix : 0;
    slot.tiled_end = std::min(source_tiled, reuse);
    // Beyond exact_keep (a shifted chunk, a kernel other than a cold start's) the sequence,
    // and all it computes after, is approximate.
    slot.inexact_from = reuse > exact_keep ? exact_keep : SIZE_MAX;
    slot.bulk_end = boundary > reuse && boundary - reuse >= kTiledRows ? boundary : reuse;

    auto now = Clock::now();
    slot.scope = scope;
    slot.sampler = make_sampler(job->request.sampling, vocab, job->request.ignore_eos, eog_tokens);
    slot.text.emplace(job->request.stop);
    slot.prompt_done = reuse;
    slot.next_token = -1;
    slot.generated = 0;
    slot.unsent.clear();
    slot.emitted.clear();
    slot.draft.clear();
    slot.draft_budget = DraftBudget(options.speculative_draft);
    slot.usage =
        Usage{static_cast<int>(prompt.size()), static_cast<int>(reuse), 0, static_cast<int>(shifted)};
    slot.timings = Timings{};
    slot.timings.queue_ms = std::chrono::duration<double, std::milli>(now - job->submitted).count();
    slot.prompt_start = now;
    slot.admitted_order = ++clock;
    slot.job = std::move(job);

    std::lock_guard lock(stats_mu);
    stats.requests_started++;
    stats.prompt_tokens += static_cast<int64_t>(prompt.size());
    stats.cached_tokens += static_cast<int64_t>(reuse);
    stats.shifted_tokens += static_cast<int64_t>(shifted);
}

size_t Engine::State::apply_reuse_plan(Slot& slot, const ReusePlan& plan) {
    llama_memory_t mem = llama_get_memory(ctx);
    size_t head = std::min(plan.prefix, slot.cached.size());
    bool ok = true;
    for (const auto& chunk : plan.chunks) {
        // Drop what was deleted before the chunk, then move the chunk down to follow `head`.
        ok = llama_memory_seq_rm(mem, slot.id, static_cast<llama_pos>(head),
                                 static_cast<llama_pos>(chunk.from));
        if (!ok) break;
        llama_memory_seq_add(mem, slot.id, static_cast<llama_pos>(chunk.from),
                             static_cast<llama_pos>(chunk.from + chunk.length),
                             static_cast<llama_pos>(chunk.to) - static_cast<llama_pos>(chunk.from));
        std::copy(slot.cached.begin() + static_cast<std::ptrdiff_t>(chunk.from),
                  slot.cached.begin() + static_cast<std::ptrdiff_t>(chunk.from + chunk.length),
                  slot.cached.begin() + static_cast<std::ptrdiff_t>(chunk.to));
        head = chunk.to + chunk.length;
    }
    if (ok) ok = llama_memory_seq_rm(mem, slot.id, static_cast<llama_pos>(head), -1);
    if (!ok) { // a cache that cannot drop part of a sequence (recurrent models): start over
        llama_memory_seq_rm(mem, slot.id, -1, -1);
        head = 0;
    }
    slot.cached.resize(head);
    return head;
}

} // namespace codepilot::engine
