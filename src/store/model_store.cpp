#include "store/model_store.h"

#include <ctime>

namespace codepilot::store {
namespace {

int64_t now_s() {
    return static_cast<int64_t>(std::time(nullptr));
}

RegisteredModel registered_of(const Row& r) {
    return RegisteredModel{r.text(0), r.text(1), r.text(2), r.text(3), r.integer(4), r.integer(5), r.text(6)};
}

constexpr const char* kRegistryColumns = "id, version, spec, desired, created_at, updated_at, updated_by";

} // namespace

void Outcomes::add(const Outcomes& o) {
    requests += o.requests;
    errors += o.errors;
    prompt_tokens += o.prompt_tokens;
    completion_tokens += o.completion_tokens;
    latency_ms_sum += o.latency_ms_sum;
    for (size_t i = 0; i < latency_buckets.size(); ++i) latency_buckets[i] += o.latency_buckets[i];
    views += o.views;
    selects += o.selects;
}

Result<std::vector<RegisteredModel>> ModelStore::registered() {
    auto rows = db_.query(std::string("SELECT ") + kRegistryColumns + " FROM model_registry ORDER BY id");
    if (!rows) return rows.error();
    std::vector<RegisteredModel> out;
    for (const auto& r : *rows) out.push_back(registered_of(r));
    return out;
}

Result<std::optional<RegisteredModel>> ModelStore::registered(const std::string& id) {
    auto rows =
        db_.query(std::string("SELECT ") + kRegistryColumns + " FROM model_registry WHERE id = ?", {id});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<RegisteredModel>();
    return std::optional<RegisteredModel>(registered_of(rows->front()));
}

Status ModelStore::put_registered(const RegisteredModel& m) {
    const int64_t now = now_s();
    auto r = db_.execute(
        "INSERT INTO model_registry (id, version, spec, desired, created_at, updated_at, updated_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
        "spec = excluded.spec, desired = excluded.desired, updated_at = excluded.updated_at, "
        "updated_by = excluded.updated_by",
        {m.id, m.version, m.spec, m.desired, m.created_at ? m.created_at : now, now, m.updated_by});
    if (!r) return r.error();
    return Ok{};
}

Status ModelStore::set_desired(const std::string& id, const std::string& desired, const std::string& by) {
    auto r = db_.execute("UPDATE model_registry SET desired = ?, updated_at = ?, updated_by = ? WHERE id = ?",
                         {desired, now_s(), by, id});
    if (!r) return r.error();
    if (*r == 0) return make_error(ErrorCode::not_found, "model '" + id + "' is not registered", "model");
    return Ok{};
}

Status ModelStore::remove_registered(const std::string& id) {
    auto r = db_.execute("DELETE FROM model_registry WHERE id = ?", {id});
    if (!r) return r.error();
    if (*r == 0) return make_error(ErrorCode::not_found, "model '" + id + "' is not registered", "model");
    return Ok{};
}

Result<std::vector<Rollout>> ModelStore::rollouts() {
    auto rows = db_.query("SELECT model, share, updated_at, updated_by FROM model_rollouts ORDER BY model");
    if (!rows) return rows.error();
    std::vector<Rollout> out;
    for (const auto& r : *rows)
        out.push_back(Rollout{r.text(0), static_cast<int>(r.integer(1)), r.integer(2), r.text(3)});
    return out;
}

Status ModelStore::set_rollout(const std::string& model, int share, const std::string& by) {
    if (share < 0 || share > 100)
        return make_error(ErrorCode::invalid_argument, "share must be between 0 and 100", "share");
    auto r =
        db_.execute("INSERT INTO model_rollouts (model, share, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (model) DO UPDATE SET share = excluded.share, "
                    "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    {model, static_cast<int64_t>(share), now_s(), by});
    if (!r) return r.error();
    return Ok{};
}

Status ModelStore::add_outcomes(const std::vector<Outcomes>& deltas) {
    if (deltas.empty()) return Ok{};
    return db_.transaction([&](Connection& c) -> Status {
        for (const auto& d : deltas) {
            const auto& b = d.latency_buckets;
            auto r = c.query(
                "INSERT INTO model_outcomes_daily (day, model, version, requests, errors, prompt_tokens, "
                "completion_tokens, latency_ms_sum, le_100, le_250, le_500, le_1000, le_2500, le_inf, views, "
                "selects) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (day, model, version) DO UPDATE SET "
                "requests = model_outcomes_daily.requests + excluded.requests, "
                "errors = model_outcomes_daily.errors + excluded.errors, "
                "prompt_tokens = model_outcomes_daily.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens = model_outcomes_daily.completion_tokens + excluded.completion_tokens, "
                "latency_ms_sum = model_outcomes_daily.latency_ms_sum + excluded.latency_ms_sum, "
                "le_100 = model_outcomes_daily.le_100 + excluded.le_100, "
                "le_250 = model_outcomes_daily.le_250 + excluded.le_250, "
                "le_500 = model_outcomes_daily.le_500 + excluded.le_500, "
                "le_1000 = model_outcomes_daily.le_1000 + excluded.le_1000, "
                "le_2500 = model_outcomes_daily.le_2500 + excluded.le_2500, "
                "le_inf = model_outcomes_daily.le_inf + excluded.le_inf, "
                "views = model_outcomes_daily.views + excluded.views, "
                "selects = model_outcomes_daily.selects + excluded.selects",
                {d.day, d.model, d.version, d.requests, d.errors, d.prompt_tokens, d.completion_tokens,
                 d.latency_ms_sum, b[0], b[1], b[2], b[3], b[4], b[5], d.views, d.selects});
            if (!r) return r.error();
        }
        return Ok{};
    });
}

Result<std::vector<Outcomes>> ModelStore::outcomes(const std::vector<std::string>& models,
                                                   const std::string& from_day, const std::string& to_day) {
    std::vector<Outcomes> out;
    for (const auto& model : models) { // a few models: one bound query each, no spliced lists
        auto rows =
            db_.query("SELECT version, SUM(requests), SUM(errors), SUM(prompt_tokens), "
                      "SUM(completion_tokens), SUM(latency_ms_sum), SUM(le_100), SUM(le_250), SUM(le_500), "
                      "SUM(le_1000), SUM(le_2500), SUM(le_inf), SUM(views), SUM(selects) "
                      "FROM model_outcomes_daily WHERE model = ? AND day >= ? AND day <= ? "
                      "GROUP BY version ORDER BY version",
                      {model, from_day, to_day});
        if (!rows) return rows.error();
        for (const auto& r : *rows) {
            Outcomes o;
            o.model = model;
            o.version = r.text(0);
            o.requests = r.integer(1);
            o.errors = r.integer(2);
            o.prompt_tokens = r.integer(3);
            o.completion_tokens = r.integer(4);
            o.latency_ms_sum = r.integer(5);
            for (size_t i = 0; i < o.latency_buckets.size(); ++i) o.latency_buckets[i] = r.integer(6 + i);
            o.views = r.integer(12);
            o.selects = r.integer(13);
            out.push_back(std::move(o));
        }
    }
    return out;
}

} // namespace codepilot::store
