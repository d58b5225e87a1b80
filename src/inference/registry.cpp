// The registry loop: every poll it reads the registered models and canary shares from the store
// and brings this replica in line — loads in the background (one at a time, on the loader
// thread), drains and unloads, shifts canary traffic — and writes the outcomes it counted.
#include "inference/registry.h"

#include <ctime>
#include <filesystem>
#include <spdlog/spdlog.h>

namespace codepilot::inference {
namespace {

std::string utc_day() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

} // namespace

ModelRegistry::ModelRegistry(Fleet& fleet, store::Database& db, ModelHooks hooks, RegistryOptions options)
    : fleet_(fleet), store_(db), hooks_(std::move(hooks)), options_(options) {}

ModelRegistry::~ModelRegistry() {
    stop();
}

Status ModelRegistry::start() {
    auto st = sync();
    poller_ = std::thread([this] { run(); });
    loader_ = std::thread([this] {
        std::unique_lock lock(mu_);
        while (true) {
            load_wake_.wait(lock, [&] { return stopping_ || !load_queue_.empty(); });
            if (stopping_) return;
            auto row = std::move(load_queue_.front());
            load_queue_.pop_front();
            lock.unlock();
            load(std::move(row));
            lock.lock();
        }
    });
    return st;
}

void ModelRegistry::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        stopping_ = true;
    }
    wake_.notify_all();
    load_wake_.notify_all();
    if (poller_.joinable()) poller_.join();
    if (loader_.joinable()) loader_.join();
    if (auto st = flush(); !st)
        spdlog::warn("models: outcomes not written at shutdown: {}", st.error().message);
    std::vector<Draining> left;
    {
        std::lock_guard lock(mu_);
        left.swap(draining_);
    }
    for (auto& d : left) d.entry->backend->stop();
}

void ModelRegistry::run() {
    auto next_sync = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.poll_ms);
    std::unique_lock lock(mu_);
    while (!stopping_) {
        // Drains are checked often (an unload ends soon after its last request); the store once a poll.
        wake_.wait_for(lock, std::chrono::milliseconds(50));
        if (stopping_) break;
        const bool due = sync_requested_ || std::chrono::steady_clock::now() >= next_sync;
        sync_requested_ = false;
        lock.unlock();
        if (due) {
            if (auto st = sync(); !st)
                spdlog::warn("models: cannot read the registry: {}", st.error().message);
            if (auto st = flush(); !st)
                spdlog::warn("models: outcomes kept for the next write: {}", st.error().message);
            next_sync = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.poll_ms);
        }
        check_drains();
        lock.lock();
    }
}

Status ModelRegistry::sync() {
    auto rows = store_.registered();
    if (!rows) return rows.error();
    auto rollouts = store_.rollouts();
    if (!rollouts) return rollouts.error();
    std::vector<std::string> to_drain;
    {
        std::lock_guard lock(mu_);
        std::map<std::string, bool> registered;
        for (const auto& row : *rows) {
            registered[row.id] = true;
            auto& s = states_[row.id];
            const bool changed =
                s.row.updated_at != row.updated_at || s.row.spec != row.spec || s.row.desired != row.desired;
            s.row = row;
            auto in_fleet = fleet_.find(row.id);
            const bool ours = in_fleet && in_fleet->source == "registry" && in_fleet->spec.id == row.id;
            if (row.desired == "loaded") {
                if (ours || s.state == "loading") continue;
                if (s.state == "failed" && !changed) continue; // retried when the row changes
                if (s.state == "draining") continue;           // loads again once drained
                s.state = "loading";
                s.error.clear();
                load_queue_.push_back(row);
                load_wake_.notify_one();
            } else {
                if (ours)
                    to_drain.push_back(row.id);
                else if (s.state != "draining")
                    s.state = "unloaded";
            }
        }
        for (const auto& e : fleet_.entries()) // registrations deleted elsewhere
            if (e->source == "registry" && !registered.count(e->spec.id)) to_drain.push_back(e->spec.id);
        for (auto it = states_.begin(); it != states_.end();)
            if (!registered.count(it->first) && it->second.state != "draining" &&
                it->second.state != "loading")
                it = states_.erase(it);
            else
                ++it;
        for (const auto& r : *rollouts) shares_[r.model] = r.share;
    }
    for (const auto& id : to_drain) start_drain(id);
    std::map<std::string, int> shares;
    {
        std::lock_guard lock(mu_);
        shares = shares_;
    }
    for (const auto& [model, share] : shares)
        if (auto e = fleet_.find(model); e && !e->spec.canary_of.empty() && e->canary_share != share)
            if (fleet_.set_canary_share(model, share))
                spdlog::info("model '{}': canary share now {}%", model, share);
    return Ok{};
}

void ModelRegistry::load(store::RegisteredModel row) {
    auto fail = [&](const std::string& why) {
        spdlog::error("model '{}' v{}: not loaded: {}", row.id, row.version, why);
        std::lock_guard lock(mu_);
        auto& s = states_[row.id];
        s.state = "failed";
        s.error = why;
    };
    auto model = config::parse_model_entry(row.spec);
    if (!model) return fail(model.error().message);
    spdlog::info("model '{}' v{}: loading ({})", row.id, row.version, model->backend);
    auto started = std::chrono::steady_clock::now();
    auto backend = make_backend(*model, fleet_);
    if (!backend) return fail(backend.error().message);
    auto spec = spec_of(*model);
    std::unique_ptr<Companion> companion;
    if (hooks_.companion) {
        auto made = hooks_.companion(spec, **backend);
        if (!made) {
            (*backend)->stop();
            return fail(made.error().message);
        }
        companion = std::move(made.value());
    }
    {
        std::lock_guard lock(mu_);
        if (auto it = shares_.find(row.id); it != shares_.end()) spec.canary_share = it->second;
    }
    if (auto st = fleet_.add(std::move(spec), std::move(backend.value()), std::move(companion), "registry");
        !st)
        return fail(st.error().message); // not added: the fleet destroyed it
    auto entry = fleet_.find(row.id);
    if (hooks_.added && entry) hooks_.added(entry);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count();
    spdlog::info("model '{}' v{}: serving (loaded in {} ms)", row.id, row.version, ms);
    std::lock_guard lock(mu_);
    auto& s = states_[row.id];
    s.state = "serving";
    s.error.clear();
}

void ModelRegistry::start_drain(const std::string& id) {
    auto entry = fleet_.remove(id);
    if (!entry) return;
    spdlog::info("model '{}': unloading once {} request(s) in flight finish", id,
                 entry->backend->in_flight());
    std::lock_guard lock(mu_);
    draining_.push_back(Draining{entry, std::chrono::steady_clock::now() +
                                            std::chrono::milliseconds(options_.drain_timeout_ms)});
    states_[id].state = "draining";
}

// A draining model goes once no request holds it (each routed request keeps a reference) and its
// backend has nothing in flight; past the deadline its generations are cancelled first.
void ModelRegistry::check_drains() {
    std::vector<std::shared_ptr<Fleet::Entry>> done;
    {
        std::lock_guard lock(mu_);
        for (auto it = draining_.begin(); it != draining_.end();) {
            auto& d = *it;
            const int in_flight = d.entry->backend->in_flight();
            states_[d.entry->spec.id].in_flight = in_flight;
            if (d.entry.use_count() == 1 && in_flight == 0) {
                auto& s = states_[d.entry->spec.id];
                if (s.state == "draining") s.state = s.row.desired == "loaded" ? "pending" : "unloaded";
                if (s.row.desired == "loaded") sync_requested_ = true; // re-registered meanwhile
                done.push_back(std::move(d.entry));
                it = draining_.erase(it);
                continue;
            }
            if (!d.cancelled && std::chrono::steady_clock::now() >= d.deadline) {
                spdlog::warn(
                    "model '{}': {} request(s) still running after the drain timeout; cancelling them",
                    d.entry->spec.id, in_flight);
                d.entry->backend->stop();
                d.cancelled = true;
            }
            ++it;
        }
    }
    for (auto& e : done) { // destroyed here, on the registry's thread, never on an I/O thread
        const std::string id = e->spec.id;
        e->backend->stop();
        e.reset();
        spdlog::info("model '{}': unloaded", id);
    }
}

Result<store::RegisteredModel> ModelRegistry::register_model(const std::string& toml_spec,
                                                             const std::string& by) {
    auto model = config::parse_model_entry(toml_spec);
    if (!model) return model.error();
    std::vector<std::string> names = model->aliases;
    names.push_back(model->id);
    for (const auto& name : names)
        if (auto other = fleet_.find(name)) {
            if (other->spec.id == model->id && other->source == "config")
                return make_error(
                    ErrorCode::conflict,
                    "model '" + model->id + "' is defined in the configuration file; change it there", "id");
            if (other->spec.id == model->id)
                return make_error(
                    ErrorCode::conflict,
                    "model '" + model->id + "' is loaded; unload it before registering it again", "id");
            return make_error(ErrorCode::conflict,
                              "the name '" + name + "' is already taken by model '" + other->spec.id + "'",
                              "aliases");
        }
    if (!model->canary_of.empty() && !fleet_.find(model->canary_of))
        return make_error(ErrorCode::invalid_argument, "canary_of '" + model->canary_of + "' is not a model",
                          "canary_of");
    for (const auto& f : model->fallback)
        if (!fleet_.find(f))
            return make_error(ErrorCode::invalid_argument, "fallback '" + f + "' is not a model", "fallback");
    if (model->backend != "upstream" && !std::filesystem::is_regular_file(model->local.path))
        return make_error(ErrorCode::invalid_argument,
                          "model '" + model->id + "': no file '" + model->local.path + "' on this server",
                          "path");
    if (model->backend == "lora") {
        auto base = fleet_.find(model->base);
        if (!base || base->spec.id != model->base)
            return make_error(ErrorCode::invalid_argument,
                              "model '" + model->id + "': base '" + model->base + "' is not a loaded model",
                              "base");
        if (base->backend->local_engine() == nullptr)
            return make_error(ErrorCode::invalid_argument,
                              "model '" + model->id + "': base '" + model->base + "' is " +
                                  base->backend->kind() + "; LoRA adapters apply to a local GGUF model",
                              "base");
    }
    auto existing = store_.registered(model->id);
    if (!existing) return existing.error();
    if (*existing && (*existing)->desired == "loaded")
        return make_error(ErrorCode::conflict,
                          "model '" + model->id + "' is registered and loading or loaded; unload it first",
                          "id");
    store::RegisteredModel row;
    row.id = model->id;
    row.version = model->version;
    row.spec = toml_spec;
    row.desired = "loaded";
    row.created_at = *existing ? (*existing)->created_at : 0;
    row.updated_by = by;
    if (auto st = store_.put_registered(row); !st) return st.error();
    auto stored = store_.registered(row.id);
    if (!stored) return stored.error();
    {
        std::lock_guard lock(mu_);
        states_[row.id].state = states_[row.id].state == "draining" ? "draining" : "pending";
        sync_requested_ = true;
    }
    wake_.notify_all();
    return stored->value_or(row);
}

Status ModelRegistry::set_desired(const std::string& id, bool loaded, const std::string& by) {
    if (auto e = fleet_.find(id); e && e->source == "config" && e->spec.id == id)
        return make_error(ErrorCode::conflict,
                          "model '" + id + "' is defined in the configuration file; change it there",
                          "model");
    if (!loaded)
        if (auto why = fleet_.pinned_by(id); !why.empty())
            return make_error(ErrorCode::conflict, "model '" + id + "' cannot be unloaded: " + why, "model");
    if (auto st = store_.set_desired(id, loaded ? "loaded" : "unloaded", by); !st) return st;
    {
        std::lock_guard lock(mu_);
        sync_requested_ = true;
    }
    wake_.notify_all();
    return Ok{};
}

Status ModelRegistry::remove(const std::string& id) {
    auto existing = store_.registered(id);
    if (!existing) return existing.error();
    if (!*existing) return make_error(ErrorCode::not_found, "model '" + id + "' is not registered", "model");
    if ((*existing)->desired == "loaded")
        return make_error(ErrorCode::conflict, "model '" + id + "' is loaded; unload it first", "model");
    if (auto st = store_.remove_registered(id); !st) return st;
    {
        std::lock_guard lock(mu_);
        sync_requested_ = true;
    }
    wake_.notify_all();
    return Ok{};
}

Status ModelRegistry::set_canary_share(const std::string& id, int share, const std::string& by) {
    auto e = fleet_.find(id);
    if (!e || e->spec.id != id)
        return make_error(ErrorCode::not_found, "model '" + id + "' does not exist", "model");
    if (e->spec.canary_of.empty())
        return make_error(ErrorCode::invalid_argument, "model '" + id + "' is not a canary (no canary_of)",
                          "model");
    if (share < 0 || share > 100)
        return make_error(ErrorCode::invalid_argument, "share must be between 0 and 100", "share");
    if (auto st = store_.set_rollout(id, share, by); !st) return st;
    {
        std::lock_guard lock(mu_);
        shares_[id] = share;
    }
    return fleet_.set_canary_share(id, share); // here at once; the other replicas at their next poll
}

std::vector<RegistryState> ModelRegistry::states() const {
    std::lock_guard lock(mu_);
    std::vector<RegistryState> out;
    for (const auto& [_, s] : states_) out.push_back(s);
    return out;
}

std::optional<RegistryState> ModelRegistry::state_of(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = states_.find(id);
    if (it == states_.end()) return std::nullopt;
    return it->second;
}

// Today's pending outcomes of one version (mu_ held).
store::Outcomes& ModelRegistry::pending_for(const std::string& model, const std::string& version) {
    const std::string day = utc_day();
    auto& o = pending_[day + "|" + model + "|" + version];
    if (o.day.empty()) {
        o.day = day;
        o.model = model;
        o.version = version;
    }
    return o;
}

void ModelRegistry::record(const std::string& model, const std::string& version, int64_t latency_ms,
                           bool error, int64_t prompt_tokens, int64_t completion_tokens) {
    size_t bucket = 0;
    while (bucket < store::kOutcomeLatencyBounds.size() && latency_ms > store::kOutcomeLatencyBounds[bucket])
        ++bucket;
    std::lock_guard lock(mu_);
    auto& o = pending_for(model, version);
    ++o.requests;
    if (error) ++o.errors;
    o.prompt_tokens += prompt_tokens;
    o.completion_tokens += completion_tokens;
    o.latency_ms_sum += latency_ms;
    ++o.latency_buckets[bucket];
}

void ModelRegistry::record_event(const std::string& model, const std::string& version,
                                 const std::string& kind) {
    std::lock_guard lock(mu_);
    auto& o = pending_for(model, version);
    if (kind == "view") ++o.views;
    if (kind == "select" || kind == "select_line") ++o.selects;
}

Status ModelRegistry::flush() {
    std::map<std::string, store::Outcomes> batch;
    {
        std::lock_guard lock(mu_);
        batch.swap(pending_);
    }
    if (batch.empty()) return Ok{};
    std::vector<store::Outcomes> deltas;
    for (const auto& [_, o] : batch) deltas.push_back(o);
    auto st = store_.add_outcomes(deltas);
    if (!st) { // kept: added to whatever arrived meanwhile
        std::lock_guard lock(mu_);
        for (const auto& [key, o] : batch) {
            auto& p = pending_[key];
            if (p.day.empty()) {
                p = o;
                continue;
            }
            p.add(o);
        }
    }
    return st;
}

} // namespace codepilot::inference
