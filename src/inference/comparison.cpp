// Two versions side by side: acceptance, errors and latency, with a two-proportion z-test on
// the rates so that an admin does not promote on noise.
#include "inference/registry.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace codepilot::inference {
namespace {

using nlohmann::json;

double rate(int64_t part, int64_t whole) {
    return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

std::string percent(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%%", r * 100);
    return buf;
}

json side(const store::Outcomes& o) {
    json latency = {{"mean_ms", o.requests ? o.latency_ms_sum / o.requests : 0}};
    for (auto [name, q] : {std::pair{"p50_ms_at_most", 0.5}, std::pair{"p95_ms_at_most", 0.95}}) {
        const auto v = latency_quantile_ms(o, q);
        latency[name] = v < 0 ? json(nullptr) : json(v);
    }
    return {{"model", o.model},
            {"version", o.version},
            {"requests", o.requests},
            {"errors", o.errors},
            {"error_rate", rate(o.errors, o.requests)},
            {"views", o.views},
            {"selects", o.selects},
            {"acceptance_rate", rate(o.selects, o.views)},
            {"prompt_tokens", o.prompt_tokens},
            {"completion_tokens", o.completion_tokens},
            {"latency", latency}};
}

// "canary 31.0% vs base 28.0%: ..." with the verdict.
std::string note(const char* what, const ProportionTest& t, bool higher_is_better) {
    std::string s = std::string(what) + ": canary " + percent(t.b) + " vs base " + percent(t.a);
    if (!t.enough_data)
        return s + " — too few requests to tell yet (needs at least 5 of each outcome per version)";
    char buf[64];
    std::snprintf(buf, sizeof buf, " (z = %.2f, p = %.3f)", t.z, t.p);
    s += buf;
    if (!t.significant) return s + " — no significant difference at the 95% level";
    const bool better = (t.b > t.a) == higher_is_better;
    return s + (better ? " — significantly better" : " — significantly worse") + " at the 95% level";
}

} // namespace

ProportionTest two_proportion_test(int64_t sa, int64_t na, int64_t sb, int64_t nb) {
    ProportionTest t;
    t.a = rate(sa, na);
    t.b = rate(sb, nb);
    auto enough = [](int64_t s, int64_t n) { return s >= 5 && n - s >= 5; };
    t.enough_data = na > 0 && nb > 0 && enough(sa, na) && enough(sb, nb);
    if (na == 0 || nb == 0) return t;
    const double pooled = static_cast<double>(sa + sb) / static_cast<double>(na + nb);
    const double se = std::sqrt(pooled * (1 - pooled) * (1.0 / na + 1.0 / nb));
    if (se <= 0) return t;
    t.z = (t.b - t.a) / se;
    t.p = std::erfc(std::fabs(t.z) / std::sqrt(2.0)); // two-sided
    t.significant = t.enough_data && t.p < 0.05;
    return t;
}

int64_t latency_quantile_ms(const store::Outcomes& o, double q) {
    int64_t total = 0;
    for (auto c : o.latency_buckets) total += c;
    if (total == 0) return -1;
    const auto rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(total)));
    int64_t seen = 0;
    for (size_t i = 0; i < o.latency_buckets.size(); ++i) {
        seen += o.latency_buckets[i];
        if (seen >= rank && seen > 0)
            return i < store::kOutcomeLatencyBounds.size() ? store::kOutcomeLatencyBounds[i]
                                                           : store::kOutcomeLatencyBounds.back() + 1;
    }
    return store::kOutcomeLatencyBounds.back() + 1;
}

json compare_versions(const store::Outcomes& base, const store::Outcomes& canary) {
    const auto acceptance = two_proportion_test(base.selects, base.views, canary.selects, canary.views);
    const auto errors = two_proportion_test(base.errors, base.requests, canary.errors, canary.requests);
    json notes = json::array({note("acceptance", acceptance, true), note("error rate", errors, false)});
    const auto pb = latency_quantile_ms(base, 0.5), pc = latency_quantile_ms(canary, 0.5);
    if (pb > 0 && pc > 0)
        notes.push_back("median latency: canary at most " + std::to_string(pc) + " ms vs base at most " +
                        std::to_string(pb) + " ms (buckets 100/250/500/1000/2500 ms)");
    return {{"base", side(base)},
            {"canary", side(canary)},
            {"acceptance_test",
             {{"z", acceptance.z},
              {"p", acceptance.p},
              {"significant", acceptance.significant},
              {"enough_data", acceptance.enough_data}}},
            {"error_test",
             {{"z", errors.z},
              {"p", errors.p},
              {"significant", errors.significant},
              {"enough_data", errors.enough_data}}},
            {"notes", notes}};
}

Result<json> compare_models(store::Database& db, const std::string& base, const std::string& base_version,
                            const std::string& canary, const std::string& canary_version, int days) {
    auto day = [](int back) {
        std::time_t t = std::time(nullptr) - static_cast<std::time_t>(back) * 86400;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char buf[16];
        std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
        return std::string(buf);
    };
    store::ModelStore models(db);
    auto rows = models.outcomes({base, canary}, day(days - 1), day(0));
    if (!rows) return rows.error();
    store::Outcomes a, b;
    a.model = base;
    a.version = base_version;
    b.model = canary;
    b.version = canary_version;
    for (const auto& o : *rows) {
        // An empty version: every version of that model.
        if (o.model == base && (base_version.empty() || o.version == base_version)) a.add(o);
        if (o.model == canary && (canary_version.empty() || o.version == canary_version)) b.add(o);
    }
    json out = compare_versions(a, b);
    out["days"] = days;
    return out;
}

} // namespace codepilot::inference
