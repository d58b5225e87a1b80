// ModelStore: the model registry, canary shares and per-version outcomes (docs/models.md).
#pragma once

#include "store/database.h"

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace codepilot::store {

struct RegisteredModel {
    std::string id, version;
    std::string spec;    // the [[models]] entry, as TOML
    std::string desired; // loaded | unloaded
    int64_t created_at = 0, updated_at = 0;
    std::string updated_by;
};

struct Rollout {
    std::string model; // the canary
    int share = 0;
    int64_t updated_at = 0;
    std::string updated_by;
};

// Upper bounds (ms) of the latency buckets; the last bucket takes everything above.
inline constexpr std::array<int64_t, 5> kOutcomeLatencyBounds = {100, 250, 500, 1000, 2500};

struct Outcomes {
    std::string day, model, version; // day: "" in sums over days
    int64_t requests = 0, errors = 0, prompt_tokens = 0, completion_tokens = 0, latency_ms_sum = 0;
    std::array<int64_t, 6> latency_buckets{};
    int64_t views = 0, selects = 0;
    void add(const Outcomes& other);
};

class ModelStore {
public:
    explicit ModelStore(Database& db) : db_(db) {}

    Result<std::vector<RegisteredModel>> registered();
    Result<std::optional<RegisteredModel>> registered(const std::string& id);
    // Inserts or replaces the row (created_at kept when it exists).
    Status put_registered(const RegisteredModel& model);
    // not_found when the id is not registered.
    Status set_desired(const std::string& id, const std::string& desired, const std::string& by);
    Status remove_registered(const std::string& id);

    Result<std::vector<Rollout>> rollouts();
    Status set_rollout(const std::string& model, int share, const std::string& by);

    // Adds the deltas in one transaction.
    Status add_outcomes(const std::vector<Outcomes>& deltas);
    // Sums per model and version over [from_day, to_day].
    Result<std::vector<Outcomes>> outcomes(const std::vector<std::string>& models,
                                           const std::string& from_day, const std::string& to_day);

private:
    Database& db_;
};

} // namespace codepilot::store
