#include "inference/text_vocabulary.h"

namespace codepilot::inference {
namespace {

// A text token: length (1-3) in bits 24-25, the bytes below it. Specials are the small ids.
constexpr Token kTextBase = 1 << 24;

Token text_token(const char* bytes, size_t n) {
    uint32_t v = static_cast<uint32_t>(n) << 24;
    for (size_t i = 0; i < n; ++i)
        v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << (16 - 8 * i);
    return static_cast<Token>(v);
}

void append_text(std::vector<Token>& out, const std::string& text, size_t from, size_t to) {
    for (size_t i = from; i < to; i += 3)
        out.push_back(text_token(text.data() + i, std::min<size_t>(3, to - i)));
}

} // namespace

FimTexts fim_texts(const std::string& family) {
    if (family == "starcoder")
        return {"<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<fim_pad>", "<repo_name>", "<file_sep>", ""};
    if (family == "qwen_coder")
        return {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
                "<|repo_name|>",  "<|file_sep|>",   "<|endoftext|>"};
    if (family == "codegemma")
        return {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "", "", "<|file_separator|>", ""};
    if (family == "deepseek_coder")
        return {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "", "", "", ""};
    if (family == "codellama") return {"<PRE>", "<SUF>", "<MID>", "", "", "", "<EOT>"};
    if (family == "codestral") return {"[PREFIX]", "[SUFFIX]", "[MIDDLE]", "", "", "", ""};
    return {};
}

TextVocabulary::TextVocabulary(FimTexts s)
    : specials_{"", s.prefix, s.suffix, s.middle, s.pad, s.repo_name, s.file_sep, s.eot} {}

std::vector<Token> TextVocabulary::encode(const std::string& text, bool parse_special) const {
    std::vector<Token> out;
    out.reserve(text.size() / 3 + 1);
    size_t start = 0;
    if (parse_special) {
        for (size_t i = 0; i < text.size();) {
            bool matched = false;
            if (text[i] == '<' || text[i] == '[' || static_cast<unsigned char>(text[i]) >= 0x80)
                for (size_t id = 1; id < specials_.size(); ++id) {
                    const auto& s = specials_[id];
                    if (!s.empty() && text.compare(i, s.size(), s) == 0) {
                        append_text(out, text, start, i);
                        out.push_back(static_cast<Token>(id));
                        i += s.size();
                        start = i;
                        matched = true;
                        break;
                    }
                }
            if (!matched) ++i;
        }
    }
    append_text(out, text, start, text.size());
    return out;
}

bool TextVocabulary::valid(Token t) const {
    if (t > 0 && static_cast<size_t>(t) < specials_.size()) return !specials_[t].empty();
    const uint32_t n = static_cast<uint32_t>(t) >> 24;
    return t >= kTextBase && n >= 1 && n <= 3 && (static_cast<uint32_t>(t) & ((1u << (24 - 8 * n)) - 1)) == 0;
}

std::string TextVocabulary::token_text(Token t) const {
    if (!valid(t)) return {};
    if (t < kTextBase) return specials_[t];
    const uint32_t v = static_cast<uint32_t>(t), n = v >> 24;
    std::string out;
    for (uint32_t i = 0; i < n; ++i) out += static_cast<char>((v >> (16 - 8 * i)) & 0xFF);
    return out;
}

std::string TextVocabulary::decode(const std::vector<Token>& tokens) const {
    std::string out;
    out.reserve(tokens.size() * 3);
    for (Token t : tokens) out += token_text(t);
    return out;
}

engine::FimTokens TextVocabulary::fim_tokens() const {
    engine::FimTokens f;
    auto id = [this](size_t i) { return specials_[i].empty() ? Token{-1} : static_cast<Token>(i); };
    f.prefix = id(1);
    f.suffix = id(2);
    f.middle = id(3);
    f.pad = id(4);
    f.repo_name = id(5);
    f.file_sep = id(6);
    f.eos = id(7);
    return f;
}

} // namespace codepilot::inference
