// Schema migrations: numbered SQL files in store/migrations/, compiled into the binary.
#pragma once

#include "store/database.h"

#include <string>
#include <vector>

namespace codepilot::store {

struct Migration {
    int64_t version;
    std::string name;
    std::string dialect; // "" for both engines; "postgresql" / "sqlite" (NNNN_name.postgresql.sql)
    std::string sql;
};

const std::vector<Migration>& migrations();
// Applies the missing migrations; returns the names of those applied (empty: up to date).
Result<std::vector<std::string>> migrate(Database& db);
// The highest applied version (0 for an empty database).
Result<int64_t> schema_version(Database& db);

} // namespace codepilot::store
