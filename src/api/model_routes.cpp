// The models a caller may use (/v1/models), the admin view of the fleet (/admin/v1/models),
// and the routing of each inference call to a model.
#include "api/code_completion.h"
#include "api/code_routes.h"
#include "api/errors.h"
#include "api/openai_params.h"
#include "api/sync_reply.h"

#include <charconv>
#include <chrono>
#include <spdlog/spdlog.h>

namespace codepilot::api {
namespace {

using server::Exchange;
using server::asio::awaitable;
using server::http::status;
using server::http::verb;

json roles_json(const inference::ModelSpec& spec) {
    json roles = json::array();
    for (auto r : spec.roles) roles.push_back(inference::to_string(r));
    return roles;
}

json model_json(const inference::Fleet::Entry& e) {
    const auto& info = e.backend->info();
    json out = {
        {"id", e.spec.id},
        {"object", "model"},
        {"created", std::chrono::duration_cast<std::chrono::seconds>(e.created.time_since_epoch()).count()},
        {"owned_by", "codepilot"},
        {"meta",
         {{"version", e.spec.version},
          {"backend", e.backend->kind()},
          {"roles", roles_json(e.spec)},
          {"aliases", e.spec.aliases},
          {"n_ctx_per_request", info.ctx_per_sequence},
          {"n_vocab", info.n_vocab},
          {"n_params", info.n_params},
          {"fim", info.has_fim}}}};
    // As vLLM lists a LoRA adapter: its base model as `parent`.
    if (!e.spec.base.empty()) out["parent"] = e.spec.base;
    return out;
}

json memory_json(const engine::ModelInfo& info) {
    return {{"model_bytes", info.model_bytes},
            {"kv_cache_bytes", info.kv_bytes},
            {"total_bytes", info.model_bytes + info.kv_bytes}};
}

const std::string& tenant_of(const Exchange& ex) {
    return caller_of(ex).tenant_name;
}

awaitable<void> list_models(Exchange& ex, ApiContext& ctx) {
    json data = json::array();
    for (const auto& e : ctx.fleet->visible_to(tenant_of(ex))) data.push_back(model_json(*e));
    json body = {{"object", "list"},
                 {"data", std::move(data)}}; // named: GCC 12 miscompiles a braced temporary here
    std::string text = dump(body);
    co_await ex.respond(status::ok, std::move(text));
}

awaitable<void> get_model(Exchange& ex, ApiContext& ctx) {
    auto e = ctx.fleet->find(ex.path_param("model"));
    if (!e || e->retired || !e->spec.visible_to(tenant_of(ex)))
        co_return co_await ex.respond_error(status::not_found,
                                            "model '" + ex.path_param("model") + "' does not exist", "model");
    co_await ex.respond(status::ok, dump(model_json(*e)));
}

// Every model with its state, replicas, load and memory, for operators; registered models
// that are not serving (loading, failed, draining, unloaded) too.
awaitable<void> admin_models(Exchange& ex, ApiContext& ctx) {
    json data = json::array();
    std::map<std::string, inference::RegistryState> registered;
    if (ctx.registry)
        for (auto& s : ctx.registry->states()) registered[s.row.id] = std::move(s);
    for (const auto& e : ctx.fleet->entries()) {
        auto health = e->backend->health();
        auto stats = e->backend->stats();
        json m = model_json(*e);
        m["source"] = e->source;
        m["tenants"] = e->spec.tenants;
        m["fallback"] = e->spec.fallback;
        if (!e->spec.canary_of.empty()) {
            m["canary_of"] = e->spec.canary_of;
            m["canary_share"] = e->canary_share.load();
        }
        m["state"] = e->retired ? "draining" : health.state;
        m["serving"] = health.serving && !e->retired;
        m["replicas"] = health.replicas;
        m["replicas_up"] = health.replicas_up;
        if (!health.detail.empty()) m["last_error"] = health.detail;
        m["in_flight"] = e->backend->in_flight();
        m["running"] = stats.running;
        m["queued"] = stats.queued;
        m["requests_started"] = stats.requests_started;
        m["kv_cells_used"] = stats.kv_cells_used;
        m["kv_cells_total"] = stats.kv_cells_total;
        m["memory"] = memory_json(e->backend->info());
        registered.erase(e->spec.id);
        data.push_back(std::move(m));
    }
    for (const auto& [id, s] : registered) { // registered, not in the fleet
        json m = {{"id", id},
                  {"object", "model"},
                  {"source", "registry"},
                  {"meta", {{"version", s.row.version}}},
                  {"state", s.state},
                  {"serving", false},
                  {"desired", s.row.desired},
                  {"in_flight", s.in_flight}};
        if (!s.error.empty()) m["last_error"] = s.error;
        data.push_back(std::move(m));
    }
    json defaults = json::object();
    for (auto task : {inference::Task::completion, inference::Task::chat, inference::Task::embedding})
        if (auto id = ctx.fleet->default_for(task)) defaults[inference::to_string(task)] = *id;
    json body = {{"object", "list"}, {"data", std::move(data)}, {"defaults", defaults}};
    std::string text = dump(body);
    co_await ex.respond(status::ok, std::move(text));
}

Reply no_registry() {
    return reply_error(make_error(ErrorCode::unsupported, "this server has no model registry (no store)"));
}

std::string actor(const Exchange& ex) {
    return caller_of(ex).username.empty() ? "server-owner" : caller_of(ex).username;
}

// A [[models]] entry as a JSON object of the same keys, to TOML (the registry's form).
// JSON scalars and arrays of them are valid TOML values as nlohmann writes them.
Result<std::string> entry_toml(const json& body) {
    std::string out;
    for (const auto& [key, value] : body.items()) {
        const bool bare = !key.empty() &&
                          key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_0123456789") == std::string::npos;
        if (!bare) return field_error(key, "is not a model setting");
        auto scalar = [](const json& v) { return v.is_string() || v.is_boolean() || v.is_number(); };
        bool ok = scalar(value);
        if (value.is_array()) {
            ok = true;
            for (const auto& item : value) ok = ok && scalar(item);
        }
        if (!ok) return field_error(key, "must be a string, number, boolean or an array of them");
        out += key + " = " + value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    return out;
}

json registered_json(const store::RegisteredModel& r, const std::string& state) {
    return {{"id", r.id},     {"version", r.version},       {"desired", r.desired},
            {"state", state}, {"updated_by", r.updated_by}, {"updated_at", r.updated_at}};
}

Reply register_model(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.registry) return no_registry();
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto text = entry_toml(*body);
    if (!text) return reply_error(text.error());
    auto row = ctx.registry->register_model(*text, actor(ex));
    if (!row) return reply_error(row.error());
    // The entry holds no secret: keys only by reference (a literal api_key is refused by parsing).
    record_admin_change(ctx, ex, "model.register", row->id, nullptr, *body);
    return reply(registered_json(*row, "loading"), status::accepted);
}

template <bool loaded> Reply set_loaded(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.registry) return no_registry();
    if (!ex.request().body().empty()) // no fields; a body, if sent, must still be valid JSON
        if (auto body = parse_object(ex.request().body()); !body) return reply_error(body.error());
    const std::string id = ex.path_param("model");
    auto before = ctx.registry->state_of(id);
    if (auto st = ctx.registry->set_desired(id, loaded, actor(ex)); !st) return reply_error(st.error());
    record_admin_change(ctx, ex, loaded ? "model.load" : "model.unload", id,
                        {{"desired", before ? before->row.desired : ""}},
                        {{"desired", loaded ? "loaded" : "unloaded"}});
    json out = {
        {"id", id}, {"desired", loaded ? "loaded" : "unloaded"}, {"state", loaded ? "loading" : "draining"}};
    return reply(out, status::accepted);
}

Reply delete_model(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.registry) return no_registry();
    const std::string id = ex.path_param("model");
    if (auto st = ctx.registry->remove(id); !st) return reply_error(st.error());
    record_admin_change(ctx, ex, "model.delete", id, {{"registered", true}}, {{"registered", false}});
    return reply(json{{"id", id}, {"deleted", true}});
}

// Moves a canary's share: 100 promotes it, 0 rolls it back; every replica within a second.
Reply set_canary(ApiContext& ctx, const Exchange& ex) {
    auto body = parse_object(ex.request().body());
    if (!body) return reply_error(body.error());
    auto share = opt_int(*body, "share", 0, 100);
    if (!share) return reply_error(share.error());
    if (!share->has_value()) return reply_error(field_error("share", "is required (0-100)"));
    const std::string id = ex.path_param("model");
    const int before = ctx.fleet->canary_share(id);
    auto st = ctx.registry ? ctx.registry->set_canary_share(id, static_cast<int>(**share), actor(ex))
                           : ctx.fleet->set_canary_share(id, static_cast<int>(**share));
    if (!st) return reply_error(st.error());
    record_admin_change(ctx, ex, "model.canary", id, {{"canary_share", before}}, {{"canary_share", **share}});
    return reply(json{{"id", id}, {"canary_share", ctx.fleet->canary_share(id)}});
}

Reply compare(ApiContext& ctx, const Exchange& ex) {
    if (!ctx.registry) return no_registry();
    const std::string id = ex.path_param("model");
    auto e = ctx.fleet->find(id);
    if (!e)
        return reply_error(make_error(ErrorCode::not_found, "model '" + id + "' does not exist", "model"));
    inference::Fleet::EntryPtr base = e, canary;
    if (!e->spec.canary_of.empty()) {
        canary = e;
        base = ctx.fleet->find(e->spec.canary_of);
    } else {
        for (const auto& other : ctx.fleet->entries())
            if (other->spec.canary_of == e->spec.id) canary = other;
    }
    if (!canary || !base)
        return reply_error(
            make_error(ErrorCode::invalid_argument, "model '" + id + "' has no canary", "model"));
    int days = 7;
    if (auto text = std::string(ex.query_param("days")); !text.empty()) {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), days);
        if (ec != std::errc() || end != text.data() + text.size() || days < 1 || days > 366)
            return reply_error(field_error("days", "must be a whole number of days from 1 to 366"));
    }
    auto result = inference::compare_models(ctx.auth->store().database(), base->spec.id, base->spec.version,
                                            canary->spec.id, canary->spec.version, days);
    if (!result) return reply_error(result.error());
    return reply(*result);
}

} // namespace

std::string requested_model(const json& body) {
    auto it = body.find("model");
    return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string known_model(const ApiContext& ctx, const json& body) {
    std::string name = requested_model(body);
    return !name.empty() && ctx.fleet->find(name) ? name : std::string();
}

Result<Routed> route_call(Exchange& ex, ApiContext& ctx, inference::Task task, const std::string& requested,
                          const std::string* prompt_text) {
    inference::RouteQuery q;
    q.task = task;
    q.requested = requested;
    q.tenant = tenant_of(ex);
    q.tier = std::string(ex.request()["x-codepilot-tier"]);
    q.prompt_text = prompt_text;
    const auto& caller = caller_of(ex);
    q.sticky_key = caller.user_id.empty() ? caller.key_prefix + "|" + ex.remote_address() : caller.user_id;
    auto route = ctx.fleet->route(q);
    if (!route) return route.error();
    Routed r;
    r.hold = route->entry;
    r.backend = route->backend;
    r.model = route->model;
    r.completions = dynamic_cast<CompletionService*>(route->entry->companion.get());
    ex.usage.model = route->model->id + "@" + route->model->version;
    ex.response_headers.emplace_back("x-codepilot-route", route->header());
    return r;
}

Result<Routed> route_code_completion(Exchange& ex, ApiContext& ctx, const json& body,
                                     const std::string& prefix) {
    auto routed = route_call(ex, ctx, inference::Task::completion, known_model(ctx, body), &prefix);
    if (routed && !routed->completions)
        return make_error(ErrorCode::unsupported,
                          "model '" + routed->model->id + "' does not do code completion");
    return routed;
}

void register_model_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    add_route(router, verb::get, "/v1/models", context, list_models);
    add_route(router, verb::get, "/v1/models/{model}", context, get_model);
    add_route(router, verb::get, "/admin/v1/models", context, admin_models);
    add_route(router, verb::put, "/admin/v1/models/{model}/canary", context, send_reply<set_canary>);
    add_route(router, verb::post, "/admin/v1/models", context, send_reply<register_model>);
    add_route(router, verb::post, "/admin/v1/models/{model}/load", context, send_reply<set_loaded<true>>);
    add_route(router, verb::post, "/admin/v1/models/{model}/unload", context, send_reply<set_loaded<false>>);
    add_route(router, verb::delete_, "/admin/v1/models/{model}", context, send_reply<delete_model>);
    add_route(router, verb::get, "/admin/v1/models/{model}/compare", context, send_reply<compare>);
}

} // namespace codepilot::api
