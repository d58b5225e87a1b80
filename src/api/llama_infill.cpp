// llama.cpp's POST /infill (llama.vscode; ../shared/COMPAT.md §3) and the seeds' minimal call
// POST /complete (alias /v1/code/complete; §4).
#include "api/code_completion.h"
#include "api/code_routes.h"
#include "api/errors.h"
#include "api/openai_params.h"

namespace codepilot::api {
namespace {

using server::Exchange;
using server::asio::awaitable;
using server::http::status;
using server::http::verb;

const char* stop_type(const Outcome& o) {
    switch (o.finish) {
    case engine::FinishReason::stop:
        return "eos";
    case engine::FinishReason::length:
        return "limit";
    default:
        return "none";
    }
}

json infill_body(const CodeCompletionResult& r, const std::string& model, bool with_text) {
    const auto& u = r.outcome.usage;
    return {{"content", with_text ? r.text : std::string()},
            {"id", r.id},
            {"model", model},
            {"tokens_predicted", u.completion_tokens},
            {"tokens_evaluated", u.prompt_tokens},
            {"tokens_cached", u.cached_tokens},
            {"tokens_shifted", u.shifted_tokens},
            {"stop", true},
            {"stop_type", stop_type(r.outcome)},
            {"truncated", false},
            {"timings", timings_json(r.outcome)}};
}

json partial_chunk(const std::string& content) {
    return {{"content", content}, {"stop", false}};
}

Status read_extra(const json& body, std::vector<completion::FileSnippet>& out) {
    auto it = body.find("input_extra");
    if (it == body.end() || it->is_null()) return Ok{};
    if (!it->is_array()) return field_error("input_extra", "must be an array of {filename, text}");
    for (size_t i = 0; i < it->size(); ++i) {
        const json& c = (*it)[i];
        std::string where = "input_extra[" + std::to_string(i) + "]";
        if (!c.is_object()) return field_error(where, "must be an object with string 'filename' and 'text'");
        auto name = opt_string(c, "filename");
        auto text = opt_string(c, "text");
        if (!name) return field_error(where + ".filename", "must be a string");
        if (!text) return field_error(where + ".text", "must be a string");
        out.push_back({name->value_or("tmp"), text->value_or("")});
    }
    return Ok{};
}

awaitable<void> infill(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    CodeCompletionRequest req;
    req.endpoint = "infill";
    req.postprocess = false; // llama-server semantics: the client (llama.vscode) trims itself
    auto prefix = required_string(*body, "input_prefix");
    if (!prefix) co_return co_await respond_error(ex, prefix.error());
    auto suffix = required_string(*body, "input_suffix");
    if (!suffix) co_return co_await respond_error(ex, suffix.error());
    req.context.prefix = *prefix;
    req.context.suffix = *suffix;
    if (auto st = read_extra(*body, req.context.snippets); !st)
        co_return co_await respond_error(ex, st.error());
    auto prompt = opt_string(*body, "prompt");
    if (!prompt) co_return co_await respond_error(ex, prompt.error());
    req.context.middle_prompt = prompt->value_or("");
    auto n_predict = opt_int(*body, "n_predict", -1, ctx.max_tokens_cap);
    if (!n_predict) co_return co_await respond_error(ex, n_predict.error());
    if (n_predict->has_value()) {
        if (**n_predict == 0)
            req.warm_up = true;
        else
            req.max_tokens = **n_predict < 0 ? ctx.max_tokens_cap : static_cast<int>(**n_predict);
    }
    auto t_max = opt_int(*body, "t_max_predict_ms", 0, 3600000);
    if (!t_max) co_return co_await respond_error(ex, t_max.error());
    req.max_predict_ms = static_cast<int>(t_max->value_or(0));
    auto n_indent = opt_int(*body, "n_indent", 0, 1000);
    if (!n_indent) co_return co_await respond_error(ex, n_indent.error());
    if (n_indent->value_or(0) > 0) req.min_indent = static_cast<int>(**n_indent);
    auto top_k = opt_int(*body, "top_k", 0, 1000000);
    if (!top_k) co_return co_await respond_error(ex, top_k.error());
    if (*top_k) req.top_k = static_cast<int>(**top_k);
    auto top_p = opt_number(*body, "top_p", 0.0, 1.0);
    if (!top_p) co_return co_await respond_error(ex, top_p.error());
    if (*top_p) req.top_p = static_cast<float>(**top_p);
    auto temperature = opt_number(*body, "temperature", 0.0, 2.0);
    if (!temperature) co_return co_await respond_error(ex, temperature.error());
    if (*temperature) req.temperature = static_cast<float>(**temperature);
    auto seed = opt_int(*body, "seed", INT64_MIN, INT64_MAX);
    if (!seed) co_return co_await respond_error(ex, seed.error());
    if (*seed && **seed >= 0) req.seed = static_cast<uint32_t>(**seed);
    if (auto it = body->find("samplers"); it != body->end() && !it->is_null() && !it->is_array())
        co_return co_await respond_error(ex, field_error("samplers", "must be an array"));
    auto ignore_eos = opt_bool(*body, "ignore_eos");
    if (!ignore_eos) co_return co_await respond_error(ex, ignore_eos.error());
    req.ignore_eos = ignore_eos->value_or(false);
    auto stream = opt_bool(*body, "stream");
    if (!stream) co_return co_await respond_error(ex, stream.error());
    auto cache_prompt = opt_bool(*body, "cache_prompt");
    if (!cache_prompt) co_return co_await respond_error(ex, cache_prompt.error());
    req.client_key = typist_key(ex);

    auto routed = route_code_completion(ex, ctx, *body, req.context.prefix);
    if (!routed) co_return co_await respond_error(ex, routed.error());
    const std::string model = routed->model->id;
    auto result = co_await routed->completions->complete(ex, std::move(req));
    if (!result) co_return co_await respond_error(ex, result.error());
    if (result->client_gone) co_return;
    bool with_text = !result->superseded;
    if (!stream->value_or(false))
        co_return co_await ex.respond(status::ok, dump(infill_body(*result, model, with_text)));
    // Streaming: the text as one event, then the final event (the text is post-processed as a whole).
    if (!co_await ex.begin_stream()) co_return;
    if (!result->text.empty()) {
        std::string event = "data: " + dump(partial_chunk(result->text)) + "\n\n";
        if (!co_await ex.write_chunk(event)) co_return;
    }
    std::string last = "data: " + dump(infill_body(*result, model, false)) + "\n\n";
    co_await ex.write_chunk(last);
    co_await ex.end_stream();
}

json complete_body(const CodeCompletionResult& r, const std::string& model) {
    return {{"completion", r.text}, {"model", model}, {"latency_ms", r.latency_ms}, {"id", r.id}};
}

awaitable<void> seed_complete(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    auto code = required_string(*body, "code");
    if (!code) co_return co_await respond_error(ex, code.error());
    auto path = opt_string(*body, "filePath");
    if (!path) co_return co_await respond_error(ex, path.error());
    auto suffix = opt_string(*body, "suffix");
    if (!suffix) co_return co_await respond_error(ex, suffix.error());
    auto max_tokens = opt_int(*body, "max_tokens", 1, ctx.max_tokens_cap);
    if (!max_tokens) co_return co_await respond_error(ex, max_tokens.error());
    CodeCompletionRequest req;
    req.endpoint = "complete";
    req.filepath = path->value_or("");
    req.context.prefix = *code;
    req.context.suffix = suffix->value_or("");
    req.max_tokens = static_cast<int>(max_tokens->value_or(0));
    req.client_key = typist_key(ex);
    auto routed = route_code_completion(ex, ctx, *body, req.context.prefix);
    if (!routed) co_return co_await respond_error(ex, routed.error());
    const std::string model = routed->model->id;
    auto result = co_await routed->completions->complete(ex, std::move(req));
    if (!result) co_return co_await respond_error(ex, result.error());
    if (result->client_gone) co_return;
    co_await ex.respond(status::ok, dump(complete_body(*result, model)));
}

} // namespace

void register_infill_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    auto route = [&](verb method, const char* path, ContextHandler fn) {
        add_route(router, method, path, context, fn);
    };
    route(verb::post, "/infill", infill);
    route(verb::post, "/complete", seed_complete);
    route(verb::post, "/v1/code/complete", seed_complete);
}

} // namespace codepilot::api
