// GuardStore: the guard policies tenants' administrators set at run time, one JSON document
// per tenant (its form: api/guard_policies.h). Rows go with their tenant.
#pragma once

#include "store/database.h"

#include <optional>
#include <string>
#include <vector>

namespace codepilot::store {

struct GuardPolicyRow {
    std::string tenant_id;
    std::string tenant;     // the tenant's name (read with the row)
    std::string spec;       // JSON
    int64_t updated_at = 0; // unix milliseconds
    std::string updated_by;
};

class GuardStore {
public:
    explicit GuardStore(Database& db) : db_(db) {}
    // Every tenant's policy, by tenant name.
    Result<std::vector<GuardPolicyRow>> policies();
    Result<std::optional<GuardPolicyRow>> policy_of(const std::string& tenant_id);
    // Sets (replaces) a tenant's policy; updated_at is now.
    Status set_policy(const GuardPolicyRow& row);
    // Whether there was one to remove.
    Result<bool> remove_policy(const std::string& tenant_id);

private:
    Database& db_;
};

} // namespace codepilot::store
