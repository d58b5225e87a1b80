// Versioned schema migrations, applied in order inside one transaction each. Replicas that
// start together serialize on an advisory lock (PostgreSQL) or the write lock (SQLite).
#include "store/migrations.h"

#include <ctime>

namespace codepilot::store {

const std::vector<Migration>& migrations() {
    static const std::vector<Migration> all = {
#include "store_migrations.inc"
    };
    return all;
}

namespace {

constexpr const char* kCreateTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at BIGINT NOT NULL)";

Result<int64_t> current_version(Connection& c) {
    auto rows = c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!rows) return rows.error();
    return rows->empty() ? 0 : rows->front().integer(0);
}

} // namespace

Result<int64_t> schema_version(Database& db) {
    Result<int64_t> version = int64_t{0};
    auto st = db.with_connection([&](Connection& c) -> Status {
        if (auto r = c.query(kCreateTable); !r) return r.error();
        version = current_version(c);
        return Ok{};
    });
    if (!st) return st.error();
    return version;
}

Result<std::vector<std::string>> migrate(Database& db) {
    std::vector<std::string> applied;
    if (auto r = db.query(kCreateTable); !r) return r.error();
    const int64_t latest = migrations().empty() ? 0 : migrations().back().version;
    for (const auto& m : migrations()) {
        auto st = db.transaction([&](Connection& c) -> Status {
            if (db.dialect() == Dialect::postgresql) {
                if (auto r = c.query("SELECT pg_advisory_xact_lock(4242001)"); !r) return r.error();
            }
            auto version = current_version(c);
            if (!version) return version.error();
            if (*version > latest)
                return make_error(ErrorCode::unavailable,
                                  "the database schema (version " + std::to_string(*version) +
                                      ") is newer than this binary knows (" + std::to_string(latest) +
                                      "): upgrade codepilot");
            if (*version >= m.version) return Ok{};
            // A migration for the other engine is recorded without running, so versions stay aligned.
            const char* mine = db.dialect() == Dialect::sqlite ? "sqlite" : "postgresql";
            if (m.dialect.empty() || m.dialect == mine)
                if (auto s = c.execute_script(m.sql); !s)
                    return make_error(s.error().code, "migration " + m.name + ": " + s.error().message);
            auto r = c.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                             {m.version, m.name, static_cast<int64_t>(std::time(nullptr))});
            if (!r) return r.error();
            applied.push_back(m.name);
            return Ok{};
        });
        if (!st) return st.error();
    }
    return applied;
}

} // namespace codepilot::store
