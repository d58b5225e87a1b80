// Choosing the sequence (slot) for a new request so that the KV cache of *any* cached
// sequence sharing the longest token prefix is reused, not only the slot it last used.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace codepilot::engine {

struct SlotView {
    bool busy = false;
    const std::vector<Token>* cached = nullptr;  // tokens whose KV is in this sequence
    std::string scope;                           // prefix-cache isolation key
    uint64_t last_used = 0;                      // larger is more recent
};

struct SlotChoice {
    int slot = -1;      // free slot that will run the request (-1: none free)
    int source = -1;    // slot whose KV prefix is reused (== slot: in place; -1: none)
    size_t reuse = 0;   // prompt tokens that need no evaluation
};

size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b);

// Always leaves at least one prompt token to evaluate, since sampling needs its logits.
SlotChoice choose_slot(std::span<const SlotView> slots, const std::vector<Token>& prompt,
                       const std::string& scope);

}  // namespace codepilot::engine
