#include "metrics/metrics.h"

#include <cmath>
#include <sstream>

namespace codepilot::metrics {

void Counter::inc(double v) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
}

double Counter::value() const {
    return value_.load(std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    std::lock_guard lock(mu_);
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i]++;
    sum_ += v;
    count_++;
}

Histogram::Snapshot Histogram::snapshot() const {
    std::lock_guard lock(mu_);
    Snapshot s;
    uint64_t running = 0;
    for (uint64_t c : counts_) {
        running += c;
        s.buckets.push_back(running);
    }
    s.sum = sum_;
    s.count = count_;
    return s;
}

std::string render_labels(const Labels& labels) {
    if (labels.empty()) return "";
    std::string out = "{";
    for (size_t i = 0; i < labels.size(); ++i) {
        if (i) out += ",";
        out += labels[i].first + "=\"";
        for (char c : labels[i].second) {
            if (c == '\\' || c == '"') out += '\\';
            if (c == '\n') {
                out += "\\n";
                continue;
            }
            out += c;
        }
        out += "\"";
    }
    return out + "}";
}

Registry::Family& Registry::family(const std::string& name, const std::string& help, const char* type) {
    auto& f = families_[name];
    if (f.type.empty()) {
        f.help = help;
        f.type = type;
    }
    return f;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "counter").counters[render_labels(labels)];
    if (!slot) slot = std::make_unique<Counter>();
    return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help, const Labels& labels,
                               const std::vector<double>& bounds) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "histogram").histograms[render_labels(labels)];
    if (!slot) slot = std::make_unique<Histogram>(bounds);
    return *slot;
}

void Registry::gauge(const std::string& name, const std::string& help, std::function<double()> read) {
    std::lock_guard lock(mu_);
    family(name, help, "gauge").gauge = std::move(read);
}

void Registry::gauge(const std::string& name, const std::string& help, const Labels& labels,
                     std::function<double()> read) {
    std::lock_guard lock(mu_);
    family(name, help, "gauge").gauges[render_labels(labels)] = std::move(read);
}

const std::vector<double>& Registry::latency_buckets_seconds() {
    static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    return b;
}

namespace {
std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    std::ostringstream s;
    s.precision(12);
    s << v;
    return s.str();
}
// Inserts le="..." into a rendered label set.
std::string with_le(const std::string& labels, const std::string& le) {
    if (labels.empty()) return "{le=\"" + le + "\"}";
    return labels.substr(0, labels.size() - 1) + ",le=\"" + le + "\"}";
}
} // namespace

std::string Registry::exposition() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [name, f] : families_) {
        out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
        if (f.gauge) out += name + " " + number(f.gauge()) + "\n";
        for (const auto& [labels, read] : f.gauges) out += name + labels + " " + number(read()) + "\n";
        for (const auto& [labels, c] : f.counters) out += name + labels + " " + number(c->value()) + "\n";
        for (const auto& [labels, h] : f.histograms) {
            auto s = h->snapshot();
            for (size_t i = 0; i < h->bounds().size(); ++i)
                out += name + "_bucket" + with_le(labels, number(h->bounds()[i])) + " " +
                       std::to_string(s.buckets[i]) + "\n";
            out += name + "_bucket" + with_le(labels, "+Inf") + " " + std::to_string(s.buckets.back()) + "\n";
            out += name + "_sum" + labels + " " + number(s.sum) + "\n";
            out += name + "_count" + labels + " " + std::to_string(s.count) + "\n";
        }
    }
    return out;
}

} // namespace codepilot::metrics
