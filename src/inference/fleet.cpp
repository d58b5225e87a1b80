// The fleet: models by id and alias, which tenants see them, default models per task, and
// routing rules (by tenant, tier header and prompt size), with fallbacks when a model is down.
#include "inference/inference.h"

#include <algorithm>
#include <mutex>

namespace codepilot::inference {

const char* to_string(Task task) {
    switch (task) {
    case Task::completion:
        return "completion";
    case Task::chat:
        return "chat";
    case Task::embedding:
        return "embedding";
    }
    return "completion";
}

std::optional<Task> parse_task(const std::string& name) {
    if (name == "completion") return Task::completion;
    if (name == "chat") return Task::chat;
    if (name == "embedding" || name == "embeddings") return Task::embedding;
    return std::nullopt;
}

bool ModelSpec::serves(Task task) const {
    return std::find(roles.begin(), roles.end(), task) != roles.end();
}

// A caller without a tenant is the server's owner (or auth is off): it sees every model.
bool ModelSpec::visible_to(const std::string& tenant) const {
    return tenants.empty() || tenant.empty() ||
           std::find(tenants.begin(), tenants.end(), tenant) != tenants.end();
}

std::string Route::header() const {
    return "model=" + model->id + "; version=" + model->version + "; backend=" + backend->kind() +
           "; reason=" + reason;
}

// 0-99 from the caller and the canary (FNV-1a): sticky per caller, independent across canaries.
int canary_bucket(const std::string& caller, const std::string& canary) {
    uint64_t h = 1469598103934665603ull;
    for (char c : caller + "|" + canary) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return static_cast<int>(h % 100);
}

Fleet::Fleet() = default;
Fleet::~Fleet() {
    stop();
}

namespace {
Error taken(const std::string& id, const std::string& name, const std::string& other) {
    return make_error(ErrorCode::invalid_argument,
                      "model '" + id + "': the name '" + name + "' is already taken by model '" + other + "'",
                      "aliases");
}
} // namespace

Status Fleet::add(ModelSpec spec, std::unique_ptr<Backend> backend, std::unique_ptr<Companion> companion,
                  std::string source) {
    // In the entry first: refused or not, the companion goes before the backend it was built on.
    auto entry = std::make_shared<Entry>();
    entry->spec = std::move(spec);
    entry->source = std::move(source);
    entry->backend = std::move(backend);
    entry->companion = std::move(companion);
    entry->created = std::chrono::system_clock::now();
    entry->canary_share = entry->spec.canary_share;
    const auto& s = entry->spec;
    if (s.id.empty()) return make_error(ErrorCode::invalid_argument, "a model needs an id", "id");
    if (s.roles.empty())
        return make_error(ErrorCode::invalid_argument, "model '" + s.id + "' has no roles", "roles");
    std::unique_lock lock(mu_);
    std::vector<std::string> names = s.aliases;
    names.push_back(s.id);
    for (const auto& name : names)
        if (auto other = find_locked(name)) return taken(s.id, name, other->spec.id);
    // At startup every model is added before configure_routing checks the references; at run
    // time (a registered model) they must hold on arrival.
    if (configured_) {
        if (!s.canary_of.empty() && !find_locked(s.canary_of))
            return make_error(ErrorCode::invalid_argument,
                              "model '" + s.id + "': canary_of '" + s.canary_of + "' is not a model",
                              "canary_of");
        for (const auto& f : s.fallback)
            if (!find_locked(f))
                return make_error(ErrorCode::invalid_argument,
                                  "model '" + s.id + "': fallback '" + f + "' is not a model", "fallback");
    }
    if (!s.base.empty() && !find_locked(s.base))
        return make_error(ErrorCode::invalid_argument,
                          "model '" + s.id + "': base '" + s.base + "' is not a model", "base");
    entries_.push_back(std::move(entry));
    refresh_defaults_locked();
    return Ok{};
}

void Fleet::refresh_defaults_locked() {
    auto defaults = configured_defaults_;
    for (Task task : {Task::completion, Task::chat, Task::embedding}) {
        if (defaults.count(task)) continue;
        for (const auto& e : entries_) // the first model with the role
            if (e->spec.serves(task) && !e->retired) {
                defaults[task] = e->spec.id;
                break;
            }
    }
    defaults_ = std::move(defaults);
}

Status Fleet::configure_routing(std::map<Task, std::string> defaults, std::vector<RoutingRule> rules) {
    std::unique_lock lock(mu_);
    for (const auto& [task, id] : defaults) {
        auto e = find_locked(id);
        if (!e)
            return make_error(ErrorCode::invalid_argument,
                              std::string("routing.") + to_string(task) + ": no model '" + id + "'",
                              to_string(task));
        if (!e->spec.serves(task))
            return make_error(ErrorCode::invalid_argument,
                              std::string("routing.") + to_string(task) + ": model '" + id +
                                  "' does not have the " + to_string(task) + " role",
                              to_string(task));
    }
    for (size_t i = 0; i < rules.size(); ++i) {
        auto e = find_locked(rules[i].model);
        if (!e)
            return make_error(ErrorCode::invalid_argument,
                              "routing.rules[" + std::to_string(i) + "]: no model '" + rules[i].model + "'",
                              "model");
        if (rules[i].task && !e->spec.serves(*rules[i].task))
            return make_error(ErrorCode::invalid_argument,
                              "routing.rules[" + std::to_string(i) + "]: model '" + rules[i].model +
                                  "' does not have the " + to_string(*rules[i].task) + " role",
                              "model");
    }
    for (const auto& e : entries_) {
        if (e->spec.canary_of.empty()) continue;
        auto base = find_locked(e->spec.canary_of);
        if (!base || base == e)
            return make_error(ErrorCode::invalid_argument,
                              "model '" + e->spec.id + "': canary_of '" + e->spec.canary_of +
                                  "' is not another model",
                              "canary_of");
    }
    for (const auto& e : entries_)
        for (const auto& f : e->spec.fallback)
            if (!find_locked(f))
                return make_error(ErrorCode::invalid_argument,
                                  "model '" + e->spec.id + "': fallback '" + f + "' is not a model",
                                  "fallback");
    configured_defaults_ = std::move(defaults);
    rules_ = std::move(rules);
    configured_ = true;
    refresh_defaults_locked();
    return Ok{};
}

std::shared_ptr<Fleet::Entry> Fleet::find_locked(const std::string& name) const {
    for (const auto& e : entries_)
        if (e->spec.id == name) return e;
    for (const auto& e : entries_)
        if (std::find(e->spec.aliases.begin(), e->spec.aliases.end(), name) != e->spec.aliases.end())
            return e;
    return nullptr;
}

Fleet::EntryPtr Fleet::find(const std::string& name) const {
    std::shared_lock lock(mu_);
    return find_locked(name);
}

std::vector<Fleet::EntryPtr> Fleet::entries() const {
    std::shared_lock lock(mu_);
    return {entries_.begin(), entries_.end()};
}

std::vector<Fleet::EntryPtr> Fleet::visible_to(const std::string& tenant) const {
    std::shared_lock lock(mu_);
    std::vector<EntryPtr> out;
    for (const auto& e : entries_)
        if (e->spec.visible_to(tenant) && !e->retired) out.push_back(e);
    return out;
}

std::optional<std::string> Fleet::default_for(Task task) const {
    std::shared_lock lock(mu_);
    auto it = defaults_.find(task);
    if (it == defaults_.end()) return std::nullopt;
    return it->second;
}
Result<Route> Fleet::route(const RouteQuery& q) const {
    std::shared_lock lock(mu_);
    auto usable = [&](const std::shared_ptr<Entry>& e) {
        return e && !e->retired && e->spec.visible_to(q.tenant);
    };
    auto ids_for_caller = [&] {
        std::string list;
        for (const auto& e : entries_)
            if (usable(e) && e->spec.serves(q.task)) list += (list.empty() ? "" : ", ") + e->spec.id;
        return list.empty() ? std::string("none") : list;
    };
    std::shared_ptr<Entry> chosen;
    std::string reason;
    if (!q.requested.empty()) {
        chosen = find_locked(q.requested);
        // A model the caller may not see does not exist for it (no existence oracle); one being
        // unloaded is gone for new requests.
        if (!usable(chosen))
            return make_error(ErrorCode::not_found,
                              "model '" + q.requested + "' does not exist; available: " + ids_for_caller(),
                              "model");
        if (!chosen->spec.serves(q.task))
            return make_error(ErrorCode::unsupported,
                              "model '" + chosen->spec.id + "' does not serve " + to_string(q.task) +
                                  " requests; available: " + ids_for_caller(),
                              "model");
        reason = chosen->spec.id == q.requested ? "requested" : "alias";
    }
    // Rules refine a request that named no model, or named the task's default (clients such
    // as Tabby's always send one name).
    auto default_it = defaults_.find(q.task);
    const std::string* fallback_default = default_it == defaults_.end() ? nullptr : &default_it->second;
    if (!chosen || (fallback_default && chosen->spec.id == *fallback_default)) {
        for (size_t i = 0; i < rules_.size(); ++i) {
            const auto& r = rules_[i];
            if (r.task && *r.task != q.task) continue;
            if (!r.tenant.empty() && r.tenant != q.tenant) continue;
            if (!r.tier.empty() && r.tier != q.tier) continue;
            auto target = find_locked(r.model);
            if (!usable(target) || !target->spec.serves(q.task)) continue;
            if (r.min_prompt_tokens > 0) {
                if (!q.prompt_text) continue;
                auto counter = chosen ? chosen : fallback_default ? find_locked(*fallback_default) : target;
                if (!counter) counter = target;
                if (static_cast<int>(counter->backend->tokenize(*q.prompt_text, false, false).size()) <
                    r.min_prompt_tokens)
                    continue;
            }
            chosen = target;
            reason = "rule:" + std::to_string(i + 1);
            break;
        }
    }
    if (!chosen) {
        if (!fallback_default)
            return make_error(ErrorCode::unsupported,
                              std::string("no model serves ") + to_string(q.task) + " requests");
        chosen = find_locked(*fallback_default);
        if (!chosen || chosen->retired)
            return make_error(ErrorCode::unavailable, std::string("the default ") + to_string(q.task) +
                                                          " model '" + *fallback_default +
                                                          "' is not loaded; try again shortly");
        if (!chosen->spec.visible_to(q.tenant))
            return make_error(ErrorCode::not_found,
                              std::string("no ") + to_string(q.task) + " model is available to this tenant",
                              "model");
        reason = "default";
    }
    auto route_to = [](const std::shared_ptr<Entry>& e, std::string why) {
        return Route{e, e->backend.get(), &e->spec, std::move(why)};
    };
    // A tenant's adapter of the chosen model takes all of that tenant's traffic to it.
    if (!q.tenant.empty())
        for (const auto& e : entries_) {
            if (e->spec.base != chosen->spec.id || !usable(e) || !e->spec.serves(q.task)) continue;
            const auto& to = e->spec.attach_tenants;
            if (std::find(to.begin(), to.end(), q.tenant) == to.end()) continue;
            if (!e->backend->health().serving) break; // fall through to the base's own handling
            return route_to(e, "adapter:" + chosen->spec.id);
        }
    // A canary of the chosen model takes its share, the same callers every time.
    if (reason != "requested" || q.requested == chosen->spec.id)
        for (const auto& e : entries_) {
            if (e->spec.canary_of != chosen->spec.id || !usable(e) || !e->spec.serves(q.task)) continue;
            const auto& only = e->spec.canary_tenants;
            if (!only.empty() && std::find(only.begin(), only.end(), q.tenant) == only.end()) continue;
            if (canary_bucket(q.sticky_key, e->spec.id) >= e->canary_share.load()) continue;
            if (!e->backend->health().serving) break; // a canary that is down: the base serves
            return route_to(e, "canary:" + chosen->spec.id);
        }
    // Down: the fallbacks in order, then 503.
    if (chosen->backend->health().serving) return route_to(chosen, reason);
    for (const auto& f : chosen->spec.fallback) {
        auto next = find_locked(f);
        if (usable(next) && next->spec.serves(q.task) && next->backend->health().serving)
            return route_to(next, "fallback:" + chosen->spec.id);
    }
    // What failed (replica addresses) is for admins (GET /admin/v1/models), not for callers.
    return make_error(ErrorCode::unavailable,
                      "model '" + chosen->spec.id + "' is down" +
                          (chosen->spec.fallback.empty() ? "" : ", and so are its fallbacks") +
                          "; try again shortly");
}

std::string Fleet::pinned_by(const std::string& id) const {
    std::shared_lock lock(mu_);
    for (const auto& [task, d] : configured_defaults_)
        if (d == id) return std::string("it is the configured default ") + to_string(task) + " model";
    for (size_t i = 0; i < rules_.size(); ++i)
        if (rules_[i].model == id) return "routing rule " + std::to_string(i + 1) + " sends requests to it";
    for (const auto& e : entries_) {
        if (e->spec.id == id) continue;
        if (e->spec.canary_of == id) return "model '" + e->spec.id + "' is its canary";
        if (e->spec.base == id) return "LoRA adapter '" + e->spec.id + "' is loaded on it";
        if (std::find(e->spec.fallback.begin(), e->spec.fallback.end(), id) != e->spec.fallback.end())
            return "model '" + e->spec.id + "' falls back to it";
    }
    return "";
}

bool Fleet::retire(const std::string& id) {
    std::unique_lock lock(mu_);
    for (auto& e : entries_)
        if (e->spec.id == id) {
            e->retired = true;
            refresh_defaults_locked();
            return true;
        }
    return false;
}

std::shared_ptr<Fleet::Entry> Fleet::remove(const std::string& id) {
    std::unique_lock lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if ((*it)->spec.id == id) {
            auto e = *it;
            e->retired = true;
            entries_.erase(it);
            refresh_defaults_locked();
            return e;
        }
    return nullptr;
}

Status Fleet::set_canary_share(const std::string& id, int share) {
    std::shared_lock lock(mu_);
    for (auto& e : entries_)
        if (e->spec.id == id) {
            if (e->spec.canary_of.empty())
                return make_error(ErrorCode::invalid_argument,
                                  "model '" + id + "' is not a canary (no canary_of)", "model");
            if (share < 0 || share > 100)
                return make_error(ErrorCode::invalid_argument, "share must be between 0 and 100", "share");
            e->canary_share = share;
            return Ok{};
        }
    return make_error(ErrorCode::not_found, "model '" + id + "' does not exist", "model");
}

int Fleet::canary_share(const std::string& id) const {
    auto e = find(id);
    return e ? e->canary_share.load() : 0;
}

bool Fleet::ready() const {
    std::shared_lock lock(mu_);
    if (entries_.empty()) return false;
    for (const auto& [task, id] : defaults_) {
        auto e = find_locked(id);
        if (!e || e->retired || !e->backend->health().serving) return false;
    }
    return true;
}

void Fleet::stop() {
    std::shared_lock lock(mu_);
    for (auto& e : entries_) e->backend->stop();
}

} // namespace codepilot::inference
