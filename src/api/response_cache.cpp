#include "api/response_cache.h"

namespace codepilot::api {
namespace {

template <typename T> void put_value(std::string& key, const T& value) {
    key.append(reinterpret_cast<const char*>(&value), sizeof value);
}
void put_text(std::string& key, const std::string& text) {
    put_value(key, text.size()); // length-prefixed: two different field lists never read the same
    key += text;
}

size_t size_of(const std::string& key, const CachedGeneration& g) {
    size_t n = 2 * key.size() + g.text.size() + sizeof(CachedGeneration) + 64; // key twice: list and index
    for (const auto& t : g.tokens) {
        n += sizeof t + t.piece.size();
        for (const auto& alt : t.top_logprobs) n += sizeof alt + alt.text.size();
    }
    return n;
}

} // namespace

ResponseCache::ResponseCache(size_t max_entries, size_t max_bytes, metrics::Registry* metrics)
    : max_entries_(max_entries), max_bytes_(max_bytes), metrics_(metrics) {
    if (!metrics_) return;
    for (const char* result : {"hit", "miss"})
        metrics_->counter("codepilot_response_cache_lookups_total",
                          "Deterministic generations looked up in the exact-response cache, by result",
                          {{"result", result}});
    metrics_->gauge("codepilot_response_cache_entries", "Generations held by the exact-response cache",
                    [this] { return static_cast<double>(entries()); });
    metrics_->gauge("codepilot_response_cache_bytes", "Bytes held by the exact-response cache (estimate)",
                    [this] { return static_cast<double>(bytes()); });
}

std::optional<std::string> ResponseCache::key_of(const inference::GenerationRequest& r,
                                                 const std::string& tenant, const std::string& model) {
    // Greedy decoding is a function of its inputs; sampling is not (even with a seed, the
    // engine's batch composition can change the numbers). A prompt-only request (max_tokens 0)
    // is there for its side effect, the warm KV cache.
    if (r.sampling.temperature > 0 || r.max_tokens <= 0 || model.empty()) return std::nullopt;
    std::string key = "v1";
    put_text(key, tenant);
    put_text(key, model);
    put_value(key, r.prompt.size());
    key.append(reinterpret_cast<const char*>(r.prompt.data()), r.prompt.size() * sizeof(engine::Token));
    put_value(key, r.messages.size());
    for (const auto& m : r.messages) {
        put_text(key, m.role);
        put_text(key, m.content);
    }
    put_value(key, r.prompt_ids_are_remote);
    put_value(key, r.max_tokens);
    put_value(key, r.stop.size());
    for (const auto& s : r.stop) put_text(key, s);
    put_value(key, r.ignore_eos);
    put_value(key, r.logprobs);
    const auto& s = r.sampling; // what still shapes a greedy choice: the penalties
    for (float v : {s.presence_penalty, s.frequency_penalty, s.repeat_penalty}) put_value(key, v);
    put_value(key, s.penalty_last_n);
    put_value(key, r.kv_shift_min_chunk);
    put_value(key, r.adapter != nullptr);
    put_value(key, static_cast<bool>(r.stop_when)); // the completion service's block-end stop
    return key;
}

bool ResponseCache::keepable(int max_tokens, const engine::GenerationEvent& done) {
    if (done.finish == engine::FinishReason::stop) return true;
    // "length" is also what a deadline gives: only a full max_tokens is the model's own answer.
    return done.finish == engine::FinishReason::length && done.usage.completion_tokens >= max_tokens;
}

void ResponseCache::count(const char* result) {
    if (metrics_)
        metrics_
            ->counter("codepilot_response_cache_lookups_total",
                      "Deterministic generations looked up in the exact-response cache, by result",
                      {{"result", result}})
            .inc();
}

std::optional<CachedGeneration> ResponseCache::find(const std::string& key) {
    std::unique_lock lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) {
        lock.unlock();
        count("miss");
        return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    CachedGeneration out = it->second->generation;
    lock.unlock();
    count("hit");
    return out;
}

void ResponseCache::store(const std::string& key, CachedGeneration generation) {
    const size_t n = size_of(key, generation);
    if (n > max_bytes_ || max_entries_ == 0) return;
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) { // the same answer, raced: keep one
        bytes_ -= it->second->bytes;
        lru_.erase(it->second);
        index_.erase(it);
    }
    lru_.push_front(Entry{key, std::move(generation), n});
    index_[key] = lru_.begin();
    bytes_ += n;
    while (!lru_.empty() && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
        bytes_ -= lru_.back().bytes;
        index_.erase(lru_.back().key);
        lru_.pop_back();
    }
}

size_t ResponseCache::entries() const {
    std::lock_guard lock(mu_);
    return lru_.size();
}

size_t ResponseCache::bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
}

} // namespace codepilot::api
