#include "engine/slot_choice.h"

#include <algorithm>

namespace codepilot::engine {

size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b) {
    size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

SlotChoice choose_slot(std::span<const SlotView> slots, const std::vector<Token>& prompt,
                       const std::string& scope) {
    SlotChoice choice;
    size_t cap = prompt.empty() ? 0 : prompt.size() - 1;

    // Best source among all slots of the same scope; ties go to a free slot (no copy needed).
    size_t best = 0;
    int best_slot = -1;
    for (size_t i = 0; i < slots.size(); ++i) {
        const auto& s = slots[i];
        if (s.scope != scope || s.cached == nullptr) continue;
        size_t n = std::min(common_prefix(*s.cached, prompt), cap);
        bool better = n > best || (n == best && n > 0 && best_slot >= 0 && slots[best_slot].busy && !s.busy);
        if (better) {
            best = n;
            best_slot = static_cast<int>(i);
        }
    }

    if (best_slot >= 0 && !slots[best_slot].busy) {
        choice.slot = best_slot;
        choice.source = best_slot;
        choice.reuse = best;
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
        choice.reuse = best;
    }
    return choice;
}

}  // namespace codepilot::engine
