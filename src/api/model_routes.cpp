// The models a caller may use (/v1/models), the admin view of the fleet (/admin/v1/models),
// and the routing of each inference call to a model.
#include "api/code_completion.h"
#include "api/code_routes.h"
#include "api/errors.h"
#include "api/openai_params.h"

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
    return {
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
}

const std::string& tenant_of(const Exchange& ex) {
    return caller_of(ex).tenant_name;
}

awaitable<void> list_models(Exchange& ex, ApiContext& ctx) {
    json data = json::array();
    for (const auto* e : ctx.fleet->visible_to(tenant_of(ex))) data.push_back(model_json(*e));
    json body = {{"object", "list"},
                 {"data", std::move(data)}}; // named: GCC 12 miscompiles a braced temporary here
    std::string text = dump(body);
    co_await ex.respond(status::ok, std::move(text));
}

awaitable<void> get_model(Exchange& ex, ApiContext& ctx) {
    const auto* e = ctx.fleet->find(ex.path_param("model"));
    if (!e || !e->spec.visible_to(tenant_of(ex)))
        co_return co_await ex.respond_error(status::not_found,
                                            "model '" + ex.path_param("model") + "' does not exist", "model");
    co_await ex.respond(status::ok, dump(model_json(*e)));
}

// Every model with its state, replicas and load, for operators.
awaitable<void> admin_models(Exchange& ex, ApiContext& ctx) {
    json data = json::array();
    for (const auto* e : ctx.fleet->entries()) {
        auto health = e->backend->health();
        auto stats = e->backend->stats();
        json m = model_json(*e);
        m["tenants"] = e->spec.tenants;
        m["fallback"] = e->spec.fallback;
        if (!e->spec.canary_of.empty()) {
            m["canary_of"] = e->spec.canary_of;
            m["canary_share"] = e->canary_share.load();
        }
        m["state"] = health.state;
        m["serving"] = health.serving;
        m["replicas"] = health.replicas;
        m["replicas_up"] = health.replicas_up;
        if (!health.detail.empty()) m["last_error"] = health.detail;
        m["in_flight"] = e->backend->in_flight();
        m["running"] = stats.running;
        m["queued"] = stats.queued;
        m["requests_started"] = stats.requests_started;
        m["kv_cells_used"] = stats.kv_cells_used;
        m["kv_cells_total"] = stats.kv_cells_total;
        data.push_back(std::move(m));
    }
    json defaults = json::object();
    for (auto task : {inference::Task::completion, inference::Task::chat, inference::Task::embedding})
        if (auto id = ctx.fleet->default_for(task)) defaults[inference::to_string(task)] = *id;
    json body = {{"object", "list"}, {"data", std::move(data)}, {"defaults", defaults}};
    std::string text = dump(body);
    co_await ex.respond(status::ok, std::move(text));
}

// Moves a canary's share: 100 promotes it, 0 rolls it back (audited like every admin call).
awaitable<void> set_canary(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    auto share = opt_int(*body, "share", 0, 100);
    if (!share) co_return co_await respond_error(ex, share.error());
    if (!share->has_value())
        co_return co_await respond_error(ex, field_error("share", "is required (0-100)"));
    const std::string id = ex.path_param("model");
    if (auto st = ctx.fleet->set_canary_share(id, static_cast<int>(**share)); !st)
        co_return co_await respond_error(ex, st.error());
    spdlog::info("model '{}': canary share set to {}% by {}", id, **share, caller_of(ex).username);
    json reply = {{"id", id}, {"canary_share", ctx.fleet->canary_share(id)}};
    std::string text = dump(reply);
    co_await ex.respond(status::ok, std::move(text));
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
    r.backend = route->backend;
    r.model = route->model;
    if (auto it = ctx.completions.find(route->model->id); it != ctx.completions.end())
        r.completions = it->second;
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
    add_route(router, verb::put, "/admin/v1/models/{model}/canary", context, set_canary);
}

} // namespace codepilot::api
