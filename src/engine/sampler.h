// Building a llama.cpp sampler chain from SamplingParams, and log-probabilities of a step.
#pragma once

#include <vector>

#include "engine/engine.h"

struct llama_context;
struct llama_sampler;
struct llama_vocab;

namespace codepilot::engine {

// The chain is owned by the caller (llama_sampler_free).
llama_sampler* make_sampler(const SamplingParams& params, const llama_vocab* vocab, bool ignore_eos,
                            const std::vector<Token>& eog_tokens);

// Greedy decoding needs no sampler chain: an argmax over the logits skips building the
// candidate array of the whole vocabulary on every token. True when `params` allow it.
bool is_plain_greedy(const SamplingParams& params);
Token argmax_token(llama_context* ctx, int index, int n_vocab, const std::vector<Token>& banned);

// Log-probability of `chosen` and the `top_n` most likely tokens at batch output `index`.
void fill_logprobs(llama_context* ctx, const llama_vocab* vocab, int index, int top_n, GeneratedToken& out);

}  // namespace codepilot::engine
