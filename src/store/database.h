// Database: SQLite or PostgreSQL behind one small interface: SQL text with `?` parameters
// (always bound, never spliced), text cells, transactions on a pooled connection.
#pragma once

#include "core/result.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace codepilot::store {

using Value = std::variant<std::nullptr_t, int64_t, std::string>;

// One result row. Cells are text as both engines render them; NULL is nullopt.
class Row {
public:
    explicit Row(std::vector<std::optional<std::string>> cells) : cells_(std::move(cells)) {}
    bool is_null(size_t i) const { return !cells_.at(i); }
    const std::string& text(size_t i) const; // "" for NULL
    int64_t integer(size_t i) const;         // 0 for NULL
    std::optional<int64_t> optional_integer(size_t i) const;
    size_t size() const { return cells_.size(); }

private:
    std::vector<std::optional<std::string>> cells_;
};
using Rows = std::vector<Row>;

enum class Dialect { sqlite, postgresql };

// One connection, used by one thread at a time.
class Connection {
public:
    virtual ~Connection() = default;
    virtual Result<Rows> query(std::string_view sql, const std::vector<Value>& params = {}) = 0;
    // Several statements without parameters (migrations).
    virtual Status execute_script(std::string_view sql) = 0;
    // Rows changed by the last INSERT/UPDATE/DELETE.
    virtual int64_t changes() const = 0;
};

// A number that moves whenever identity data may have changed, in this process or another
// (SQLite: PRAGMA data_version on a connection of its own; PostgreSQL: NOTIFYs from triggers
// on the identity tables, read from a LISTEN connection without a round trip). Lets callers
// cache what they read and still see a revocation on the next request. While it cannot tell
// (connection lost), it moves on every call.
class ChangeMonitor {
public:
    virtual ~ChangeMonitor() = default;
    virtual uint64_t generation() = 0;
};

class Database {
public:
    virtual ~Database() = default;
    virtual Dialect dialect() const = 0;
    virtual std::unique_ptr<ChangeMonitor> watch_changes() = 0;
    // The files on this machine that hold the data (SQLite: the file, -wal, -shm), for the
    // start-up check of their modes; none for a server database or an in-memory one.
    virtual std::vector<std::string> files() const { return {}; }
    // A connection from the pool for the duration of `work`.
    virtual Status with_connection(const std::function<Status(Connection&)>& work) = 0;

    // `work` inside BEGIN … COMMIT; rolled back when it returns an error.
    Status transaction(const std::function<Status(Connection&)>& work);
    // One statement on any pooled connection.
    Result<Rows> query(std::string_view sql, const std::vector<Value>& params = {});
    // One statement; returns the number of rows it changed.
    Result<int64_t> execute(std::string_view sql, const std::vector<Value>& params = {});
};

// sqlite:///absolute/path.db, sqlite://relative/path.db, sqlite::memory: or postgresql://user:pw@host:port/db
Result<std::unique_ptr<Database>> open_database(const std::string& url, int pool_size = 4);

std::unique_ptr<Database> open_sqlite(const std::string& path, int pool_size, Error* error);
std::unique_ptr<Database> open_postgresql(const std::string& url, int pool_size, Error* error);

// ErrorCode for a unique/foreign-key violation is invalid_argument with this prefix.
inline constexpr std::string_view kConstraintError = "constraint violated: ";

} // namespace codepilot::store
