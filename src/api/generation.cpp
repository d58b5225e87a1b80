#include "api/generation.h"

#include "api/api.h"
#include "server/async_queue.h"

namespace codepilot::api {

using engine::GenerationEvent;

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
    for (size_t i = 0; i < requests.size(); ++i) {
        requests[i].cache_scope = tenant;
        requests[i].on_event = [queue, i](const GenerationEvent& event) { queue->push({i, event}); };
        auto handle = backend.submit(std::move(requests[i]));
        if (!handle) {
            cancel_all();
            co_return handle.error();
        }
        handles.push_back(handle.value());
    }
    if (on_handles) on_handles(handles);
    exchange.on_client_gone([queue, handles] {
        for (auto& h : handles) h->cancel();
        queue->poke();
    });

    std::vector<Outcome> outcomes(handles.size());
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
        Outcome& outcome = outcomes[index];
        if (event.kind == GenerationEvent::Kind::text) {
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
