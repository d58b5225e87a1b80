// Prometheus metrics: counters and histograms with labels, gauges read at scrape time, and
// the text exposition format. Never label by user or prompt content.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace codepilot::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
public:
    void inc(double v = 1.0);
    double value() const;

private:
    std::atomic<double> value_{0.0};
};

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    struct Snapshot {
        std::vector<uint64_t> buckets; // cumulative, one per bound, then +Inf
        double sum = 0;
        uint64_t count = 0;
    };
    Snapshot snapshot() const;
    const std::vector<double>& bounds() const { return bounds_; }

private:
    std::vector<double> bounds_;
    mutable std::mutex mu_;
    std::vector<uint64_t> counts_;
    double sum_ = 0;
    uint64_t count_ = 0;
};

class Registry {
public:
    // The child of family `name` with `labels` (created on first use; the reference stays valid).
    Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
    Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels,
                         const std::vector<double>& bounds);
    // A gauge whose value is read when /metrics is scraped.
    void gauge(const std::string& name, const std::string& help, std::function<double()> read);
    // One child of a labelled gauge family (e.g. per model); replaces an earlier one with the same labels.
    void gauge(const std::string& name, const std::string& help, const Labels& labels,
               std::function<double()> read);

    std::string exposition() const;

    static const std::vector<double>& latency_buckets_seconds();

private:
    struct Family {
        std::string help, type;
        std::map<std::string, std::unique_ptr<Counter>> counters; // key: rendered labels
        std::map<std::string, std::unique_ptr<Histogram>> histograms;
        std::function<double()> gauge;
        std::map<std::string, std::function<double()>> gauges; // key: rendered labels
    };
    Family& family(const std::string& name, const std::string& help, const char* type);
    mutable std::mutex mu_;
    std::map<std::string, Family> families_;
};

// {a="x",b="y"} with values escaped.
std::string render_labels(const Labels& labels);

} // namespace codepilot::metrics
