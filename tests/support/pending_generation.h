// A generation submitted to an engine whose events are gathered for a test to inspect.
#pragma once

#include "engine/engine.h"

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace codepilot::testenv {

struct Collected {
    std::string text;
    std::vector<engine::Token> tokens;
    std::vector<float> logprobs; // when the request asked for them: bit-exact comparisons
    engine::GenerationEvent done;
};

// A request whose events are gathered; wait() returns them once done.
class Pending {
public:
    Pending(engine::Engine& engine, engine::GenerationRequest request) {
        request.on_event = [this](const engine::GenerationEvent& e) {
            std::lock_guard lock(mu_);
            if (e.kind == engine::GenerationEvent::Kind::text) {
                result_.text += e.text;
                for (const auto& t : e.tokens) {
                    result_.tokens.push_back(t.token);
                    result_.logprobs.push_back(t.logprob);
                }
                if (!first_text_) first_text_ = true, cv_.notify_all();
            } else {
                result_.done = e;
                finished_ = true;
                cv_.notify_all();
            }
        };
        auto h = engine.submit(std::move(request));
        if (!h) throw std::runtime_error(h.error().message);
        handle_ = h.value();
    }
    Collected wait() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return finished_; });
        return result_;
    }
    void wait_first_text() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return first_text_ || finished_; });
    }
    engine::Generation& handle() { return *handle_; }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    Collected result_;
    bool finished_ = false, first_text_ = false;
    std::shared_ptr<engine::Generation> handle_;
};

inline engine::GenerationRequest greedy(std::vector<engine::Token> prompt, int max_tokens) {
    engine::GenerationRequest r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    return r;
}

} // namespace codepilot::testenv
