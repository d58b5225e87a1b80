#include "api/generation.h"

#include "api/api.h"
#include "api/prompt_guard.h"
#include "api/response_cache.h"
#include "server/async_queue.h"

#include <optional>

namespace codepilot::api {

using engine::GenerationEvent;

// The tokens (for logprobs) to send with text the output filter let through: all that are held
// when the filter has masked nothing, else none of their text (a token could carry part of a
// secret): their pieces and alternatives are dropped, their log-probabilities kept.
std::vector<engine::GeneratedToken> release_tokens(std::vector<engine::GeneratedToken>& held,
                                                   const guard::OutputFilter& filter) {
    std::vector<engine::GeneratedToken> out;
    out.swap(held);
    if (filter.masked())
        for (auto& t : out) {
            t.piece.clear();
            t.top_logprobs.clear();
        }
    return out;
}

// What the calls consumed, as the engine counted it, for the audit trail and usage.
void record_usage(server::Exchange& exchange, const std::vector<Outcome>& outcomes) {
    for (const auto& o : outcomes) {
        exchange.usage.prompt_tokens += o.usage.prompt_tokens;
        exchange.usage.completion_tokens += o.usage.completion_tokens;
        exchange.usage.cached_tokens += o.usage.cached_tokens;
        exchange.usage.shifted_tokens += o.usage.shifted_tokens;
        server::Exchange::CallUsage::Timing t;
        t.queue_ms = o.timings.queue_ms;
        t.first_token_ms = o.usage.completion_tokens > 0 ? o.timings.first_token_ms : 0;
        if (o.usage.completion_tokens > 1)
            t.inter_token_ms = o.timings.generation_ms / (o.usage.completion_tokens - 1);
        exchange.usage.generations.push_back(t);
        if (!exchange.usage.completion_text.empty()) exchange.usage.completion_text += "\n";
        exchange.usage.completion_text += o.text;
    }
}

server::asio::awaitable<Result<std::vector<Outcome>>>
run_generations(server::Exchange& exchange, inference::Backend& backend,
                std::vector<inference::GenerationRequest> requests, EventSink sink,
                SubmittedHook on_submitted, HandlesHook on_handles) {
    if (requests.size() > 1 && exchange.claim_generations)
        if (auto claimed = co_await exchange.claim_generations(static_cast<int64_t>(requests.size()) - 1);
            !claimed)
            co_return claimed.error();
    auto executor = co_await server::asio::this_coro::executor;
    auto queue = std::make_shared<server::AsyncQueue<std::pair<size_t, GenerationEvent>>>(executor);
    std::vector<std::shared_ptr<engine::Generation>> handles;
    auto cancel_all = [&handles] {
        for (auto& h : handles) h->cancel();
    };

    // No cached state crosses tenants: a prefix cached for one would show in another's
    // cached_tokens and timings (the engine scopes by adapter as well).
    const std::string& tenant = caller_of(exchange).tenant_id;
    auto* cache = static_cast<ResponseCache*>(exchange.response_cache);
    size_t hits = 0;
    // Misses of the response cache: their keys, and the model's raw output (before the output
    // guard), kept here on the request's coroutine rather than on the decode thread.
    std::vector<std::optional<std::string>> miss_keys(requests.size());
    std::vector<CachedGeneration> raw(requests.size());
    std::vector<int> max_tokens(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
        requests[i].cache_scope = tenant;
        requests[i].on_event = [queue, i](const GenerationEvent& event) { queue->push({i, event}); };
        if (auto key =
                cache ? ResponseCache::key_of(requests[i], tenant, exchange.usage.model) : std::nullopt) {
            if (auto hit = cache->find(*key)) { // the model's answer as it gave it, replayed
                GenerationEvent text;
                text.text = std::move(hit->text);
                text.tokens = std::move(hit->tokens);
                GenerationEvent done;
                done.kind = GenerationEvent::Kind::done;
                done.finish = hit->finish;
                done.usage = hit->usage;
                done.usage.cached_tokens = done.usage.prompt_tokens; // nothing evaluated
                done.usage.shifted_tokens = 0;
                if (!text.text.empty() || !text.tokens.empty()) requests[i].on_event(text);
                requests[i].on_event(done);
                handles.push_back(std::make_shared<engine::Generation>());
                ++hits;
                continue;
            }
            miss_keys[i] = std::move(*key); // what the model writes is kept once it ends on its own
            max_tokens[i] = requests[i].max_tokens;
        }
        auto handle = backend.submit(std::move(requests[i]));
        if (!handle) {
            cancel_all();
            co_return handle.error();
        }
        handles.push_back(handle.value());
    }
    if (hits > 0 && hits == handles.size())
        exchange.response_headers.emplace_back("x-codepilot-cache", "hit");
    if (on_handles) on_handles(handles);
    exchange.on_client_gone([queue, handles] {
        for (auto& h : handles) h->cancel();
        queue->poke();
    });

    std::vector<Outcome> outcomes(handles.size());
    // The output guard: each generation's text passes a filter that holds back the word being
    // written (a secret may still be arriving) and masks, or ends the answer before, what it finds.
    const auto* output_guard = static_cast<const OutputGuard*>(exchange.guard.get());
    std::vector<std::optional<guard::OutputFilter>> filters(handles.size());
    if (output_guard)
        for (auto& f : filters) f.emplace(output_guard->filter());
    std::vector<std::vector<engine::GeneratedToken>> held_tokens(handles.size());
    // Once cancelled, the events still coming are read to the end (the engine answers every
    // cancelled generation within a step) so that the usage recorded is what was really used.
    bool cancelled = on_submitted && !co_await on_submitted();
    if (cancelled) cancel_all();
    size_t finished = 0;
    while (finished < handles.size()) {
        if (!cancelled && exchange.client_gone()) {
            cancelled = true;
            cancel_all();
        }
        auto item = co_await queue->pop();
        if (!item) continue;
        auto& [index, event] = *item;
        if (const auto& key = miss_keys[index]) {
            CachedGeneration& g = raw[index];
            if (event.kind == GenerationEvent::Kind::text) {
                g.text += event.text;
                g.tokens.insert(g.tokens.end(), event.tokens.begin(), event.tokens.end());
            } else if (ResponseCache::keepable(max_tokens[index], event)) {
                g.finish = event.finish;
                g.usage = event.usage;
                cache->store(*key, std::move(g));
            }
        }
        Outcome& outcome = outcomes[index];
        auto& filter = filters[index];
        std::optional<GenerationEvent> flushed; // the filter's held-back text, before a done event
        if (filter && output_guard->action != OutputAction::log) {
            auto& held = held_tokens[index];
            if (event.kind == GenerationEvent::Kind::text) {
                const bool was_ended = filter->ended();
                event.text = filter->push(event.text);
                held.insert(held.end(), event.tokens.begin(), event.tokens.end());
                event.tokens.clear();
                if (!event.text.empty()) event.tokens = release_tokens(held, *filter);
                if (filter->ended() && !was_ended) handles[index]->cancel(); // `end`: the answer stops here
            } else {
                GenerationEvent rest;
                rest.text = filter->finish();
                rest.tokens = release_tokens(held, *filter);
                if (!rest.text.empty() || !rest.tokens.empty()) flushed = std::move(rest);
                if (filter->ended()) event.finish = engine::FinishReason::content_filter;
                output_guard->count(*filter);
                for (const auto& rule : filter->rules())
                    exchange.usage.guard_rules.push_back("output:" + rule);
            }
        } else if (filter) { // log: look, count, change nothing
            if (event.kind == GenerationEvent::Kind::text) {
                filter->push(event.text);
            } else {
                filter->finish();
                output_guard->count(*filter);
                for (const auto& rule : filter->rules())
                    exchange.usage.guard_rules.push_back("output:" + rule);
            }
        }
        if (flushed) {
            outcome.text += flushed->text;
            outcome.tokens.insert(outcome.tokens.end(), flushed->tokens.begin(), flushed->tokens.end());
            if (!cancelled && sink && !co_await sink(index, *flushed)) {
                cancelled = true;
                cancel_all();
            }
        }
        if (event.kind == GenerationEvent::Kind::text) {
            if (event.text.empty() && event.tokens.empty()) continue; // all of it held back
            outcome.text += event.text;
            outcome.tokens.insert(outcome.tokens.end(), event.tokens.begin(), event.tokens.end());
        } else {
            outcome.finish = event.finish;
            outcome.usage = event.usage;
            outcome.timings = event.timings;
            outcome.error = event.error;
            outcome.error_code = event.error_code;
            ++finished;
        }
        if (!cancelled && sink && !co_await sink(index, event)) {
            cancelled = true;
            cancel_all();
        }
    }
    if (cancelled)
        for (auto& o : outcomes) o.finish = engine::FinishReason::cancelled;
    record_usage(exchange, outcomes);
    co_return outcomes;
}

} // namespace codepilot::api
