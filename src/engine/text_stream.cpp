#include "engine/text_stream.h"

#include <algorithm>

#include "core/utf8.h"

namespace codepilot::engine {

TextStream::TextStream(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string TextStream::push(std::string_view piece) {
    if (stopped_) return {};
    pending_.append(piece);

    size_t first_stop = std::string::npos;
    for (const auto& stop : stops_) first_stop = std::min(first_stop, pending_.find(stop));
    if (first_stop != std::string::npos) {
        stopped_ = true;
        std::string out = sanitize_utf8(std::string_view(pending_).substr(0, first_stop));
        pending_.clear();
        return out;
    }

    // Hold back the longest tail that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto& stop : stops_) {
        size_t max_k = std::min(stop.size() - 1, pending_.size());
        for (size_t k = max_k; k > hold; --k) {
            if (pending_.compare(pending_.size() - k, k, stop, 0, k) == 0) {
                hold = k;
                break;
            }
        }
    }
    hold = std::max(hold, incomplete_utf8_tail(pending_));
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return sanitize_utf8(out);
}

std::string TextStream::flush() {
    if (stopped_) return {};
    std::string out = sanitize_utf8(pending_);
    pending_.clear();
    return out;
}

}  // namespace codepilot::engine
