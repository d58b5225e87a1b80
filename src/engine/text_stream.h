// TextStream: turns generated token pieces into text that is safe to show now.
// It holds back bytes that may still become a stop string (stops can span token
// boundaries) and incomplete UTF-8 sequences, and cuts the text at the first stop string.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace codepilot::engine {

class TextStream {
public:
    explicit TextStream(std::vector<std::string> stops);

    // Appends a piece; returns the text that can be emitted now.
    std::string push(std::string_view piece);
    // At the end of generation: whatever was held back (ill-formed UTF-8 replaced).
    std::string flush();
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool stopped_ = false;
};

}  // namespace codepilot::engine
