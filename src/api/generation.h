// Running engine generations from a request coroutine: submit, relay events, cancel when the
// client goes away. Shared by every API family that generates text.
#pragma once

#include "engine/engine.h"
#include "inference/inference.h"
#include "server/server.h"

#include <functional>
#include <vector>

namespace codepilot::api {

struct Outcome {
    std::string text;
    std::vector<engine::GeneratedToken> tokens;
    engine::FinishReason finish = engine::FinishReason::stop;
    engine::Usage usage;
    engine::Timings timings;
    std::string error;
    ErrorCode error_code = ErrorCode::internal;
};

// Called for each text event as it arrives (streaming); returning false stops everything.
using EventSink = std::function<server::asio::awaitable<bool>(size_t index, const engine::GenerationEvent&)>;

// Called once every request was accepted, before any event (e.g. to send stream headers
// while requests still wait in the queue); returning false stops everything.
using SubmittedHook = std::function<server::asio::awaitable<bool>()>;

// Given the handles of the submitted generations (e.g. to cancel them from elsewhere).
using HandlesHook = std::function<void(const std::vector<std::shared_ptr<engine::Generation>>&)>;

// Runs all requests concurrently; returns their outcomes in order, or the first submit error.
// With a client that went away, returns the outcomes so far with finish == cancelled.
server::asio::awaitable<Result<std::vector<Outcome>>>
run_generations(server::Exchange& exchange, inference::Backend& backend,
                std::vector<inference::GenerationRequest> requests, EventSink sink = nullptr,
                SubmittedHook on_submitted = nullptr, HandlesHook on_handles = nullptr);

} // namespace codepilot::api
