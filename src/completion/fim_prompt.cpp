#include "completion/completion.h"

namespace codepilot::completion {

std::vector<engine::Token> fim_prompt(const engine::FimTokens& fim, const std::vector<engine::Token>& prefix,
                                      const std::vector<engine::Token>& suffix) {
    std::vector<engine::Token> out;
    out.reserve(prefix.size() + suffix.size() + 4);
    if (fim.add_bos && fim.bos >= 0) out.push_back(fim.bos);
    out.push_back(fim.prefix);
    out.insert(out.end(), prefix.begin(), prefix.end());
    out.push_back(fim.suffix);
    out.insert(out.end(), suffix.begin(), suffix.end());
    out.push_back(fim.middle);
    return out;
}

}  // namespace codepilot::completion
