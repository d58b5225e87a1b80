// Output filtering over a stream: each release scans the held-back text together with the tail
// already shown, so a secret that arrives over several pieces is caught whole, and the cost per
// piece stays bounded by the window, not by the length of the answer.
#include "guard/guard.h"

#include <cctype>

namespace codepilot::guard {
namespace {

constexpr size_t kContext = 256; // shown bytes kept as context for the next scans

// Back to the start of a UTF-8 sequence: a cut never splits a character.
size_t char_boundary(std::string_view text, size_t at) {
    while (at > 0 && at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
    return at;
}

} // namespace

OutputFilter::OutputFilter(std::shared_ptr<const RuleSet> rules, ScanOptions options, bool end_on_secret,
                           size_t hold)
    : rules_(std::move(rules)), options_(options), end_on_secret_(end_on_secret), hold_(hold) {}

std::string OutputFilter::push(std::string_view piece) {
    if (ended_) return {};
    unsent_.append(piece);
    // A secret is a run without white space: the word still being written waits for its end
    // (at most hold_ bytes of it; a longer run goes out in parts).
    size_t cut = unsent_.size();
    while (cut > 0 && !std::isspace(static_cast<unsigned char>(unsent_[cut - 1]))) --cut;
    if (unsent_.size() - cut > hold_) cut = unsent_.size() - hold_;
    if (cut == 0) return {};
    return release(cut, false);
}

std::string OutputFilter::finish() {
    if (ended_) return {};
    return release(unsent_.size(), true);
}

// Shows unsent_[0, cut) (less, when a secret straddles the cut and more text may complete it).
std::string OutputFilter::release(size_t cut, bool final) {
    const std::string window = shown_tail_ + unsent_;
    const size_t base = shown_tail_.size(); // unsent_ starts here in `window`
    const auto found = rules_->scan(window, options_);
    std::vector<Finding> mask; // in unsent_ coordinates
    for (const auto& f : found) {
        if (f.end <= base) continue; // wholly shown before: it was looked at then
        const size_t begin = f.begin > base ? f.begin - base : 0;
        const size_t end = f.end - base;
        if (begin >= cut) break; // held back: the next release sees it
        // Straddles the cut, or reaches the end of what has arrived (a key block still being
        // written): it may still grow, so it is held back whole.
        if (!final && (end > cut || end == unsent_.size())) {
            cut = begin;
            break;
        }
        masked_ = true;
        if (end_on_secret_) { // the text stops before the first secret
            found_.push_back(f.rule);
            ended_ = true;
            cut = begin;
            break;
        }
        mask.push_back({f.rule, begin, end, f.line});
    }
    if (!ended_) cut = char_boundary(unsent_, std::min(cut, unsent_.size()));
    while (!mask.empty() && mask.back().end > cut) mask.pop_back(); // kept back by the boundary
    for (const auto& m : mask) found_.push_back(m.rule);
    const std::string raw = unsent_.substr(0, std::min(cut, unsent_.size()));
    std::string out = mask.empty() ? raw : redact(raw, mask, placeholders_);
    shown_tail_ += raw;
    if (shown_tail_.size() > kContext) shown_tail_.erase(0, shown_tail_.size() - kContext);
    unsent_.erase(0, raw.size());
    if (ended_) unsent_.clear();
    return out;
}

} // namespace codepilot::guard
