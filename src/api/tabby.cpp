// Tabby-compatible API (../shared/COMPAT.md §2): completions with `segments`, acceptance
// events, health and the v1beta settings the extensions read at start.
#include "api/code_completion.h"
#include "api/code_routes.h"
#include "api/errors.h"
#include "api/openai_params.h"

#include <thread>

namespace codepilot::api {
namespace {

using server::Exchange;
using server::asio::awaitable;
using server::http::status;
using server::http::verb;

bool valid_language_id(const std::string& id) {
    if (id.empty() || id.size() > 64) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '+' || c == '#' ||
               c == '.';
    });
}

// Snippets in priority order: declarations, then changed files, then recently opened files.
Status read_snippets(const json& segments, std::vector<completion::FileSnippet>& out) {
    for (const char* field : {"declarations", "relevant_snippets_from_changed_files",
                              "relevant_snippets_from_recently_opened_files"}) {
        auto it = segments.find(field);
        if (it == segments.end() || it->is_null()) continue;
        std::string where = std::string("segments.") + field;
        if (!it->is_array()) return field_error(where, "must be an array");
        std::vector<std::pair<double, completion::FileSnippet>> items;
        for (const auto& item : *it) {
            if (!item.is_object() || !item.contains("filepath") || !item["filepath"].is_string() ||
                !item.contains("body") || !item["body"].is_string())
                return field_error(where, "items must be objects with string 'filepath' and 'body'");
            double score =
                item.contains("score") && item["score"].is_number() ? item["score"].get<double>() : 0.0;
            items.push_back({score, {item["filepath"].get<std::string>(), item["body"].get<std::string>()}});
        }
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first; });
        for (auto& [score, s] : items) out.push_back(std::move(s));
    }
    return Ok{};
}

json snippets_json(const std::vector<completion::FileSnippet>& snippets) {
    json out = json::array();
    for (const auto& s : snippets) out.push_back({{"filepath", s.path}, {"body", s.text}});
    return out;
}

json health_json(const ApiContext& ctx) {
    unsigned cores = std::thread::hardware_concurrency();
    auto completion = ctx.fleet->default_for(inference::Task::completion);
    auto chat = ctx.fleet->default_for(inference::Task::chat);
    return {{"model", completion ? json(*completion) : json(nullptr)},
            {"chat_model", chat ? json(*chat) : json(nullptr)},
            {"device", "cpu"},
            {"arch", "x86_64"},
            {"cpu_info", "codepilot llama.cpp CPU backend"},
            {"cpu_count", cores},
            {"accelerators", json::array()},
            {"cuda_devices", json::array()},
            {"version",
             {{"build_date", __DATE__}, {"git_sha", ctx.git_sha}, {"git_describe", "v" + ctx.version}}}};
}

json models_json(const ApiContext& ctx, const std::string& tenant) {
    json completion = json::array(), chat = json::array();
    for (const auto& e : ctx.fleet->visible_to(tenant)) {
        if (e->spec.serves(inference::Task::completion)) completion.push_back(e->spec.id);
        if (e->spec.serves(inference::Task::chat)) chat.push_back(e->spec.id);
    }
    return {{"completion", std::move(completion)}, {"chat", std::move(chat)}};
}

json tabby_response(const CodeCompletionResult& r, bool return_snippets, bool return_prompt) {
    json choice = {{"index", 0}, {"text", r.text}};
    json body = {{"id", r.id}, {"choices", json::array({choice})}};
    if (return_snippets || return_prompt) {
        json debug = json::object();
        if (return_snippets) debug["snippets"] = snippets_json(r.prompt.snippets_used);
        if (return_prompt) debug["prompt"] = r.prompt_text;
        body["debug_data"] = debug;
    }
    return body;
}

awaitable<void> events(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    auto type = required_string(*body, "type");
    if (!type) co_return co_await respond_error(ex, type.error());
    auto id = opt_string(*body, "completion_id");
    if (!id) co_return co_await respond_error(ex, id.error());
    auto index = opt_int(*body, "choice_index", 0, 1000);
    if (!index) co_return co_await respond_error(ex, index.error());
    bool line = ex.query_param("select_kind") == "line";
    // The service that issued the id knows it; the others say it is unknown.
    std::optional<Result<std::pair<std::string, std::string>>> st;
    std::string model_id = ctx.model_id, version;
    for (const auto& e : ctx.fleet->entries()) {
        auto* service = dynamic_cast<CompletionService*>(e->companion.get());
        if (!service) continue;
        auto recorded =
            service->record_event(*type, id->value_or(""), static_cast<int>(index->value_or(0)), line);
        if (recorded || !st) {
            st = std::move(recorded);
            model_id = e->spec.id;
            version = e->spec.version;
        }
        if (*st) break;
    }
    if (!st)
        co_return co_await respond_error(ex,
                                         make_error(ErrorCode::unsupported, "no model does code completion"));
    if (!*st) co_return co_await respond_error(ex, st->error());
    const auto& recorded = st->value();
    const auto& p = caller_of(ex);
    if (ctx.quotas &&
        !p.tenant_id.empty()) // rolled up with usage: acceptance per tenant, user, model, language
        ctx.quotas->account_event(
            quota::Subject{p.tenant_id, p.tenant_name, p.user_id, p.username, p.key_prefix}, model_id,
            recorded.second, recorded.first);
    if (ctx.registry) ctx.registry->record_event(model_id, version, recorded.first); // per version: canaries
    co_await ex.respond(status::ok, "{}");
}

} // namespace

awaitable<void> tabby_completion(Exchange& ex, ApiContext& ctx, const json& body) {
    auto segments_it = body.find("segments");
    if (!segments_it->is_object())
        co_return co_await respond_error(ex, field_error("segments", "must be an object"));
    const json& segments = *segments_it;
    CodeCompletionRequest req;
    req.endpoint = "tabby";
    auto prefix = opt_string(segments, "prefix");
    if (!prefix) co_return co_await respond_error(ex, field_error("segments.prefix", "must be a string"));
    if (!prefix->has_value())
        co_return co_await respond_error(ex, field_error("segments.prefix", "is required"));
    auto suffix = opt_string(segments, "suffix");
    if (!suffix) co_return co_await respond_error(ex, field_error("segments.suffix", "must be a string"));
    auto filepath = opt_string(segments, "filepath");
    if (!filepath) co_return co_await respond_error(ex, field_error("segments.filepath", "must be a string"));
    auto language = opt_string(body, "language");
    if (!language) co_return co_await respond_error(ex, language.error());
    if (language->has_value() && !valid_language_id(**language))
        co_return co_await respond_error(
            ex, field_error("language", "is not a language id (letters, digits, -_+#. up to 64)"));
    auto temperature = opt_number(body, "temperature", 0.0, 2.0);
    if (!temperature) co_return co_await respond_error(ex, temperature.error());
    auto seed = opt_int(body, "seed", INT64_MIN, INT64_MAX);
    if (!seed) co_return co_await respond_error(ex, seed.error());
    auto user = opt_string(body, "user");
    if (!user) co_return co_await respond_error(ex, user.error());

    bool return_snippets = false, return_prompt = false, disable_rag = false;
    std::string raw_prompt;
    if (auto d = body.find("debug_options"); d != body.end() && !d->is_null()) {
        if (!d->is_object())
            co_return co_await respond_error(ex, field_error("debug_options", "must be an object"));
        auto rs = opt_bool(*d, "return_snippets");
        auto rp = opt_bool(*d, "return_prompt");
        auto dr = opt_bool(*d, "disable_retrieval_augmented_code_completion");
        auto raw = opt_string(*d, "raw_prompt");
        if (!rs || !rp || !dr || !raw)
            co_return co_await respond_error(ex,
                                             field_error("debug_options", "has a field of the wrong type"));
        return_snippets = rs->value_or(false);
        return_prompt = rp->value_or(false);
        disable_rag = dr->value_or(false);
        raw_prompt = raw->value_or("");
    }
    req.language_id = language->value_or("");
    req.filepath = filepath->value_or("");
    req.context.prefix = **prefix;
    req.context.suffix = suffix->value_or("");
    if (!disable_rag) {
        if (auto st = read_snippets(segments, req.context.snippets); !st)
            co_return co_await respond_error(ex, st.error());
    }
    req.raw_prompt = raw_prompt;
    if (*temperature) req.temperature = static_cast<float>(**temperature);
    if (*seed) req.seed = static_cast<uint32_t>(**seed);
    req.want_prompt_text = return_prompt;
    req.client_key = typist_key(ex, user->value_or(""));

    auto routed = route_code_completion(ex, ctx, body, req.context.prefix);
    if (!routed) co_return co_await respond_error(ex, routed.error());
    auto result = co_await routed->completions->complete(ex, std::move(req));
    if (!result) co_return co_await respond_error(ex, result.error());
    if (result->client_gone) co_return;
    co_await ex.respond(status::ok, dump(tabby_response(*result, return_snippets, return_prompt)));
}

std::string typist_key(const server::Exchange& ex, std::string_view client_hint) {
    const auto& p = caller_of(ex);
    if (p.method == "none")
        return ex.remote_address() + "|" + std::string(client_hint); // auth off: one machine
    // The session's digest, not its token: no secret is kept as a map key.
    return p.tenant_id + "|" + p.user_id + "|" + p.key_prefix + "|" + p.session_hash.substr(0, 16) + "|" +
           std::string(client_hint);
}

void register_code_completion_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    auto route = [&](verb method, const char* path, ContextHandler fn) {
        add_route(router, method, path, context, fn);
    };
    route(verb::post, "/v1/events", events);
    for (verb v : {verb::get, verb::post})
        route(v, "/v1/health", [](Exchange& ex, ApiContext& ctx) -> awaitable<void> {
            co_await ex.respond(status::ok, dump(health_json(ctx)));
        });
    route(verb::get, "/v1beta/server_setting", [](Exchange& ex, ApiContext&) -> awaitable<void> {
        co_await ex.respond(status::ok, R"({"disable_client_side_telemetry":false})");
    });
    route(verb::get, "/v1beta/models", [](Exchange& ex, ApiContext& ctx) -> awaitable<void> {
        co_await ex.respond(status::ok, dump(models_json(ctx, caller_of(ex).tenant_name)));
    });
    route(verb::get, "/metrics", [](Exchange& ex, ApiContext& ctx) -> awaitable<void> {
        co_await ex.respond(status::ok, ctx.metrics->exposition(),
                            "text/plain; version=0.0.4; charset=utf-8");
    });
    register_infill_routes(router, context);
}

} // namespace codepilot::api
