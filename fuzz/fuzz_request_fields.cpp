// JSON request bodies → typed fields, as every route reads them: the nesting guard that runs
// before nlohmann parses (its scan must agree with the real depth), parse_object, each typed
// reader, and the OpenAI generation parameters of /v1/completions and /v1/chat/completions.
#include "api/openai_params.h"
#include "api/request_fields.h"
#include "fuzz_check.h"

using namespace codepilot::api;

namespace {

void check(bool ok, const char* what) {
    fuzz_check(ok, "fuzz_request_fields", what);
}

// The depth nlohmann reports, counted on the parsed value.
size_t depth_of(const json& value) {
    if (!value.is_structured()) return 0;
    size_t deepest = 0;
    for (const auto& item : value) deepest = std::max(deepest, depth_of(item));
    return deepest + 1;
}

void read_every_field(const json& body) {
    for (const char* field : {"model", "prompt", "suffix", "user", "stop", "max_tokens", "temperature",
                              "top_p", "seed", "n", "stream", "logprobs", "language", "input_prefix"}) {
        (void)opt_string(body, field);
        (void)opt_int(body, field, -5, 1 << 20);
        (void)opt_number(body, field, -2.0, 2.0);
        (void)opt_bool(body, field);
        (void)required_string(body, field);
        (void)string_or_strings(body, field, 4);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);

    const auto deeper = nesting_deeper_than(text, kMaxJsonDepth);
    auto body = parse_object(text);
    if (deeper) check(!body, "a body nested deeper than the limit was accepted");
    if (!body) {
        check(!body.error().message.empty(), "a rejected body has no message");
        return 0;
    }
    check(body->is_object(), "parse_object returned a non-object");
    check(depth_of(*body) <= kMaxJsonDepth, "the nesting guard missed a body deeper than the limit");

    read_every_field(*body);
    ApiContext context;
    context.max_tokens_cap = 256;
    for (int default_max : {16, 1000}) {
        auto completions = parse_generation_params(*body, context, default_max, {"max_tokens"});
        auto chat =
            parse_generation_params(*body, context, default_max, {"max_completion_tokens", "max_tokens"});
        for (const auto* params : {&completions, &chat}) {
            if (!*params) continue;
            const GenerationParams& p = params->value();
            check(p.max_tokens >= 1 && p.max_tokens <= context.max_tokens_cap, "max_tokens outside [1, cap]");
            check(p.n >= 1 && p.n <= 16, "n outside [1, 16]");
            check(p.sampling.temperature >= 0 && p.sampling.temperature <= 2, "temperature outside [0, 2]");
            check(p.sampling.top_p >= 0 && p.sampling.top_p <= 1, "top_p outside [0, 1]");
            check(p.stop.size() <= 16, "more than 16 stop strings");
        }
    }
    return 0;
}
