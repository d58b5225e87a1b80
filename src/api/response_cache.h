// The exact-response cache: a deterministic generation (greedy: temperature 0) of the same
// tenant, model version, prompt tokens and parameters is answered from memory instead of the
// model. Keys carry the tenant and the model's id@version, so a hit never crosses tenants and a
// new version starts cold. The model's raw output is kept: the output guard, post-processing
// and the audit trail treat a hit like any generation (docs/api.md).
#pragma once

#include "engine/engine.h"
#include "inference/inference.h"
#include "metrics/metrics.h"

#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace codepilot::api {

struct CachedGeneration {
    std::string text;
    std::vector<engine::GeneratedToken> tokens;
    engine::FinishReason finish = engine::FinishReason::stop;
    engine::Usage usage;
};

class ResponseCache {
public:
    // Bounded by entries and by bytes (text, tokens and keys), least recently used out first.
    ResponseCache(size_t max_entries, size_t max_bytes, metrics::Registry* metrics);

    // The key of a request, or nullopt when its output is not determined by it (sampled).
    // `model` is the routed model's id@version; `tenant` the caller's tenant id.
    static std::optional<std::string> key_of(const inference::GenerationRequest& request,
                                             const std::string& tenant, const std::string& model);
    // Whether a generation's outcome may be kept: ended by the model (stop) or by max_tokens,
    // not by a deadline, a cancellation, an error or the guard.
    static bool keepable(int max_tokens, const engine::GenerationEvent& done);

    std::optional<CachedGeneration> find(const std::string& key);
    void store(const std::string& key, CachedGeneration generation);

    size_t entries() const;
    size_t bytes() const;

private:
    struct Entry {
        std::string key;
        CachedGeneration generation;
        size_t bytes = 0;
    };
    void count(const char* result);
    const size_t max_entries_, max_bytes_;
    metrics::Registry* metrics_;
    mutable std::mutex mu_;
    std::list<Entry> lru_; // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
    size_t bytes_ = 0;
};

} // namespace codepilot::api
