// Code-completion prompt building: fill-in-the-middle layouts from a model's FIM tokens.
// Pure functions over tokens; no I/O.
#pragma once

#include <vector>

#include "engine/engine.h"

namespace codepilot::completion {

// PSM layout: [BOS] <fim_prefix> prefix <fim_suffix> suffix <fim_middle>.
std::vector<engine::Token> fim_prompt(const engine::FimTokens& fim, const std::vector<engine::Token>& prefix,
                                      const std::vector<engine::Token>& suffix);

}  // namespace codepilot::completion
