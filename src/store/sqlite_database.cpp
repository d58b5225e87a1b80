// SQLite engine: WAL journal, foreign keys on, a busy timeout so that the CLI and a running
// server can write to the same file. The file is created 0600 (SQLite gives -wal and -shm the
// main file's mode) in a 0700 directory, and deleted content is zeroed (secure_delete): the
// database holds password hashes and key digests.
#include "core/private_files.h"
#include "store/connection_pool.h"
#include "store/database.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <sqlite3.h>

namespace codepilot::store {
namespace {

Error sqlite_error(sqlite3* db, std::string_view what) {
    int code = sqlite3_extended_errcode(db);
    std::string msg = std::string(what) + ": " + sqlite3_errmsg(db);
    if ((code & 0xff) == SQLITE_CONSTRAINT)
        return make_error(ErrorCode::invalid_argument, std::string(kConstraintError) + msg);
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED || (code & 0xff) == SQLITE_CANTOPEN ||
        (code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_FULL)
        return make_error(ErrorCode::unavailable, "database unavailable: " + msg);
    return make_error(ErrorCode::internal, msg);
}

class SqliteConnection final : public Connection {
public:
    explicit SqliteConnection(sqlite3* db) : db_(db) {}
    ~SqliteConnection() override { sqlite3_close_v2(db_); }

    Result<Rows> query(std::string_view sql, const std::vector<Value>& params) override {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) != SQLITE_OK)
            return sqlite_error(db_, "prepare");
        std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(stmt, sqlite3_finalize);
        if (static_cast<int>(params.size()) != sqlite3_bind_parameter_count(stmt))
            return make_error(ErrorCode::internal, "statement expects " +
                                                       std::to_string(sqlite3_bind_parameter_count(stmt)) +
                                                       " parameters, got " + std::to_string(params.size()));
        for (size_t i = 0; i < params.size(); ++i) {
            int idx = static_cast<int>(i) + 1, rc = SQLITE_OK;
            if (std::holds_alternative<std::nullptr_t>(params[i]))
                rc = sqlite3_bind_null(stmt, idx);
            else if (auto* n = std::get_if<int64_t>(&params[i]))
                rc = sqlite3_bind_int64(stmt, idx, *n);
            else {
                const auto& s = std::get<std::string>(params[i]);
                rc = sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
            }
            if (rc != SQLITE_OK) return sqlite_error(db_, "bind");
        }
        Rows rows;
        int columns = sqlite3_column_count(stmt);
        for (;;) {
            int rc = sqlite3_step(stmt);
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) return sqlite_error(db_, "step");
            std::vector<std::optional<std::string>> cells;
            cells.reserve(columns);
            for (int c = 0; c < columns; ++c) {
                if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
                    cells.emplace_back(std::nullopt);
                } else {
                    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
                    cells.emplace_back(std::string(text, sqlite3_column_bytes(stmt, c)));
                }
            }
            rows.emplace_back(std::move(cells));
        }
        return rows;
    }

    Status execute_script(std::string_view sql) override {
        std::string text(sql);
        char* err = nullptr;
        if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            return make_error(ErrorCode::internal, "script: " + msg);
        }
        return Ok{};
    }

    int64_t changes() const override { return sqlite3_changes64(db_); }

private:
    sqlite3* db_;
};

// Every call a new number: for shared-cache memory databases, where data_version cannot see
// the other connections' commits, and whenever the monitor's own connection fails.
class AlwaysChanged final : public ChangeMonitor {
public:
    uint64_t generation() override { return ++n_; }

private:
    std::atomic<uint64_t> n_{0};
};

// PRAGMA data_version moves when any other connection (of this process or another) commits.
class DataVersionMonitor final : public ChangeMonitor {
public:
    DataVersionMonitor(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
    ~DataVersionMonitor() override {
        sqlite3_finalize(stmt_);
        sqlite3_close_v2(db_);
    }
    uint64_t generation() override {
        std::lock_guard lock(mu_);
        if (sqlite3_step(stmt_) != SQLITE_ROW) {
            sqlite3_reset(stmt_);
            return ++failures_ << 40; // cannot tell: report a change
        }
        uint64_t version = static_cast<uint64_t>(sqlite3_column_int64(stmt_, 0));
        sqlite3_reset(stmt_); // ends the read transaction at once
        return version + (failures_ << 40);
    }

private:
    std::mutex mu_;
    sqlite3* db_;
    sqlite3_stmt* stmt_;
    uint64_t failures_ = 0;
};

class SqliteDatabase final : public Database {
public:
    Dialect dialect() const override { return Dialect::sqlite; }
    Status with_connection(const std::function<Status(Connection&)>& work) override { return pool.run(work); }
    std::unique_ptr<ChangeMonitor> watch_changes() override {
        if (memory) return std::make_unique<AlwaysChanged>();
        sqlite3* handle = nullptr;
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_open_v2(name.c_str(), &handle,
                            SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                            nullptr) != SQLITE_OK ||
            sqlite3_prepare_v2(handle, "PRAGMA data_version", -1, &stmt, nullptr) != SQLITE_OK) {
            sqlite3_close_v2(handle);
            return std::make_unique<AlwaysChanged>();
        }
        return std::make_unique<DataVersionMonitor>(handle, stmt);
    }
    std::vector<std::string> files() const override {
        if (memory) return {};
        return {name, name + "-wal", name + "-shm"};
    }
    ConnectionPool pool;
    std::string name;
    bool memory = false;
};

} // namespace

std::unique_ptr<Database> open_sqlite(const std::string& path, int pool_size, Error* error) {
    bool memory = path == ":memory:";
    if (!memory && path.rfind("file:", 0) != 0) {
        // Errors here surface as sqlite3_open_v2's own, naming the path.
        (void)make_private_dir(std::filesystem::path(path).parent_path().string());
        (void)create_private_file_if_missing(path);
    }
    auto db = std::make_unique<SqliteDatabase>();
    // A private in-memory database exists once per connection: share one via a named cache.
    std::string name = memory
                           ? "file:codepilot-memdb-" + std::to_string(reinterpret_cast<uintptr_t>(db.get())) +
                                 "?mode=memory&cache=shared"
                           : path;
    for (int i = 0; i < std::max(1, pool_size); ++i) {
        sqlite3* handle = nullptr;
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
        if (sqlite3_open_v2(name.c_str(), &handle, flags, nullptr) != SQLITE_OK) {
            *error =
                make_error(ErrorCode::unavailable, "cannot open SQLite database " + path + ": " +
                                                       (handle ? sqlite3_errmsg(handle) : "out of memory"));
            sqlite3_close_v2(handle);
            return nullptr;
        }
        sqlite3_busy_timeout(handle, 5000);
        auto conn = std::make_unique<SqliteConnection>(handle);
        for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                                   "PRAGMA foreign_keys=ON", "PRAGMA secure_delete=ON"}) {
            if (memory && std::string_view(pragma).find("journal") != std::string_view::npos) continue;
            if (auto r = conn->query(pragma, {}); !r) {
                *error = r.error();
                return nullptr;
            }
        }
        db->pool.add(std::move(conn));
    }
    db->name = name;
    db->memory = memory;
    return db;
}

} // namespace codepilot::store
