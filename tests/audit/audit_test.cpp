// The audit trail on both stores: group commits, the hash chain and every way to break it,
// durability modes, and a store that goes away.
#include "audit/audit.h"
#include "store/store.h"
#include "support/test_services.h"

#include <filesystem>
#include <future>
#include <gtest/gtest.h>
#include <thread>
#include <unistd.h>

namespace codepilot::audit {
namespace {

Record call(int i) {
    Record r;
    r.at_ms = 1'800'000'000'000 + i;
    r.request_id = "req-" + std::to_string(i);
    r.tenant = "acme";
    r.username = "dana";
    r.route = "/v1/completions";
    r.status = 200;
    r.prompt_tokens = i;
    return r;
}

class AuditTest : public ::testing::TestWithParam<store::Dialect> {
protected:
    void SetUp() override {
        if (GetParam() == store::Dialect::sqlite) {
            path_ = std::filesystem::temp_directory_path() /
                    ("cp-audit-" + std::to_string(::getpid()) + "-" +
                     store::IdentityStore::new_id().substr(0, 8) + ".db");
            url_ = "sqlite://" + path_.string();
        } else {
            pg_ = std::make_unique<testenv::PostgresDatabase>();
            ASSERT_TRUE(pg_->ok());
            url_ = pg_->url();
        }
        auto db = store::open_and_migrate(url_, 2);
        ASSERT_TRUE(db) << db.error().message;
        db_ = std::move(*db);
    }
    void TearDown() override {
        db_.reset();
        if (!path_.empty())
            for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
    }

    void write(int n, Durability d = Durability::batched) {
        Options o;
        o.durability = d;
        AuditLog log(*db_, o, nullptr);
        for (int i = 1; i <= n; ++i) ASSERT_TRUE(log.append(call(i)));
    } // the destructor commits what is queued
    std::string verdict() {
        auto r = verify(*db_);
        if (!r) return "error: " + r.error().message;
        return r->first_bad_seq ? std::to_string(*r->first_bad_seq) + ": " + r->problem
                                : "intact " + std::to_string(r->rows);
    }
    void sql(const std::string& statement) { ASSERT_TRUE(db_->query(statement)) << statement; }

    std::filesystem::path path_;
    std::string url_;
    std::unique_ptr<testenv::PostgresDatabase> pg_;
    std::unique_ptr<store::Database> db_;
};

TEST_P(AuditTest, ACleanShutdownCommitsEverythingInOneChain) {
    write(500);
    EXPECT_EQ(verdict(), "intact 500");
    auto rows = db_->query("SELECT COUNT(*), MIN(seq), MAX(seq) FROM audit_log");
    ASSERT_TRUE(rows);
    EXPECT_EQ(rows->front().integer(0), 500);
    EXPECT_EQ(rows->front().integer(2), 500);
    write(10); // a second process continues the same chain
    EXPECT_EQ(verdict(), "intact 510");
}

TEST_P(AuditTest, VerifyNamesTheFirstEditedDeletedOrReorderedRow) {
    write(20);
    sql("UPDATE audit_log SET body = REPLACE(body, '\"status\":200', '\"status\":500') WHERE seq = 7");
    EXPECT_EQ(verdict(), "7: its content was changed");
}

TEST_P(AuditTest, DeletedRowsAreFound) {
    write(20);
    sql("DELETE FROM audit_log WHERE seq = 12");
    EXPECT_EQ(verdict(), "12: row 12 is missing (next is 13)");
}

TEST_P(AuditTest, ReorderedRowsAreFound) {
    write(20);
    // Swap the contents of rows 5 and 6, hashes included: each still hashes right on its own.
    sql("UPDATE audit_log SET seq = -5 WHERE seq = 5");
    sql("UPDATE audit_log SET seq = 5 WHERE seq = 6");
    sql("UPDATE audit_log SET seq = 6 WHERE seq = -5");
    EXPECT_EQ(verdict(), "5: its link to the row before does not match (reordered or removed rows)");
}

TEST_P(AuditTest, RowsCutOffTheEndAreFound) {
    write(20);
    sql("DELETE FROM audit_log WHERE seq > 17");
    EXPECT_EQ(verdict(), "18: the chain ends at row 17 but the head says row 20 (rows were cut off the end)");
}

TEST_P(AuditTest, IndexedColumnsMustMatchTheHashedBody) {
    write(5);
    sql("UPDATE audit_log SET tenant = 'globex' WHERE seq = 3");
    EXPECT_EQ(verdict(), "3: its indexed columns differ from its content");
}

TEST_P(AuditTest, SyncCallersLearnOfTheirCommit) {
    Options o;
    o.durability = Durability::sync;
    AuditLog log(*db_, o, nullptr);
    std::promise<Status> committed;
    ASSERT_TRUE(log.append(call(1), [&](Status s) { committed.set_value(std::move(s)); }));
    auto future = committed.get_future();
    ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    EXPECT_TRUE(future.get().ok());
    // Committed means visible to another connection right now.
    auto other = store::open_database(url_, 1);
    ASSERT_TRUE(other);
    EXPECT_EQ((*other)->query("SELECT COUNT(*) FROM audit_log")->front().integer(0), 1);
}

TEST_P(AuditTest, ExportWritesTheRequestedWindowAsJsonLines) {
    write(10);
    std::ostringstream out;
    auto n = export_jsonl(*db_, 1'800'000'000'003, 1'800'000'000'006, out);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 3);
    std::istringstream lines(out.str());
    std::string line;
    std::vector<nlohmann::json> records;
    while (std::getline(lines, line)) records.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0]["request_id"], "req-3");
    EXPECT_EQ(records[0]["seq"], 3);
    EXPECT_EQ(records[2]["prompt_tokens"], 5);
    EXPECT_EQ(records[1]["prev_hash"], records[0]["hash"]);
}

INSTANTIATE_TEST_SUITE_P(Stores, AuditTest,
                         ::testing::Values(store::Dialect::sqlite, store::Dialect::postgresql),
                         [](const auto& info) {
                             return info.param == store::Dialect::sqlite ? "SQLite" : "PostgreSQL";
                         });

// A PostgreSQL that refuses connections for a while: sync callers fail (their requests get
// 503), batched records wait in a bounded buffer and land when it comes back.
TEST(AuditFaults, StoreAwayThenBack) {
    testenv::PostgresDatabase pg;
    ASSERT_TRUE(pg.ok());
    auto db = store::open_and_migrate(pg.url(), 1);
    ASSERT_TRUE(db);
    auto admin = store::open_database(testenv::service_url("CODEPILOT_TEST_PG_URL"), 1);
    ASSERT_TRUE(admin);
    const std::string name = pg.url().substr(pg.url().rfind('/') + 1);
    auto cut = [&](bool away) {
        ASSERT_TRUE(
            (*admin)->query("ALTER DATABASE " + name + " ALLOW_CONNECTIONS " + (away ? "false" : "true")));
        if (away) {
            ASSERT_TRUE((*admin)->query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'"));
        }
    };

    Options o;
    o.durability = Durability::batched;
    o.capacity = 50;
    o.flush_ms = 20;
    {
        AuditLog log(**db, o, nullptr);
        cut(true);
        int accepted = 0;
        for (int i = 1; i <= 80; ++i) accepted += log.append(call(i)) ? 1 : 0;
        EXPECT_EQ(accepted, 50); // bounded: the rest are refused (their requests get 503)
        EXPECT_FALSE(log.accepting());
        cut(false);
        EXPECT_TRUE(log.flush(std::chrono::seconds(20)));
        EXPECT_TRUE(log.accepting());
    }
    auto verdict = verify(**db);
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->rows, 50);
    EXPECT_FALSE(verdict->first_bad_seq);

    Options s;
    s.durability = Durability::sync;
    AuditLog sync_log(**db, s, nullptr);
    cut(true);
    std::promise<Status> failed;
    ASSERT_TRUE(sync_log.append(call(99), [&](Status st) { failed.set_value(std::move(st)); }));
    auto f = failed.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto st = f.get();
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, ErrorCode::unavailable);
    cut(false);
}

} // namespace
} // namespace codepilot::audit
