// Database helpers shared by both engines, and the URL → engine choice.
#include "store/database.h"

#include <charconv>

namespace codepilot::store {

namespace {
const std::string kEmpty;
}

const std::string& Row::text(size_t i) const {
    const auto& cell = cells_.at(i);
    return cell ? *cell : kEmpty;
}

std::optional<int64_t> Row::optional_integer(size_t i) const {
    const auto& cell = cells_.at(i);
    if (!cell) return std::nullopt;
    int64_t v = 0;
    std::from_chars(cell->data(), cell->data() + cell->size(), v);
    return v;
}

int64_t Row::integer(size_t i) const {
    return optional_integer(i).value_or(0);
}

Status Database::transaction(const std::function<Status(Connection&)>& work) {
    return with_connection([&](Connection& c) -> Status {
        const char* begin = dialect() == Dialect::sqlite ? "BEGIN IMMEDIATE" : "BEGIN";
        if (auto r = c.query(begin); !r) return r.error();
        auto st = work(c);
        if (!st) {
            (void)c.query("ROLLBACK");
            return st;
        }
        if (auto r = c.query("COMMIT"); !r) {
            (void)c.query("ROLLBACK");
            return r.error();
        }
        return Ok{};
    });
}

Result<Rows> Database::query(std::string_view sql, const std::vector<Value>& params) {
    Result<Rows> out = Rows{};
    auto st = with_connection([&](Connection& c) -> Status {
        out = c.query(sql, params);
        return Ok{};
    });
    if (!st) return st.error();
    return out;
}

Result<int64_t> Database::execute(std::string_view sql, const std::vector<Value>& params) {
    int64_t changed = 0;
    auto st = with_connection([&](Connection& c) -> Status {
        auto r = c.query(sql, params);
        if (!r) return r.error();
        changed = c.changes();
        return Ok{};
    });
    if (!st) return st.error();
    return changed;
}

Result<std::unique_ptr<Database>> open_database(const std::string& url, int pool_size) {
    Error error;
    std::unique_ptr<Database> db;
    if (url.rfind("sqlite:", 0) == 0) {
        std::string path = url.substr(7);
        if (path.rfind("//", 0) == 0) path = path.substr(2); // sqlite:///abs → /abs, sqlite://rel → rel
        if (path.empty())
            return make_error(ErrorCode::invalid_argument, "store URL '" + url + "' names no file");
        db = open_sqlite(path, pool_size, &error);
    } else if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
        db = open_postgresql(url, pool_size, &error);
    } else {
        return make_error(ErrorCode::invalid_argument,
                          "store URL must start with sqlite:// or postgresql:// (got '" + url.substr(0, 16) +
                              "…')");
    }
    if (!db) return error;
    return db;
}

} // namespace codepilot::store

#include "store/store.h"

namespace codepilot::store {

Result<std::unique_ptr<Database>> open_and_migrate(const std::string& url, int pool_size) {
    auto db = open_database(url, pool_size);
    if (!db) return db.error();
    if (auto applied = migrate(**db); !applied) return applied.error();
    return db;
}

} // namespace codepilot::store
