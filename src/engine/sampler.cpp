#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <llama.h>

namespace codepilot::engine {

llama_sampler* make_sampler(const SamplingParams& p, const llama_vocab* vocab, bool ignore_eos,
                            const std::vector<Token>& eog_tokens) {
    auto chain_params = llama_sampler_chain_default_params();
    chain_params.no_perf = true;
    llama_sampler* chain = llama_sampler_chain_init(chain_params);

    if (ignore_eos && !eog_tokens.empty()) {
        std::vector<llama_logit_bias> biases;
        biases.reserve(eog_tokens.size());
        for (Token t : eog_tokens) biases.push_back({t, -std::numeric_limits<float>::infinity()});
        llama_sampler_chain_add(chain, llama_sampler_init_logit_bias(llama_vocab_n_tokens(vocab),
                                                                     static_cast<int32_t>(biases.size()),
                                                                     biases.data()));
    }
    bool penalties = p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f || p.repeat_penalty != 1.0f;
    if (penalties) {
        llama_sampler_chain_add(chain, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), p.penalty_last_n,
                                                                    p.repeat_penalty, p.frequency_penalty,
                                                                    p.presence_penalty));
    }
    if (p.temperature <= 0.0f) {
        llama_sampler_chain_add(chain, llama_sampler_init_greedy());
        return chain;
    }
    if (p.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.top_k));
    if (p.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.top_p, 1));
    if (p.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.min_p, 1));
    llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
    return chain;
}

bool is_plain_greedy(const SamplingParams& p) {
    return p.temperature <= 0.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f &&
           p.repeat_penalty == 1.0f;
}

Token argmax_token(llama_context* ctx, int index, int n_vocab, const std::vector<Token>& banned) {
    const float* logits = llama_get_logits_ith(ctx, index);
    Token best = 0;
    float best_logit = -std::numeric_limits<float>::infinity();
    size_t next_banned = 0;  // `banned` is sorted
    for (int i = 0; i < n_vocab; ++i) {
        if (next_banned < banned.size() && banned[next_banned] == i) {
            ++next_banned;
            continue;
        }
        if (logits[i] > best_logit) {
            best_logit = logits[i];
            best = i;
        }
    }
    return best;
}

void fill_logprobs(llama_context* ctx, const llama_vocab* vocab, int index, int top_n, GeneratedToken& out) {
    const float* logits = llama_get_logits_ith(ctx, index);
    int n_vocab = llama_vocab_n_tokens(vocab);
    if (logits == nullptr || n_vocab <= 0) return;
    float max_logit = *std::max_element(logits, logits + n_vocab);
    double sum = 0.0;
    for (int i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max_logit));
    float log_norm = max_logit + static_cast<float>(std::log(sum));
    out.logprob = logits[out.token] - log_norm;

    std::vector<int> ids(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n_vocab; ++i) ids[static_cast<size_t>(i)] = i;
    int n = std::min(top_n, n_vocab);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                      [&](int a, int b) { return logits[a] > logits[b]; });
    char buf[256];
    for (int k = 0; k < n; ++k) {
        int id = ids[static_cast<size_t>(k)];
        int len = llama_token_to_piece(vocab, id, buf, sizeof(buf), 0, false);
        out.top_logprobs.push_back({std::string(buf, static_cast<size_t>(std::max(len, 0))), logits[id] - log_norm});
    }
}

}  // namespace codepilot::engine
