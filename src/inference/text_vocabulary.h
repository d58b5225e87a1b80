// Internal: a reversible stand-in vocabulary for models whose tokenizer lives elsewhere
// (upstream servers). Plain text becomes one token per three bytes, a conservative estimate
// of real code tokenizers (3.5-4 bytes per token), so prompt budgets built with it fit the
// remote context; a model family's FIM token texts are single special tokens. Decoding gives
// back the exact text, which is what goes over the wire.
#pragma once

#include "engine/engine.h"
#include "inference/inference.h"

#include <string>
#include <vector>

namespace codepilot::inference {

class TextVocabulary {
public:
    explicit TextVocabulary(FimTexts specials);

    std::vector<Token> encode(const std::string& text, bool parse_special) const;
    std::string decode(const std::vector<Token>& tokens) const;
    std::string token_text(Token token) const;
    bool valid(Token token) const;
    // FIM token ids (-1 where the family has none); never bos/eos (the upstream adds its own).
    engine::FimTokens fim_tokens() const;
    static constexpr int vocabulary_size() { return 4 << 24; }

private:
    std::vector<std::string> specials_; // index = token id; [0] unused
};

} // namespace codepilot::inference
