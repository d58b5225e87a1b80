// The fleet: models by id and alias, which tenants see them, default models per task, and
// routing rules (by tenant, tier header and prompt size), with fallbacks when a model is down.
#include "inference/inference.h"

#include <algorithm>

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

Status Fleet::add(ModelSpec spec, std::unique_ptr<Backend> backend) {
    if (spec.id.empty()) return make_error(ErrorCode::invalid_argument, "a model needs an id", "id");
    if (spec.roles.empty())
        return make_error(ErrorCode::invalid_argument, "model '" + spec.id + "' has no roles", "roles");
    std::vector<std::string> names = spec.aliases;
    names.push_back(spec.id);
    for (const auto& name : names)
        if (const Entry* other = find(name))
            return make_error(ErrorCode::invalid_argument,
                              "model '" + spec.id + "': the name '" + name + "' is already taken by model '" +
                                  other->spec.id + "'",
                              "aliases");
    auto entry = std::make_unique<Entry>();
    entry->spec = std::move(spec);
    entry->backend = std::move(backend);
    entry->created = std::chrono::system_clock::now();
    entry->canary_share = entry->spec.canary_share;
    entries_.push_back(std::move(entry));
    return Ok{};
}

Status Fleet::configure_routing(std::map<Task, std::string> defaults, std::vector<RoutingRule> rules) {
    for (Task task : {Task::completion, Task::chat, Task::embedding}) {
        if (defaults.count(task)) continue;
        for (const auto& e : entries_) // the first model with the role
            if (e->spec.serves(task)) {
                defaults[task] = e->spec.id;
                break;
            }
    }
    for (const auto& [task, id] : defaults) {
        const Entry* e = find(id);
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
        const Entry* e = find(rules[i].model);
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
        const Entry* base = find(e->spec.canary_of);
        if (!base || base == e.get())
            return make_error(ErrorCode::invalid_argument,
                              "model '" + e->spec.id + "': canary_of '" + e->spec.canary_of +
                                  "' is not another model",
                              "canary_of");
    }
    for (const auto& e : entries_)
        for (const auto& f : e->spec.fallback)
            if (!find(f))
                return make_error(ErrorCode::invalid_argument,
                                  "model '" + e->spec.id + "': fallback '" + f + "' is not a model",
                                  "fallback");
    defaults_ = std::move(defaults);
    rules_ = std::move(rules);
    return Ok{};
}

const Fleet::Entry* Fleet::find(const std::string& name) const {
    for (const auto& e : entries_)
        if (e->spec.id == name) return e.get();
    for (const auto& e : entries_)
        if (std::find(e->spec.aliases.begin(), e->spec.aliases.end(), name) != e->spec.aliases.end())
            return e.get();
    return nullptr;
}

std::vector<const Fleet::Entry*> Fleet::entries() const {
    std::vector<const Entry*> out;
    for (const auto& e : entries_) out.push_back(e.get());
    return out;
}

std::vector<const Fleet::Entry*> Fleet::visible_to(const std::string& tenant) const {
    std::vector<const Entry*> out;
    for (const auto& e : entries_)
        if (e->spec.visible_to(tenant)) out.push_back(e.get());
    return out;
}

std::optional<std::string> Fleet::default_for(Task task) const {
    auto it = defaults_.find(task);
    if (it == defaults_.end()) return std::nullopt;
    return it->second;
}

Result<Route> Fleet::route(const RouteQuery& q) const {
    auto ids_for_caller = [&] {
        std::string list;
        for (const auto* e : visible_to(q.tenant))
            if (e->spec.serves(q.task)) list += (list.empty() ? "" : ", ") + e->spec.id;
        return list.empty() ? std::string("none") : list;
    };
    const Entry* chosen = nullptr;
    std::string reason;
    if (!q.requested.empty()) {
        chosen = find(q.requested);
        // A model the caller may not see does not exist for it (no existence oracle).
        if (!chosen || !chosen->spec.visible_to(q.tenant))
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
    const auto fallback_default = default_for(q.task);
    if (!chosen || (fallback_default && chosen->spec.id == *fallback_default)) {
        for (size_t i = 0; i < rules_.size(); ++i) {
            const auto& r = rules_[i];
            if (r.task && *r.task != q.task) continue;
            if (!r.tenant.empty() && r.tenant != q.tenant) continue;
            if (!r.tier.empty() && r.tier != q.tier) continue;
            const Entry* target = find(r.model);
            if (!target || !target->spec.visible_to(q.tenant) || !target->spec.serves(q.task)) continue;
            if (r.min_prompt_tokens > 0) {
                if (!q.prompt_text) continue;
                const Entry* counter = chosen ? chosen : fallback_default ? find(*fallback_default) : target;
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
        chosen = find(*fallback_default);
        if (!chosen->spec.visible_to(q.tenant))
            return make_error(ErrorCode::not_found,
                              std::string("no ") + to_string(q.task) + " model is available to this tenant",
                              "model");
        reason = "default";
    }
    // A canary of the chosen model takes its share, the same callers every time.
    if (reason != "requested" || q.requested == chosen->spec.id)
        for (const auto& e : entries_) {
            if (e->spec.canary_of != chosen->spec.id || !e->spec.serves(q.task) ||
                !e->spec.visible_to(q.tenant))
                continue;
            const auto& only = e->spec.canary_tenants;
            if (!only.empty() && std::find(only.begin(), only.end(), q.tenant) == only.end()) continue;
            if (canary_bucket(q.sticky_key, e->spec.id) >= e->canary_share.load()) continue;
            if (!e->backend->health().serving) break; // a canary that is down: the base serves
            return Route{e->backend.get(), &e->spec, "canary:" + chosen->spec.id};
        }
    // Down: the fallbacks in order, then 503.
    if (chosen->backend->health().serving) return Route{chosen->backend.get(), &chosen->spec, reason};
    for (const auto& f : chosen->spec.fallback) {
        const Entry* next = find(f);
        if (next && next->spec.visible_to(q.tenant) && next->spec.serves(q.task) &&
            next->backend->health().serving)
            return Route{next->backend.get(), &next->spec, "fallback:" + chosen->spec.id};
    }
    // What failed (replica addresses) is for admins (GET /v1/admin/models), not for callers.
    return make_error(ErrorCode::unavailable,
                      "model '" + chosen->spec.id + "' is down" +
                          (chosen->spec.fallback.empty() ? "" : ", and so are its fallbacks") +
                          "; try again shortly");
}

Status Fleet::set_canary_share(const std::string& id, int share) {
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
    const Entry* e = find(id);
    return e ? e->canary_share.load() : 0;
}

bool Fleet::ready() const {
    if (entries_.empty()) return false;
    for (const auto& [task, id] : defaults_) {
        const Entry* e = find(id);
        if (!e || !e->backend->health().serving) return false;
    }
    return true;
}

void Fleet::stop() {
    for (auto& e : entries_) e->backend->stop();
}

} // namespace codepilot::inference
