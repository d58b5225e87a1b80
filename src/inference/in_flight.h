// Internal: counting a backend's generations from submit to their done event, which is what
// unloading waits for (Backend::in_flight).
#pragma once

#include "inference/inference.h"

#include <atomic>
#include <memory>

namespace codepilot::inference {

// Submits `request` with `submit`, counted in `counter` until its done event has been relayed.
template <typename Request, typename Submit>
Result<std::shared_ptr<engine::Generation>>
submit_counted(Request request, const std::shared_ptr<std::atomic<int>>& counter, Submit&& submit) {
    auto relay = std::move(request.on_event);
    request.on_event = [counter, relay = std::move(relay)](const engine::GenerationEvent& ev) {
        if (relay) relay(ev);
        if (ev.kind == engine::GenerationEvent::Kind::done) counter->fetch_sub(1);
    };
    counter->fetch_add(1);
    auto handle = submit(std::move(request));
    if (!handle) counter->fetch_sub(1);
    return handle;
}

} // namespace codepilot::inference
