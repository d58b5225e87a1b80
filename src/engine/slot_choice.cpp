#include "engine/slot_choice.h"

#include <algorithm>

namespace codepilot::engine {

size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b) {
    size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

size_t ReusePlan::shifted() const {
    size_t n = 0;
    for (const auto& c : chunks) n += c.length;
    return n;
}

ReusePlan plan_reuse(const std::vector<Token>& cached, const std::vector<Token>& prompt, size_t min_chunk) {
    ReusePlan plan;
    const size_t cap = prompt.empty() ? 0 : prompt.size() - 1; // the last token is always evaluated
    const size_t common = common_prefix(cached, prompt);
    plan.prefix = std::min(common, cap);
    if (min_chunk == 0 || plan.prefix < common) return plan;

    // Walk the cache past deleted tokens: each run of at least min_chunk tokens that matches
    // the prompt where it stands now is moved there (llama-server's --cache-reuse walk).
    size_t head_c = plan.prefix, head_p = plan.prefix;
    while (head_c < cached.size() && head_p < cap) {
        size_t n = 0;
        while (head_c + n < cached.size() && head_p + n < cap && cached[head_c + n] == prompt[head_p + n])
            ++n;
        if (n >= min_chunk) {
            plan.chunks.push_back({head_c, head_p, n});
            head_c += n;
            head_p += n;
        } else {
            ++head_c;
        }
    }
    return plan;
}

size_t tiled_boundary(size_t prompt_size) {
    if (prompt_size <= kTiledRows) return 0;
    return (prompt_size - 1) / kTiledRows * kTiledRows;
}

size_t exact_reuse(size_t prefix, size_t exact_len, size_t tiled_end, size_t boundary) {
    size_t keep = std::min(prefix, exact_len);
    if (tiled_end != boundary) keep = std::min({keep, tiled_end, boundary});
    if (keep < boundary && boundary - keep < kTiledRows) keep = boundary - kTiledRows;
    return keep;
}

SlotChoice choose_slot(std::span<const SlotView> slots, const std::vector<Token>& prompt,
                       const std::string& scope, size_t min_chunk) {
    SlotChoice choice;

    // Best source among all slots of the same scope; ties go to a free slot (no copy needed).
    ReusePlan best;
    int best_slot = -1;
    for (size_t i = 0; i < slots.size(); ++i) {
        const auto& s = slots[i];
        if (s.scope != scope || s.cached == nullptr) continue;
        ReusePlan plan = plan_reuse(*s.cached, prompt, min_chunk);
        size_t n = plan.reused(), b = best.reused();
        bool better = n > b || (n == b && n > 0 && best_slot >= 0 && slots[best_slot].busy && !s.busy);
        if (better) {
            best = std::move(plan);
            best_slot = static_cast<int>(i);
        }
    }

    if (best_slot >= 0 && !slots[best_slot].busy) {
        choice.slot = best_slot;
        choice.source = best_slot;
        choice.plan = std::move(best);
        return choice;
    }

    // Otherwise run in the least recently used free slot (its cache is the least likely to be wanted).
    int target = -1;
    for (size_t i = 0; i < slots.size(); ++i) {
        const auto& s = slots[i];
        if (s.busy) continue;
        if (target < 0) {
            target = static_cast<int>(i);
            continue;
        }
        const auto& t = slots[target];
        bool t_empty = t.cached == nullptr || t.cached->empty();
        bool s_empty = s.cached == nullptr || s.cached->empty();
        if ((s_empty && !t_empty) || (s_empty == t_empty && s.last_used < t.last_used))
            target = static_cast<int>(i);
    }
    choice.slot = target;
    if (target >= 0 && best_slot >= 0) {
        choice.source = best_slot;
        choice.plan = std::move(best);
    }
    return choice;
}

} // namespace codepilot::engine
