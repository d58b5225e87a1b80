// OpenAI-compatible API (../shared/COMPAT.md §1): models, completions (with FIM via `suffix`),
// chat completions, embeddings; JSON and server-sent-event responses.
#include "api/code_completion.h"
#include "api/code_routes.h"
#include "api/errors.h"
#include "api/openai_params.h"
#include "server/async_queue.h"

#include <ctime>

namespace codepilot::api {
namespace {

using server::Exchange;
using server::asio::awaitable;
using server::http::status;
using server::http::verb;

// Writes one SSE event; false once the client is gone.
awaitable<bool> send_event(Exchange& ex, const json& payload) {
    co_return co_await ex.write_chunk("data: " + dump(payload) + "\n\n");
}

json choice_json(size_t index) {
    return {{"index", index}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
}

json object_with(const char* key, json value) {
    json o = json::object();
    o[key] = std::move(value);
    return o;
}

json role_delta() {
    return {{"role", "assistant"}, {"content", ""}};
}

json embedding_item(size_t index, json embedding) {
    return {{"object", "embedding"}, {"index", index}, {"embedding", std::move(embedding)}};
}

json embeddings_body(json data, const std::string& model, int prompt_tokens) {
    return {{"object", "list"},
            {"data", std::move(data)},
            {"model", model},
            {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

json response_body(const std::string& id, const char* object, int64_t created, const std::string& model,
                   json choices) {
    return {{"id", id},
            {"object", object},
            {"created", created},
            {"model", model},
            {"choices", std::move(choices)}};
}

// Streams (or collects) generations and writes the response in either the completion or the
// chat shape. `make_choice` builds a choice from (index, event text, tokens, finish).
struct ResponseShape {
    const char* object;       // "text_completion" | "chat.completion"
    const char* chunk_object; // "text_completion" | "chat.completion.chunk"
    bool chat = false;
    int top_logprobs = 0; // chat: how many alternatives to show
};

// What one request may ask for: generations (prompts × n) are capped, and so are the logprobs
// it makes the server hold (each token's alternatives, for every generation).
std::optional<Error> beyond_limits(const ApiContext& ctx, const GenerationParams& params,
                                   size_t generations) {
    if (generations > static_cast<size_t>(ctx.max_generations))
        return field_error("n", "asks for " + std::to_string(generations) +
                                    " generations (prompts × n); the limit is " +
                                    std::to_string(ctx.max_generations) + " per request");
    constexpr int64_t kMaxLogprobEntries = 1 << 18;
    const int64_t entries = static_cast<int64_t>(generations) * params.max_tokens * (1 + params.logprobs);
    if (params.logprobs > 0 && entries > kMaxLogprobEntries)
        return field_error("logprobs", "with n and max_tokens would hold " + std::to_string(entries) +
                                           " token alternatives; the limit is " +
                                           std::to_string(kMaxLogprobEntries) +
                                           " (lower n, max_tokens or logprobs)");
    return std::nullopt;
}

awaitable<void> generate_and_respond(Exchange& ex, ApiContext& ctx, const Routed& routed,
                                     const GenerationParams& params,
                                     std::vector<inference::GenerationRequest> requests,
                                     const ResponseShape& shape,
                                     const std::vector<std::string>& echo_prefixes) {
    if (auto error = beyond_limits(ctx, params, requests.size()))
        co_return co_await respond_error(ex, *error);
    const std::string id = new_id(shape.chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    const std::string& model = routed.model->id;
    auto chunk = [&](json choices) {
        return response_body(id, shape.chunk_object, created, model, std::move(choices));
    };
    auto logprobs_of = [&](const std::vector<engine::GeneratedToken>& tokens, size_t offset) -> json {
        if (params.logprobs <= 0) return nullptr;
        if (!shape.chat) return completion_logprobs_json(tokens, offset);
        auto trimmed = tokens;
        for (auto& t : trimmed)
            t.top_logprobs.resize(std::min<size_t>(t.top_logprobs.size(), shape.top_logprobs));
        return chat_logprobs_json(trimmed);
    };

    if (!params.stream) {
        auto result = co_await run_generations(ex, *routed.backend, std::move(requests));
        if (!result) co_return co_await respond_error(ex, result.error());
        if (ex.client_gone()) co_return;
        if (auto err = outcome_error(*result)) co_return co_await respond_error(ex, *err);
        json choices = json::array();
        for (size_t i = 0; i < result->size(); ++i) {
            const auto& o = (*result)[i];
            const std::string& echo = echo_prefixes.empty() ? std::string() : echo_prefixes[i];
            json choice = choice_json(i);
            choice["finish_reason"] = engine::to_string(o.finish);
            choice["logprobs"] = logprobs_of(o.tokens, echo.size());
            if (shape.chat) {
                json message = role_delta();
                message["content"] = o.text;
                choice["message"] = message;
            } else {
                choice["text"] = echo + o.text;
            }
            choices.push_back(std::move(choice));
        }
        json body = response_body(id, shape.object, created, model, choices);
        body["usage"] = usage_json(*result);
        if (result->size() == 1) body["timings"] = timings_json((*result)[0]);
        co_return co_await ex.respond(status::ok, dump(body));
    }

    bool started = false;
    std::vector<size_t> offsets(requests.size(), 0);
    auto start = [&started, &ex, &requests, &shape, &echo_prefixes, &offsets, &chunk]() -> awaitable<bool> {
        started = true;
        if (!co_await ex.begin_stream()) co_return false;
        for (size_t i = 0; i < requests.size(); ++i) {
            json delta = choice_json(i);
            if (shape.chat)
                delta["delta"] = role_delta();
            else if (!echo_prefixes.empty())
                delta["text"] = echo_prefixes[i];
            else
                continue;
            offsets[i] = echo_prefixes.empty() ? 0 : echo_prefixes[i].size();
            json payload = chunk(json::array({delta}));
            if (!co_await send_event(ex, payload)) co_return false;
        }
        co_return true;
    };
    EventSink sink = [&started, &start, &ex, &shape, &offsets, &chunk,
                      &logprobs_of](size_t index, const engine::GenerationEvent& ev) -> awaitable<bool> {
        if (!started && !co_await start()) co_return false;
        json choice = choice_json(index);
        if (ev.kind == engine::GenerationEvent::Kind::done) {
            if (ev.finish == engine::FinishReason::error) {
                const Error failed = make_error(ev.error_code, ev.error_code == ErrorCode::internal
                                                                   ? "generation failed: " + ev.error
                                                                   : ev.error);
                co_return co_await ex.write_chunk("data: " + error_event(failed) + "\n\n");
            }
            if (ev.finish == engine::FinishReason::cancelled) co_return true;
            choice["finish_reason"] = engine::to_string(ev.finish);
            if (shape.chat)
                choice["delta"] = json::object();
            else
                choice["text"] = "";
        } else {
            if (shape.chat)
                choice["delta"] = object_with("content", ev.text);
            else
                choice["text"] = ev.text;
            choice["logprobs"] = logprobs_of(ev.tokens, offsets[index]);
            offsets[index] += ev.text.size();
        }
        json payload = chunk(json::array({choice}));
        co_return co_await send_event(ex, payload);
    };
    SubmittedHook on_submitted = [&start]() -> awaitable<bool> { co_return co_await start(); };
    auto result = co_await run_generations(ex, *routed.backend, requests, sink, on_submitted);
    if (!result && !started) co_return co_await respond_error(ex, result.error());
    if (ex.client_gone()) co_return;
    if (!started && !co_await start()) co_return;
    if (!result) {
        co_await ex.write_chunk("data: " + error_event(result.error()) + "\n\n");
    } else if (params.include_usage) {
        json last = chunk(json::array());
        last["usage"] = usage_json(*result);
        co_await send_event(ex, last);
    }
    co_await ex.write_chunk("data: [DONE]\n\n");
    co_await ex.end_stream();
}

awaitable<void> completions(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    // Tabby's clients post to the same path; their bodies carry `segments` instead of `prompt`.
    if (body->contains("segments") && !body->contains("prompt"))
        co_return co_await tabby_completion(ex, ctx, *body);
    auto params = parse_generation_params(*body, ctx, 16, {"max_tokens"});
    if (!params) co_return co_await respond_error(ex, params.error());
    auto logprobs = opt_int(*body, "logprobs", 0, 20);
    if (!logprobs) co_return co_await respond_error(ex, logprobs.error());
    params->logprobs = static_cast<int>(logprobs->value_or(0));
    auto echo = opt_bool(*body, "echo");
    if (!echo) co_return co_await respond_error(ex, echo.error());
    auto suffix = opt_string(*body, "suffix");
    if (!suffix) co_return co_await respond_error(ex, suffix.error());
    // Copilot-proxy clients name an engine in the path that is rarely one of ours.
    std::string requested = requested_model(*body);
    if (requested.empty() && ex.path_params.count("engine") && ctx.fleet->find(ex.path_param("engine")))
        requested = ex.path_param("engine");
    const auto prompt_field = body->find("prompt");
    const std::string* prompt_text = prompt_field != body->end() && prompt_field->is_string()
                                         ? &prompt_field->get_ref<const std::string&>()
                                         : nullptr;
    auto routed = route_call(ex, ctx, inference::Task::completion, requested, prompt_text);
    if (!routed) co_return co_await respond_error(ex, routed.error());

    std::vector<std::vector<engine::Token>> prompts;
    std::vector<std::string> prompt_texts;
    std::vector<bool> token_arrays; // per prompt: the client sent token ids
    if (suffix->has_value() && !(**suffix).empty()) {
        // FIM: the server lays out prefix/suffix/middle tokens itself.
        auto prompt = opt_string(*body, "prompt");
        if (!prompt)
            co_return co_await respond_error(
                ex, field_error("prompt", "must be a string when 'suffix' is given"));
        std::string prefix = prompt->value_or("");
        if (!routed->completions)
            co_return co_await respond_error(
                ex, make_error(ErrorCode::unsupported,
                               "model '" + routed->model->id + "' does not do code completion", "suffix"));
        auto tokens = routed->completions->fim_prompt(prefix, **suffix);
        if (!tokens) co_return co_await respond_error(ex, tokens.error());
        prompts.push_back(std::move(tokens.value()));
        prompt_texts.push_back(prefix);
    } else {
        auto parsed = parse_prompts(*body, *routed->backend, &token_arrays);
        if (!parsed) co_return co_await respond_error(ex, parsed.error());
        prompts = std::move(parsed.value());
        const bool ids_given =
            std::find(token_arrays.begin(), token_arrays.end(), true) != token_arrays.end();
        // An upstream's token ids are its own vocabulary's: they go as they are, unread here.
        if (ids_given && !routed->backend->exact_tokens() && echo->value_or(false))
            co_return co_await respond_error(
                ex, field_error("echo",
                                "model '" + routed->model->id +
                                    "' is served by an upstream: echo needs a text prompt, not token ids"));
        if (echo->value_or(false))
            for (const auto& p : prompts) prompt_texts.push_back(routed->backend->detokenize(p));
    }
    std::vector<std::string> echo_prefixes;
    if (echo->value_or(false))
        for (const auto& t : prompt_texts)
            for (int k = 0; k < params->n; ++k) echo_prefixes.push_back(t);
    auto requests = make_requests(prompts, *params);
    if (!routed->backend->exact_tokens())
        for (size_t i = 0; i < requests.size(); ++i)
            requests[i].prompt_ids_are_remote = i / static_cast<size_t>(params->n) < token_arrays.size() &&
                                                token_arrays[i / static_cast<size_t>(params->n)];
    co_await generate_and_respond(ex, ctx, *routed, *params, std::move(requests),
                                  {"text_completion", "text_completion", false, 0}, echo_prefixes);
}

Result<std::vector<engine::ChatMessage>> parse_messages(const json& body) {
    auto it = body.find("messages");
    if (it == body.end() || it->is_null()) return field_error("messages", "is required");
    if (!it->is_array() || it->empty()) return field_error("messages", "must be a non-empty array");
    std::vector<engine::ChatMessage> messages;
    for (size_t i = 0; i < it->size(); ++i) {
        const json& m = (*it)[i];
        std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) return field_error(where, "must be an object");
        auto role = m.find("role");
        if (role == m.end() || !role->is_string()) return field_error(where + ".role", "must be a string");
        std::string r = role->get<std::string>();
        if (r == "developer") r = "system";
        if (r != "system" && r != "user" && r != "assistant" && r != "tool")
            return field_error(where + ".role", "must be one of system, developer, user, assistant, tool");
        std::string content;
        auto c = m.find("content");
        if (c == m.end() || c->is_null()) {
            if (r != "assistant") return field_error(where + ".content", "is required");
        } else if (c->is_string()) {
            content = c->get<std::string>();
        } else if (c->is_array()) {
            for (const auto& part : *c) {
                auto type = part.is_object() ? part.find("type") : part.end();
                if (!part.is_object() || type == part.end() || !type->is_string() || *type != "text" ||
                    !part.contains("text") || !part["text"].is_string())
                    return field_error(where + ".content",
                                       "parts must be {\"type\":\"text\",\"text\":string}; other part types "
                                       "are not supported");
                content += part["text"].get<std::string>();
            }
        } else {
            return field_error(where + ".content", "must be a string or an array of text parts");
        }
        messages.push_back({r, content});
    }
    return messages;
}

awaitable<void> chat_completions(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    auto params =
        parse_generation_params(*body, ctx, ctx.max_tokens_cap, {"max_completion_tokens", "max_tokens"});
    if (!params) co_return co_await respond_error(ex, params.error());
    auto logprobs = opt_bool(*body, "logprobs");
    if (!logprobs) co_return co_await respond_error(ex, logprobs.error());
    auto top = opt_int(*body, "top_logprobs", 0, 20);
    if (!top) co_return co_await respond_error(ex, top.error());
    if (logprobs->value_or(false)) params->logprobs = std::max<int>(1, static_cast<int>(top->value_or(0)));
    auto messages = parse_messages(*body);
    if (!messages) co_return co_await respond_error(ex, messages.error());
    std::string all_content;
    for (const auto& m : *messages) all_content += m.content + "\n";
    auto routed = route_call(ex, ctx, inference::Task::chat, requested_model(*body), &all_content);
    if (!routed) co_return co_await respond_error(ex, routed.error());
    auto& backend = *routed->backend;
    auto text = backend.apply_chat_template(*messages);
    if (!text) co_return co_await respond_error(ex, text.error());
    std::vector<std::vector<engine::Token>> prompts{backend.tokenize(*text, true, true)};
    auto requests = make_requests(prompts, *params);
    if (backend.templates_chat())
        for (auto& r : requests) r.messages = *messages; // the upstream applies its own template
    co_await generate_and_respond(
        ex, ctx, *routed, *params, std::move(requests),
        {"chat.completion", "chat.completion.chunk", true, static_cast<int>(top->value_or(0))}, {});
}

std::string base64(const std::vector<float>& values) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto* bytes = reinterpret_cast<const unsigned char*>(values.data()); // little-endian float32
    size_t n = values.size() * sizeof(float);
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = static_cast<uint32_t>(bytes[i]) << 16;
        if (i + 1 < n) v |= static_cast<uint32_t>(bytes[i + 1]) << 8;
        if (i + 2 < n) v |= bytes[i + 2];
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
        out += i + 2 < n ? kAlphabet[v & 63] : '=';
    }
    return out;
}

awaitable<void> embeddings(Exchange& ex, ApiContext& ctx) {
    auto body = parse_object(ex.request().body());
    if (!body) co_return co_await respond_error(ex, body.error());
    auto format = opt_string(*body, "encoding_format");
    if (!format) co_return co_await respond_error(ex, format.error());
    std::string encoding = format->value_or("float");
    if (encoding != "float" && encoding != "base64")
        co_return co_await respond_error(ex,
                                         field_error("encoding_format", "must be \"float\" or \"base64\""));
    auto it = body->find("input");
    if (it == body->end() || it->is_null())
        co_return co_await respond_error(ex, field_error("input", "is required"));
    // The items are read where they are: a copy of a client's value would recurse through it.
    const json& input = *it;
    auto routed = route_call(ex, ctx, inference::Task::embedding, requested_model(*body));
    if (!routed) co_return co_await respond_error(ex, routed.error());
    const bool one_token_array = input.is_array() && !input.empty() && input[0].is_number_integer();
    const bool many = input.is_array() && !one_token_array;
    const size_t count = many ? input.size() : 1;
    if (count == 0) co_return co_await respond_error(ex, field_error("input", "must not be empty"));
    if (count > 256) co_return co_await respond_error(ex, field_error("input", "may hold at most 256 items"));
    std::vector<std::vector<engine::Token>> inputs;
    for (size_t i = 0; i < count; ++i) {
        const json& item = many ? input[i] : input;
        if (item.is_string()) {
            if (item.get_ref<const std::string&>().empty())
                co_return co_await respond_error(ex, field_error("input", "must not contain empty strings"));
            inputs.push_back(routed->backend->tokenize(item.get<std::string>(), true, false));
        } else if (item.is_array()) {
            std::vector<engine::Token> tokens;
            for (const auto& t : item) {
                if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
                    co_return co_await respond_error(
                        ex, field_error("input", "token arrays must hold token ids (integers from 0)"));
                tokens.push_back(t.get<engine::Token>());
            }
            inputs.push_back(std::move(tokens));
        } else {
            co_return co_await respond_error(
                ex, field_error("input", "must be a string, an array of strings or token arrays"));
        }
    }
    int prompt_tokens = 0;
    for (const auto& in : inputs) prompt_tokens += static_cast<int>(in.size());
    ex.usage.prompt_tokens += prompt_tokens;

    auto executor = co_await server::asio::this_coro::executor;
    auto queue = std::make_shared<server::AsyncQueue<Result<inference::Embeddings>>>(executor);
    auto submitted = routed->backend->embed(
        std::move(inputs), [queue](Result<inference::Embeddings> r) { queue->push(std::move(r)); });
    if (!submitted) co_return co_await respond_error(ex, submitted.error());
    std::optional<Result<inference::Embeddings>> result;
    while (!result) result = co_await queue->pop();
    if (!*result) co_return co_await respond_error(ex, result->error());
    json data = json::array();
    for (size_t i = 0; i < (*result)->size(); ++i) {
        const auto& v = (**result)[i];
        data.push_back(embedding_item(i, encoding == "base64" ? json(base64(v)) : json(v)));
    }
    co_await ex.respond(status::ok, dump(embeddings_body(std::move(data), routed->model->id, prompt_tokens)));
}

} // namespace

void register_openai_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    auto route = [&](verb method, const char* path, ContextHandler fn) {
        add_route(router, method, path, context, fn);
    };
    register_model_routes(router, context);
    route(verb::post, "/v1/completions", completions);
    route(verb::post, "/v1/engines/{engine}/completions", completions); // Copilot-proxy clients
    route(verb::post, "/v1/chat/completions", chat_completions);
    route(verb::post, "/v1/embeddings", embeddings);
}

} // namespace codepilot::api
