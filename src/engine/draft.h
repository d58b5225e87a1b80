// Drafting tokens without a second model: look the sequence's last tokens up earlier in the
// same sequence (prompt and output) and propose what followed them there. Code completions
// copy from their context often, so these drafts are right often enough to pay off.
#pragma once

#include <vector>

#include "engine/engine.h"

namespace codepilot::engine {

// Up to `max_draft` tokens following the most recent earlier occurrence of the last
// `n` (from `max_ngram` down to `min_ngram`) tokens of `tokens`; empty when none matches.
std::vector<Token> ngram_draft(const std::vector<Token>& tokens, size_t max_draft, size_t min_ngram = 2,
                               size_t max_ngram = 4);

// Adapts the draft length to how many drafts were accepted: verification costs compute on
// a CPU, so a sequence whose drafts keep failing drafts less (and pauses).
class DraftBudget {
public:
    explicit DraftBudget(int max_len = 8) : max_(max_len), len_(max_len > 0 ? 4 : 0) {}
    int next() const { return cooldown_ > 0 ? 0 : len_; }
    void record(int proposed, int accepted);
    void tick() { if (cooldown_ > 0) --cooldown_; }

private:
    int max_;
    int len_;
    int cooldown_ = 0;
};

}  // namespace codepilot::engine
