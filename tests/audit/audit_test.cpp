// The audit trail on both stores: group commits, the hash chain and every way to break it,
// durability modes, and a store that goes away. Keys, anchors and the preparation stage:
// audit_chain_test.cpp.
#include "audit/audit.h"
#include "store/store.h"
#include "support/test_services.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <gtest/gtest.h>
#include <regex>
#include <thread>
#include <unistd.h>

namespace codepilot::audit {
namespace {

KeyRing ring(const std::vector<std::pair<std::string, char>>& keys) {
    KeyRing out;
    for (const auto& [id, fill] : keys) {
        if (out.current.empty()) out.current = id;
        out.keys[id] = std::string(32, fill);
    }
    return out;
}

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

    void write_keyed(int n, const KeyRing& keys, int first = 1) {
        Options o;
        o.chain_keys = keys;
        AuditLog log(*db_, o, nullptr);
        for (int i = first; i < first + n; ++i) ASSERT_TRUE(log.append(call(i)));
    }
    std::string verdict(const VerifyOptions& options) {
        auto r = verify(*db_, options);
        if (!r) return "error: " + r.error().message;
        return r->first_bad_seq ? std::to_string(*r->first_bad_seq) + ": " + r->problem
                                : "intact " + std::to_string(r->rows);
    }
    std::vector<store::AuditRow> rows() {
        std::vector<store::AuditRow> out;
        EXPECT_TRUE(store::AuditStore(*db_).scan(0, 0, [&](const store::AuditRow& r) -> Status {
            out.push_back(r);
            return Ok{};
        }));
        return out;
    }
    // What someone with write access to the database does: edits row `from` and re-links it and
    // every row after it (and the head) with `key`: none (plain SHA-256) or whatever key they have.
    void rewrite_from(int64_t from, const store::ChainKey& key) {
        std::string prev = store::kAuditGenesis;
        for (auto row : rows()) {
            if (row.seq >= from) {
                if (row.seq == from)
                    row.body = std::regex_replace(row.body, std::regex("\"status\":200"), "\"status\":500");
                row.hash = store::audit_link(prev, row.body, key);
                ASSERT_TRUE(db_->query(
                    "UPDATE audit_log SET body = ?, prev_hash = ?, hash = ?, key_id = ? WHERE seq = ?",
                    {row.body, prev, row.hash, key.id, row.seq}));
            }
            prev = row.hash;
        }
        ASSERT_TRUE(db_->query("UPDATE audit_head SET hash = ? WHERE id = 1", {prev}));
    }
    Anchor anchor_at(int64_t seq) {
        for (const auto& r : rows())
            if (r.seq == seq) return Anchor{seq, r.hash, 0, "anchors:" + std::to_string(seq)};
        ADD_FAILURE() << "no row " << seq;
        return {};
    }

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

TEST_P(AuditTest, KeyedRowsNameTheirKeyAndVerifyingNeedsIt) {
    const auto k1 = ring({{"k1", 'a'}});
    write_keyed(5, k1);
    auto written = rows();
    ASSERT_EQ(written.size(), 5u);
    for (const auto& r : written) {
        EXPECT_EQ(r.key_id, "k1");
        EXPECT_NE(r.hash,
                  store::audit_link(r.prev_hash, r.body)); // not the plain SHA-256 anyone can recompute
    }
    EXPECT_EQ(verdict({&k1, {}}), "intact 5");
    auto without = verdict({});
    EXPECT_EQ(without.rfind("1: it was linked with chain key 'k1', which is not among the keys given", 0), 0u)
        << without;
    std::ostringstream out;
    ASSERT_TRUE(export_jsonl(*db_, 0, 2'000'000'000'000, out));
    EXPECT_EQ(nlohmann::json::parse(out.str().substr(0, out.str().find('\n')))["key_id"], "k1");
}

TEST_P(AuditTest, RotatedKeysStillVerifyTheRowsTheyLinked) {
    write_keyed(3, ring({{"k1", 'a'}}));
    const auto rotated = ring({{"k2", 'b'}, {"k1", 'a'}});
    write_keyed(3, rotated, 4);
    auto written = rows();
    ASSERT_EQ(written.size(), 6u);
    EXPECT_EQ(written[2].key_id, "k1");
    EXPECT_EQ(written[3].key_id, "k2");
    EXPECT_EQ(verdict({&rotated, {}}), "intact 6");
    const auto only_new = ring({{"k2", 'b'}});
    EXPECT_EQ(verdict({&only_new, {}}).substr(0, 40), "1: it was linked with chain key 'k1', wh");
}

TEST_P(AuditTest, LegacyUnkeyedRowsBeforeTheKeyedOnesStillVerify) {
    write(3); // rows from before chain keys: plain SHA-256, key id ""
    const auto k1 = ring({{"k1", 'a'}});
    write_keyed(3, k1, 4);
    auto report = verify(*db_, {&k1, {}});
    ASSERT_TRUE(report);
    EXPECT_FALSE(report->first_bad_seq) << report->problem;
    EXPECT_EQ(report->rows, 6);
    EXPECT_EQ(report->unkeyed_rows, 3);
}

TEST_P(AuditTest, AHistoryRecomputedWithoutTheKeyIsFound) {
    const auto k1 = ring({{"k1", 'a'}});
    write_keyed(10, k1);
    rewrite_from(4, store::ChainKey{"k1", std::string(32, 'z')}); // the attacker's own key under the same id
    EXPECT_EQ(verdict({&k1, {}}),
              "4: its content was changed (or chain key 'k1' is not the key that linked it)");
    rewrite_from(4, {}); // plain SHA-256, as before chain keys
    EXPECT_EQ(verdict({&k1, {}}), "4: it is unkeyed after keyed rows (rewritten without the chain key)");
}

TEST_P(AuditTest, AnchorsCatchAHistoryRecomputedEvenWithTheKey) {
    const auto k1 = ring({{"k1", 'a'}});
    write_keyed(10, k1);
    std::vector<Anchor> anchors{anchor_at(5), anchor_at(10)};
    EXPECT_EQ(verdict({&k1, anchors}), "intact 10");
    rewrite_from(4, store::ChainKey{"k1", std::string(32, 'a')}); // the key itself leaked
    EXPECT_EQ(verdict({&k1, {}}), "intact 10");                   // the chain alone cannot tell
    auto caught = verdict({&k1, anchors});
    EXPECT_EQ(caught.rfind("5: anchor anchors:5 says record 5 has hash ", 0), 0u) << caught;
    EXPECT_NE(caught.find("(history was rewritten)"), std::string::npos);
}

TEST_P(AuditTest, AnchorsCatchARecomputedPlainChainAndACutEnd) {
    write(10); // no keys at all: anyone can recompute every hash
    std::vector<Anchor> anchors{anchor_at(7)};
    rewrite_from(2, {});
    EXPECT_EQ(verdict({nullptr, {}}), "intact 10");
    EXPECT_EQ(verdict({nullptr, anchors}).substr(0, 36), "7: anchor anchors:7 says record 7 ha");
    Anchor beyond{12, "00", 0, "anchors:1"};
    EXPECT_EQ(
        verdict({nullptr, {beyond}}),
        "11: anchor anchors:1 says the chain reached record 12, but it ends at record 10 (rows were cut off "
        "the end)");
}

TEST_P(AuditTest, TheWriterAnchorsTheHeadOnScheduleAndAtShutdown) {
    const std::string file = path_.empty() ? "/tmp/cp-anchors-" + std::to_string(::getpid()) + ".jsonl"
                                           : path_.string() + ".anchors";
    std::filesystem::remove(file);
    Options o;
    o.chain_keys = ring({{"k1", 'a'}});
    o.anchors.file = file;
    o.anchors.interval = std::chrono::milliseconds(5);
    o.anchors.now_ms = [] { return int64_t{1'800'000'000'000}; };
    {
        AuditLog log(*db_, o, nullptr);
        for (int i = 1; i <= 3; ++i) ASSERT_TRUE(log.append(call(i)));
        ASSERT_TRUE(log.flush());
        // The schedule: an anchor of seq 3 appears (bounded wait on the file, not a sleep).
        auto has_seq3 = [&] {
            auto a = read_anchors(file);
            return a && !a->empty() && a->back().seq == 3;
        };
        for (int tries = 0; tries < 500 && !has_seq3(); ++tries)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        EXPECT_TRUE(has_seq3());
        for (int i = 4; i <= 5; ++i) ASSERT_TRUE(log.append(call(i)));
    } // shutdown commits and anchors the final head
    auto anchors = read_anchors(file);
    ASSERT_TRUE(anchors) << anchors.error().message;
    ASSERT_FALSE(anchors->empty());
    EXPECT_EQ(anchors->back().seq, 5);
    EXPECT_EQ(anchors->back().hash, anchor_at(5).hash);
    EXPECT_EQ(anchors->back().at_ms, 1'800'000'000'000);
    for (size_t i = 1; i < anchors->size(); ++i)
        EXPECT_NE((*anchors)[i].seq, (*anchors)[i - 1].seq); // only when moved
    EXPECT_EQ(verdict({&o.chain_keys, *anchors}), "intact 5");
    std::filesystem::remove(file);
}

// Records are prepared by several threads at once, with prompts of very different sizes (so
// they finish out of order), yet the chain holds them in the order they were appended.
TEST_P(AuditTest, PreparedInParallelCommittedInAppendOrder) {
    Options o;
    o.prompts.storage = PromptStorage::redacted;
    o.prepare_threads = 4;
    o.flush_ms = 5;
    const int n = 2000;
    {
        AuditLog log(*db_, o, nullptr);
        for (int i = 1; i <= n; ++i) {
            Record r = call(i);
            r.prompt = std::string(static_cast<size_t>(i % 5) * 2048, 'x') + " key AKIAQYLPMN5HHHFPZAM2 end";
            ASSERT_TRUE(log.append(std::move(r)));
        }
    } // and a clean shutdown commits every one
    auto written = rows();
    ASSERT_EQ(written.size(), static_cast<size_t>(n));
    for (int i = 1; i <= n; ++i) {
        auto body = nlohmann::json::parse(written[i - 1].body);
        ASSERT_EQ(body["request_id"], "req-" + std::to_string(i));
        auto text = body["prompt"]["text"].get<std::string>();
        ASSERT_NE(text.find("key <SECRET:aws_access_key_id> end"), std::string::npos) << i;
        ASSERT_EQ(text.find("AKIAQYLPMN5HHHFPZAM2"), std::string::npos) << i;
    }
    EXPECT_EQ(verdict(), "intact 2000");
}

// Capacity counts records still being prepared as well as those waiting for the writer; a
// flush commits them all without waiting for the flush interval.
TEST_P(AuditTest, CapacityCountsEveryUncommittedRecordAndFlushDrainsThem) {
    Options o;
    o.prompts.storage = PromptStorage::redacted;
    o.capacity = 16;
    o.flush_ms = 10000; // the writer would otherwise wait 10 s
    AuditLog log(*db_, o, nullptr);
    int accepted = 0;
    for (int i = 1; i <= 20; ++i) accepted += log.append(call(i)) ? 1 : 0;
    EXPECT_EQ(accepted, 16);
    EXPECT_FALSE(log.accepting());
    ASSERT_TRUE(log.flush(std::chrono::seconds(5)));
    EXPECT_TRUE(log.accepting());
    EXPECT_EQ(db_->query("SELECT COUNT(*) FROM audit_log")->front().integer(0), 16);
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
