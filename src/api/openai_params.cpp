#include "api/openai_params.h"

#include "core/utf8.h"

#include <random>

namespace codepilot::api {

std::string dump(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string new_id(const char* prefix) {
    thread_local std::mt19937_64 rng(std::random_device{}());
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%016llx%08llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng() & 0xffffffffu));
    return std::string(prefix) + buf;
}

Result<GenerationParams> parse_generation_params(const json& body, const ApiContext& context,
                                                 int default_max_tokens,
                                                 std::initializer_list<const char*> max_tokens_fields) {
    GenerationParams p;
    p.max_tokens = std::min(default_max_tokens, context.max_tokens_cap);
    for (const char* field : max_tokens_fields) {
        auto v = opt_int(body, field, 1, context.max_tokens_cap);
        if (!v) return v.error();
        if (*v) {
            p.max_tokens = static_cast<int>(**v);
            break;
        }
    }
    auto& s = p.sampling;
#define CP_NUMBER(field, target, lo, hi)                                                                     \
    {                                                                                                        \
        auto v = opt_number(body, field, lo, hi);                                                            \
        if (!v) return v.error();                                                                            \
        if (*v) target = static_cast<float>(**v);                                                            \
    }
    CP_NUMBER("temperature", s.temperature, 0.0, 2.0)
    CP_NUMBER("top_p", s.top_p, 0.0, 1.0)
    CP_NUMBER("min_p", s.min_p, 0.0, 1.0)
    CP_NUMBER("presence_penalty", s.presence_penalty, -2.0, 2.0)
    CP_NUMBER("frequency_penalty", s.frequency_penalty, -2.0, 2.0)
    CP_NUMBER("repeat_penalty", s.repeat_penalty, 0.0, 10.0)
#undef CP_NUMBER
    if (auto v = opt_int(body, "top_k", 0, 1000000); !v)
        return v.error();
    else if (*v)
        s.top_k = static_cast<int>(**v);
    if (auto v = opt_int(body, "seed", INT64_MIN, INT64_MAX); !v)
        return v.error();
    else if (*v) {
        s.seed = static_cast<uint32_t>(**v);
        p.seed_given = true;
    }
    if (auto v = opt_int(body, "n", 1, 16); !v)
        return v.error();
    else if (*v)
        p.n = static_cast<int>(**v);
    if (auto v = opt_bool(body, "stream"); !v)
        return v.error();
    else if (*v)
        p.stream = **v;
    if (auto v = opt_bool(body, "ignore_eos"); !v)
        return v.error();
    else if (*v)
        p.ignore_eos = **v;
    if (auto v = opt_string(body, "user"); !v)
        return v.error();
    else if (*v)
        p.user = **v;
    auto stop = string_or_strings(body, "stop", 16);
    if (!stop) return stop.error();
    p.stop = std::move(stop.value());

    if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) return field_error("stream_options", "must be an object");
        auto v = opt_bool(*it, "include_usage");
        if (!v) return field_error("stream_options.include_usage", "must be true or false");
        p.include_usage = v->value_or(false);
    }
    return p;
}

Result<std::vector<std::vector<engine::Token>>>
parse_prompts(const json& body, const inference::Backend& engine, std::vector<bool>* token_arrays) {
    auto it = body.find("prompt");
    if (it == body.end() || it->is_null()) return field_error("prompt", "is required");
    std::vector<std::vector<engine::Token>> prompts;
    auto add_text = [&](const std::string& text) -> Status {
        if (text.empty()) return field_error("prompt", "must not be empty");
        prompts.push_back(engine.tokenize(text, true, true));
        if (token_arrays) token_arrays->push_back(false);
        if (prompts.back().empty()) return field_error("prompt", "produced no tokens");
        return Ok{};
    };
    auto as_tokens = [&](const json& arr) -> Status {
        std::vector<engine::Token> tokens;
        for (const auto& t : arr) {
            if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
                return field_error("prompt", "token arrays must hold token ids (integers from 0)");
            tokens.push_back(t.get<engine::Token>());
        }
        if (tokens.empty()) return field_error("prompt", "must not be empty");
        prompts.push_back(std::move(tokens));
        if (token_arrays) token_arrays->push_back(true);
        return Ok{};
    };
    if (it->is_string()) {
        if (auto st = add_text(it->get<std::string>()); !st) return st.error();
    } else if (it->is_array()) {
        if (it->empty()) return field_error("prompt", "must not be empty");
        if (it->size() > 64) return field_error("prompt", "may hold at most 64 prompts");
        if ((*it)[0].is_number_integer()) {
            if (auto st = as_tokens(*it); !st) return st.error();
        } else {
            for (const auto& item : *it) {
                Status st = item.is_string() ? add_text(item.get<std::string>())
                            : item.is_array()
                                ? as_tokens(item)
                                : Status(field_error(
                                      "prompt", "must be a string, an array of strings or token arrays"));
                if (!st) return st.error();
            }
        }
    } else {
        return field_error("prompt", "must be a string or an array of strings");
    }
    return prompts;
}

std::vector<inference::GenerationRequest>
make_requests(const std::vector<std::vector<engine::Token>>& prompts, const GenerationParams& params) {
    std::vector<inference::GenerationRequest> requests;
    for (const auto& prompt : prompts) {
        for (int k = 0; k < params.n; ++k) {
            inference::GenerationRequest r;
            r.prompt = prompt;
            r.sampling = params.sampling;
            if (params.seed_given) r.sampling.seed = params.sampling.seed + static_cast<uint32_t>(k);
            r.max_tokens = params.max_tokens;
            r.stop = params.stop;
            r.ignore_eos = params.ignore_eos;
            r.logprobs = params.logprobs;
            requests.push_back(std::move(r));
        }
    }
    return requests;
}

json usage_json(const std::vector<Outcome>& outcomes) {
    int prompt = 0, completion = 0, cached = 0, shifted = 0;
    for (const auto& o : outcomes) {
        prompt += o.usage.prompt_tokens;
        completion += o.usage.completion_tokens;
        cached += o.usage.cached_tokens;
        shifted += o.usage.shifted_tokens;
    }
    return {{"prompt_tokens", prompt},
            {"completion_tokens", completion},
            {"total_tokens", prompt + completion},
            {"prompt_tokens_details", {{"cached_tokens", cached}, {"shifted_tokens", shifted}}}};
}

json timings_json(const Outcome& o) {
    int evaluated = o.usage.prompt_tokens - o.usage.cached_tokens;
    return {{"cache_n", o.usage.cached_tokens},         {"prompt_n", evaluated},
            {"shift_n", o.usage.shifted_tokens},        {"prompt_ms", o.timings.prompt_ms},
            {"predicted_n", o.usage.completion_tokens}, {"predicted_ms", o.timings.generation_ms},
            {"queue_ms", o.timings.queue_ms},           {"first_token_ms", o.timings.first_token_ms}};
}

json completion_logprobs_json(const std::vector<engine::GeneratedToken>& tokens, size_t text_offset) {
    json out = {{"tokens", json::array()},
                {"token_logprobs", json::array()},
                {"top_logprobs", json::array()},
                {"text_offset", json::array()}};
    for (const auto& t : tokens) {
        out["tokens"].push_back(sanitize_utf8(t.piece));
        out["token_logprobs"].push_back(t.logprob);
        json top = json::object();
        for (const auto& alt : t.top_logprobs) top[sanitize_utf8(alt.text)] = alt.logprob;
        out["top_logprobs"].push_back(top);
        out["text_offset"].push_back(text_offset);
        text_offset += t.piece.size();
    }
    return out;
}

json chat_logprobs_json(const std::vector<engine::GeneratedToken>& tokens) {
    auto bytes = [](const std::string& s) {
        json b = json::array();
        for (unsigned char c : s) b.push_back(static_cast<int>(c));
        return b;
    };
    json content = json::array();
    for (const auto& t : tokens) {
        json top = json::array();
        for (const auto& alt : t.top_logprobs)
            top.push_back(
                {{"token", sanitize_utf8(alt.text)}, {"logprob", alt.logprob}, {"bytes", bytes(alt.text)}});
        content.push_back({{"token", sanitize_utf8(t.piece)},
                           {"logprob", t.logprob},
                           {"bytes", bytes(t.piece)},
                           {"top_logprobs", top}});
    }
    return {{"content", content}};
}

std::optional<Error> outcome_error(const std::vector<Outcome>& outcomes) {
    for (const auto& o : outcomes)
        if (o.finish == engine::FinishReason::error)
            return make_error(o.error_code, o.error_code == ErrorCode::internal
                                                ? "generation failed: " + o.error
                                                : o.error);
    return std::nullopt;
}

} // namespace codepilot::api
