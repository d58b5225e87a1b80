#include "store/guard_store.h"

#include "core/clock.h"

namespace codepilot::store {
namespace {

constexpr const char* kColumns =
    "SELECT g.tenant_id, t.name, g.spec, g.updated_at, g.updated_by FROM guard_policies g "
    "JOIN tenants t ON t.id = g.tenant_id";

GuardPolicyRow row_from(const Row& r) {
    return GuardPolicyRow{r.text(0), r.text(1), r.text(2), r.integer(3), r.text(4)};
}

} // namespace

Result<std::vector<GuardPolicyRow>> GuardStore::policies() {
    auto rows = db_.query(std::string(kColumns) + " ORDER BY t.name");
    if (!rows) return rows.error();
    std::vector<GuardPolicyRow> out;
    for (const auto& r : *rows) out.push_back(row_from(r));
    return out;
}

Result<std::optional<GuardPolicyRow>> GuardStore::policy_of(const std::string& tenant_id) {
    auto rows = db_.query(std::string(kColumns) + " WHERE g.tenant_id = ?", {tenant_id});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<GuardPolicyRow>{};
    return std::optional<GuardPolicyRow>(row_from(rows->front()));
}

Status GuardStore::set_policy(const GuardPolicyRow& row) {
    auto r = db_.execute(
        "INSERT INTO guard_policies (tenant_id, spec, updated_at, updated_by) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (tenant_id) DO UPDATE SET spec = excluded.spec, updated_at = "
        "excluded.updated_at, updated_by = excluded.updated_by",
        {row.tenant_id, row.spec, unix_millis(), row.updated_by});
    if (!r) return r.error();
    return Ok{};
}

Result<bool> GuardStore::remove_policy(const std::string& tenant_id) {
    auto r = db_.execute("DELETE FROM guard_policies WHERE tenant_id = ?", {tenant_id});
    if (!r) return r.error();
    return *r > 0;
}

} // namespace codepilot::store
