// The model registry: models registered at run time, kept in the store so that every replica
// loads, unloads and shifts canary traffic the same way within a second (docs/models.md), and
// the outcomes of each model version (latency, errors, tokens, acceptance) summed over replicas.
#pragma once

#include "inference/inference.h"
#include "store/model_store.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace codepilot::inference {

struct RegistryOptions {
    int poll_ms = 1000;           // the store is read (registrations, canary shares) and outcomes written
    int drain_timeout_ms = 60000; // unloading: in-flight requests get this long, then are cancelled
};

// What the layers above attach to a model as it joins the fleet.
struct ModelHooks {
    // Built on the backend before the model serves (the API's completion service); may refuse.
    std::function<Result<std::unique_ptr<Companion>>(const ModelSpec&, Backend&)> companion;
    // After it serves (per-model gauges).
    std::function<void(const Fleet::EntryPtr&)> added;
};

// A registered model as this replica holds it.
struct RegistryState {
    store::RegisteredModel row;
    std::string state = "pending"; // pending | loading | serving | failed | draining | unloaded
    std::string error;             // failed: why (no secrets)
    int in_flight = 0;             // draining: requests still running
};

class ModelRegistry {
public:
    ModelRegistry(Fleet& fleet, store::Database& db, ModelHooks hooks, RegistryOptions options = {});
    ~ModelRegistry();
    ModelRegistry(const ModelRegistry&) = delete;
    ModelRegistry& operator=(const ModelRegistry&) = delete;

    // Reads the store once (what should be loaded starts loading in the background), then polls it.
    Status start();
    void stop();

    // Admin operations: blocking (store writes), for a worker thread. `by` names the actor.
    // Registers (or replaces an unloaded registration of) a model and asks every replica to load it.
    // Errors: a bad entry, a name taken by another model, a local file that is missing here.
    Result<store::RegisteredModel> register_model(const std::string& toml_spec, const std::string& by);
    // loaded: load again; unloaded: drain and unload (registration kept). Errors: not registered.
    Status set_desired(const std::string& id, bool loaded, const std::string& by);
    // Deletes the registration (an unloaded model only).
    Status remove(const std::string& id);
    // The canary's share of its base's traffic, on every replica within a poll.
    Status set_canary_share(const std::string& canary_id, int share, const std::string& by);

    std::vector<RegistryState> states() const;
    std::optional<RegistryState> state_of(const std::string& id) const;

    // One request served by `model` at `version`: outcomes, written to the store each poll.
    void record(const std::string& model, const std::string& version, int64_t latency_ms, bool error,
                int64_t prompt_tokens, int64_t completion_tokens);
    // An acceptance event (view, select, select_line, dismiss) for a completion of that model.
    void record_event(const std::string& model, const std::string& version, const std::string& kind);
    // Writes pending outcomes now (tests; shutdown).
    Status flush();

private:
    void run();
    Status sync();
    void load(store::RegisteredModel row);
    void start_drain(const std::string& id);
    void check_drains();
    store::Outcomes& pending_for(const std::string& model, const std::string& version);

    Fleet& fleet_;
    store::ModelStore store_;
    ModelHooks hooks_;
    RegistryOptions options_;

    mutable std::mutex mu_;
    std::condition_variable wake_;
    bool stopping_ = false, sync_requested_ = false;
    std::map<std::string, RegistryState> states_;
    std::map<std::string, int> shares_; // canary shares last read from the store
    struct Draining {
        std::shared_ptr<Fleet::Entry> entry;
        std::chrono::steady_clock::time_point deadline;
        bool cancelled = false;
    };
    std::vector<Draining> draining_;
    std::deque<store::RegisteredModel> load_queue_;
    std::condition_variable load_wake_;
    std::map<std::string, store::Outcomes> pending_; // by day|model|version
    std::thread poller_, loader_;
};

// --- Comparing two versions (codepilot model compare, GET /admin/v1/models/{id}/compare) ---

struct ProportionTest {
    double a = 0, b = 0;      // the two rates
    double z = 0, p = 1;      // two-sided p-value of "the rates are equal"
    bool enough_data = false; // at least 5 successes and 5 failures expected in each group
    bool significant = false; // p < 0.05 with enough data
};
ProportionTest two_proportion_test(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b);
// The upper bound (ms) of the bucket holding quantile q (0-1); -1 when empty; the last bucket reports
// the highest bound with ">" in the note.
int64_t latency_quantile_ms(const store::Outcomes& outcomes, double q);
// Base and canary side by side, with a note per measure on whether the difference is significant.
nlohmann::json compare_versions(const store::Outcomes& base, const store::Outcomes& canary);
// Reads both versions' outcomes of the last `days` UTC days from the store and compares them.
Result<nlohmann::json> compare_models(store::Database& db, const std::string& base,
                                      const std::string& base_version, const std::string& canary,
                                      const std::string& canary_version, int days);

} // namespace codepilot::inference
