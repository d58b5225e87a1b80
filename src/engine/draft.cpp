#include "engine/draft.h"

#include <algorithm>

namespace codepilot::engine {

std::vector<Token> ngram_draft(const std::vector<Token>& tokens, size_t max_draft, size_t min_ngram, size_t max_ngram) {
    size_t size = tokens.size();
    for (size_t n = std::min(max_ngram, size > 0 ? size - 1 : 0); n >= min_ngram && n > 0; --n) {
        const Token* key = tokens.data() + size - n;
        // Most recent earlier occurrence whose continuation is not the key itself.
        for (size_t i = size - n; i-- > 0;) {
            if (!std::equal(key, key + n, tokens.data() + i)) continue;
            // Copy what followed; a match close to the end repeats its own period (loops).
            size_t from = i + n;
            std::vector<Token> draft;
            for (size_t j = 0; j < max_draft; ++j) {
                size_t idx = from + j;
                draft.push_back(idx < size ? tokens[idx] : draft[idx - size]);
            }
            return draft;
        }
    }
    return {};
}

void DraftBudget::record(int proposed, int accepted) {
    if (proposed <= 0) return;
    if (accepted == proposed) {
        len_ = std::min(max_, len_ * 2);
    } else if (accepted == 0) {
        len_ = std::max(1, len_ / 2);
        if (len_ == 1) cooldown_ = 8;  // drafts keep failing: decode plainly for a while
    } else {
        len_ = std::max(2, accepted + 1);
    }
}

}  // namespace codepilot::engine
