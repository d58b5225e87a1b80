// Choosing the sequence (slot) for a new request so that the KV cache of *any* cached
// sequence is reused: its longest common token prefix, and after that, chunks that only
// moved (text deleted before them) shifted into their new positions.
#pragma once

#include "engine/engine.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace codepilot::engine {

struct SlotView {
    bool busy = false;
    const std::vector<Token>* cached = nullptr; // tokens whose KV is in this sequence
    std::string scope;                          // prefix-cache isolation key
    uint64_t last_used = 0;                     // larger is more recent
};

// A run of cached tokens that the new prompt has at an earlier position.
struct ShiftedChunk {
    size_t from = 0; // first cached position
    size_t to = 0;   // its position in the prompt (< from)
    size_t length = 0;
};

// How a cached sequence serves a prompt: its common prefix as is, then chunks moved left.
// llama.cpp only appends after a sequence's last position, so a chunk can only be reused
// when nothing new comes before it: text inserted into the prompt ends the plan.
struct ReusePlan {
    size_t prefix = 0;
    std::vector<ShiftedChunk> chunks;
    size_t shifted() const;
    size_t reused() const { return prefix + shifted(); } // == the first prompt position to evaluate
};

struct SlotChoice {
    int slot = -1;   // free slot that will run the request (-1: none free)
    int source = -1; // slot whose KV is reused (== slot: in place; -1: none)
    ReusePlan plan;  // what of the source is reused
};

size_t common_prefix(const std::vector<Token>& a, const std::vector<Token>& b);

// `min_chunk` 0: the prefix only. Always leaves at least one prompt token to evaluate,
// since sampling needs its logits.
ReusePlan plan_reuse(const std::vector<Token>& cached, const std::vector<Token>& prompt, size_t min_chunk);

// --- Exact prompt evaluation on the CPU -----------------------------------------------------
// ggml's tiled attention kernel (calls with >= 64 query rows of a sequence) is several times
// faster on prompts than the reference kernel, and each kernel gives a row the same result
// whatever else is in its call, but the two round differently. A deterministic engine
// therefore sends prompt positions [0, tiled_boundary(n)) through tiled calls of >= 64 rows
// and the rest (< 64 tokens, the last one included) and every generated token through the
// reference kernel: which kernel computed a position depends on the prompt alone.
constexpr size_t kTiledRows = 64;
size_t tiled_boundary(size_t prompt_size);

// How much of a cached prefix an exact request may keep: positions the cache computed with
// another kernel than a cold start would, and what follows them, are evaluated again; a
// tiled stretch left to evaluate is at least kTiledRows long. `exact_len`: the cached
// positions computed as a cold start would (not after a shifted chunk); `tiled_end`: the
// cached positions below it came from the tiled kernel, the others from the reference one.
size_t exact_reuse(size_t prefix, size_t exact_len, size_t tiled_end, size_t boundary);

SlotChoice choose_slot(std::span<const SlotView> slots, const std::vector<Token>& prompt,
                       const std::string& scope, size_t min_chunk = 0);

} // namespace codepilot::engine
