// PostgreSQL engine (libpq): `?` placeholders become $1…$n, values travel as bound text
// parameters, and a broken connection is re-established on the next use.
#include "store/connection_pool.h"
#include "store/database.h"

#include <libpq-fe.h>
#include <mutex>

namespace codepilot::store {
namespace {

// `?` outside quoted text → $n.
std::string number_placeholders(std::string_view sql) {
    std::string out;
    out.reserve(sql.size() + 16);
    int n = 0;
    char quote = 0;
    for (char c : sql) {
        if (quote) {
            if (c == quote) quote = 0;
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '?') {
            out += '$' + std::to_string(++n);
            continue;
        }
        out += c;
    }
    return out;
}

class PostgresConnection final : public Connection {
public:
    explicit PostgresConnection(PGconn* conn) : conn_(conn) {}
    ~PostgresConnection() override { PQfinish(conn_); }

    Result<Rows> query(std::string_view sql, const std::vector<Value>& params) override {
        if (PQstatus(conn_) != CONNECTION_OK) {
            PQreset(conn_);
            if (PQstatus(conn_) != CONNECTION_OK) return unavailable();
        }
        std::string text = number_placeholders(sql);
        std::vector<std::string> storage(params.size());
        std::vector<const char*> values(params.size(), nullptr);
        for (size_t i = 0; i < params.size(); ++i) {
            if (auto* n = std::get_if<int64_t>(&params[i])) {
                storage[i] = std::to_string(*n);
                values[i] = storage[i].c_str();
            } else if (auto* s = std::get_if<std::string>(&params[i])) {
                values[i] = s->c_str();
            }
        }
        PGresult* res = PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                                     values.data(), nullptr, nullptr, 0);
        std::unique_ptr<PGresult, void (*)(PGresult*)> guard(res, PQclear);
        auto status = PQresultStatus(res);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(res);
        const char* tuples = PQcmdTuples(res);
        changes_ = tuples && *tuples ? std::stoll(tuples) : 0;
        Rows rows;
        int n_rows = PQntuples(res), n_cols = PQnfields(res);
        rows.reserve(n_rows);
        for (int r = 0; r < n_rows; ++r) {
            std::vector<std::optional<std::string>> cells;
            cells.reserve(n_cols);
            for (int c = 0; c < n_cols; ++c) {
                if (PQgetisnull(res, r, c))
                    cells.emplace_back(std::nullopt);
                else
                    cells.emplace_back(std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
            }
            rows.emplace_back(std::move(cells));
        }
        return rows;
    }

    Status execute_script(std::string_view sql) override {
        std::string text(sql);
        PGresult* res = PQexec(conn_, text.c_str());
        std::unique_ptr<PGresult, void (*)(PGresult*)> guard(res, PQclear);
        auto status = PQresultStatus(res);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return failure(res);
        return Ok{};
    }

    int64_t changes() const override { return changes_; }

private:
    Error unavailable() const {
        return make_error(ErrorCode::unavailable,
                          std::string("database unavailable: ") + PQerrorMessage(conn_));
    }
    Error failure(PGresult* res) const {
        if (PQstatus(conn_) != CONNECTION_OK) return unavailable();
        const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        std::string msg = PQresultErrorMessage(res);
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        if (state && std::string_view(state).substr(0, 2) == "23")
            return make_error(ErrorCode::invalid_argument, std::string(kConstraintError) + msg);
        if (state &&
            (std::string_view(state).substr(0, 2) == "08" || std::string_view(state).substr(0, 2) == "57"))
            return make_error(ErrorCode::unavailable, "database unavailable: " + msg);
        return make_error(ErrorCode::internal, msg);
    }

    PGconn* conn_;
    int64_t changes_ = 0;
};

// LISTENs for the NOTIFYs that triggers on the identity tables send (migration 0002) and
// counts them. Reading them is a non-blocking socket read, not a round trip.
class NotifyMonitor final : public ChangeMonitor {
public:
    explicit NotifyMonitor(std::string url) : url_(std::move(url)) { connect(); }
    ~NotifyMonitor() override { PQfinish(conn_); }

    uint64_t generation() override {
        std::lock_guard lock(mu_);
        if (!conn_ || PQstatus(conn_) != CONNECTION_OK || PQconsumeInput(conn_) == 0) {
            connect(); // notifications may have been missed meanwhile: report a change
            return ++count_;
        }
        while (PGnotify* n = PQnotifies(conn_)) {
            ++count_;
            PQfreemem(n);
        }
        return count_;
    }

private:
    void connect() {
        PQfinish(conn_);
        conn_ = PQconnectdb(url_.c_str());
        if (PQstatus(conn_) != CONNECTION_OK) return;
        PQclear(PQexec(conn_, "LISTEN codepilot_identity"));
    }
    std::mutex mu_;
    std::string url_;
    PGconn* conn_ = nullptr;
    uint64_t count_ = 0;
};

class PostgresDatabase final : public Database {
public:
    Dialect dialect() const override { return Dialect::postgresql; }
    Status with_connection(const std::function<Status(Connection&)>& work) override { return pool.run(work); }
    std::unique_ptr<ChangeMonitor> watch_changes() override { return std::make_unique<NotifyMonitor>(url); }
    ConnectionPool pool;
    std::string url;
};

void ignore_notice(void*, const char*) {} // "relation already exists, skipping" and the like

} // namespace

std::unique_ptr<Database> open_postgresql(const std::string& url, int pool_size, Error* error) {
    auto db = std::make_unique<PostgresDatabase>();
    for (int i = 0; i < std::max(1, pool_size); ++i) {
        PGconn* conn = PQconnectdb(url.c_str());
        if (PQstatus(conn) != CONNECTION_OK) {
            // The message names host and port but never the password.
            *error = make_error(ErrorCode::unavailable,
                                std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(conn));
            while (!error->message.empty() && error->message.back() == '\n') error->message.pop_back();
            PQfinish(conn);
            return nullptr;
        }
        PQsetNoticeProcessor(conn, ignore_notice, nullptr);
        db->pool.add(std::make_unique<PostgresConnection>(conn));
    }
    db->url = url;
    return db;
}

} // namespace codepilot::store
