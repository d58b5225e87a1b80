// Parsing the fields shared by /v1/completions and /v1/chat/completions, and the pieces of
// their responses (usage, timings, logprobs).
#pragma once

#include "api/api.h"
#include "api/generation.h"
#include "api/request_fields.h"

#include <nlohmann/json.hpp>

namespace codepilot::api {

struct GenerationParams {
    engine::SamplingParams sampling;
    bool seed_given = false;
    int max_tokens = 16;
    std::vector<std::string> stop;
    bool ignore_eos = false;
    bool stream = false;
    bool include_usage = false;
    int n = 1;
    int logprobs = 0;
    std::string user;
};

// `max_tokens_fields` are the accepted names for the token limit, in order of preference.
Result<GenerationParams> parse_generation_params(const json& body, const ApiContext& context,
                                                 int default_max_tokens,
                                                 std::initializer_list<const char*> max_tokens_fields);

// `prompt` as a string, an array of strings, an array of token ids or an array of such arrays.
// `token_arrays` (when given) says, per prompt, whether the client sent token ids.
Result<std::vector<std::vector<engine::Token>>>
parse_prompts(const json& body, const inference::Backend& backend, std::vector<bool>* token_arrays = nullptr);

// One engine request per prompt and choice (n), seeds offset per choice.
std::vector<inference::GenerationRequest>
make_requests(const std::vector<std::vector<engine::Token>>& prompts, const GenerationParams& params);

json usage_json(const std::vector<Outcome>& outcomes);
json timings_json(const Outcome& outcome);
// Legacy completions logprobs: {tokens, token_logprobs, top_logprobs, text_offset}.
json completion_logprobs_json(const std::vector<engine::GeneratedToken>& tokens, size_t text_offset);
// Chat logprobs: {content: [{token, logprob, bytes, top_logprobs}]}.
json chat_logprobs_json(const std::vector<engine::GeneratedToken>& tokens);

std::string dump(const json& value);
std::string new_id(const char* prefix);
// The first error among outcomes (finish == error), if any.
std::optional<Error> outcome_error(const std::vector<Outcome>& outcomes);

} // namespace codepilot::api
