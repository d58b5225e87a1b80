// The store against both engines: SQLite in a temporary file and a real PostgreSQL 15 (a
// fresh database per test). Same schema, same behaviour.
#include "store/model_store.h"
#include "store/store.h"
#include "support/test_services.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <thread>
#include <unistd.h>

namespace codepilot::store {
namespace {

class StoreTest : public ::testing::TestWithParam<Dialect> {
protected:
    void SetUp() override {
        if (GetParam() == Dialect::sqlite) {
            path_ = std::filesystem::temp_directory_path() / ("cp-store-" + std::to_string(::getpid()) + "-" +
                                                              IdentityStore::new_id().substr(0, 8) + ".db");
            url_ = "sqlite://" + path_.string();
        } else {
            pg_ = std::make_unique<testenv::PostgresDatabase>();
            ASSERT_TRUE(pg_->ok());
            url_ = pg_->url();
        }
        auto db = open_and_migrate(url_, 4);
        ASSERT_TRUE(db) << db.error().message;
        db_ = std::move(*db);
        ids_ = std::make_unique<IdentityStore>(*db_, [this] { return now_; });
    }
    void TearDown() override {
        ids_.reset();
        db_.reset();
        if (!path_.empty()) {
            for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
        }
    }

    User person(const std::string& name) {
        User u;
        u.username = name;
        auto created = ids_->create_user(u);
        EXPECT_TRUE(created) << created.error().message;
        return created ? *created : u;
    }

    ApiKey key_for(const Tenant& t, const User& u, const std::string& prefix) {
        ApiKey k;
        k.id = IdentityStore::new_id();
        k.prefix = prefix;
        k.secret_hash = "hash-" + prefix;
        k.tenant_id = t.id;
        k.user_id = u.id;
        k.scopes = "completion";
        k.created_at = now_;
        EXPECT_TRUE(ids_->create_api_key(k));
        return k;
    }

    std::filesystem::path path_;
    std::string url_;
    std::unique_ptr<testenv::PostgresDatabase> pg_;
    std::unique_ptr<Database> db_;
    std::unique_ptr<IdentityStore> ids_;
    int64_t now_ = 1'800'000'000;
};

TEST_P(StoreTest, MigrationsAreRecordedAndRerunsApplyNothing) {
    EXPECT_EQ(db_->dialect(), GetParam());
    auto version = schema_version(*db_);
    ASSERT_TRUE(version);
    EXPECT_EQ(*version, migrations().back().version);
    auto again = migrate(*db_);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_TRUE(again->empty());
    auto rows = db_->query("SELECT name FROM schema_migrations ORDER BY version");
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), migrations().size());
    EXPECT_EQ(rows->front().text(0), "0001_identity");
}

TEST_P(StoreTest, RefusesADatabaseFromANewerBinary) {
    ASSERT_TRUE(db_->execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                             {int64_t{9999}, std::string("9999_future"), int64_t{0}}));
    auto r = migrate(*db_);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("newer than this binary"), std::string::npos) << r.error().message;
}

TEST_P(StoreTest, ConcurrentMigrationsFromTwoProcessesAgree) {
    // A second replica (its own pool) migrating at the same time must not fail or double-apply.
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int i = 0; i < 3; ++i)
        threads.emplace_back([&] {
            auto db = open_and_migrate(url_, 1);
            if (!db) ++failures;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    auto rows = db_->query("SELECT COUNT(*) FROM schema_migrations");
    ASSERT_TRUE(rows);
    EXPECT_EQ(rows->front().integer(0), static_cast<int64_t>(migrations().size()));
}

TEST_P(StoreTest, TenantsAreUniqueByName) {
    auto t = ids_->create_tenant("acme");
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(t->created_at, now_);
    auto dup = ids_->create_tenant("acme");
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().code, ErrorCode::invalid_argument);
    EXPECT_EQ(dup.error().message, "tenant 'acme' already exists");
    auto found = ids_->find_tenant("acme");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->id, t->id);
    auto missing = ids_->find_tenant("nope");
    ASSERT_TRUE(missing);
    EXPECT_FALSE(*missing);
}

TEST_P(StoreTest, ValuesAreBoundNotSpliced) {
    // Quote, semicolon and comment characters survive as data and break nothing.
    const std::string evil = "x'); DROP TABLE users; --";
    User u;
    u.username = evil;
    u.display_name = "O'Brien \"quoted\" ? $1";
    auto created = ids_->create_user(u);
    ASSERT_TRUE(created) << created.error().message;
    auto found = ids_->find_user(evil);
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->display_name, "O'Brien \"quoted\" ? $1");
    auto count = ids_->count_users();
    ASSERT_TRUE(count);
    EXPECT_EQ(*count, 1);
}

TEST_P(StoreTest, MembershipsJoinTenantsAndUsers) {
    auto a = *ids_->create_tenant("alpha");
    auto b = *ids_->create_tenant("beta");
    auto alice = person("alice");
    ASSERT_TRUE(ids_->set_membership(a.id, alice.id, "admin"));
    ASSERT_TRUE(ids_->set_membership(b.id, alice.id, "viewer"));
    ASSERT_TRUE(ids_->set_membership(b.id, alice.id, "developer")); // upsert changes the role
    auto mine = ids_->memberships_of_user(alice.id);
    ASSERT_TRUE(mine);
    ASSERT_EQ(mine->size(), 2u);
    EXPECT_EQ((*mine)[0].tenant_name, "alpha");
    EXPECT_EQ((*mine)[0].role, "admin");
    EXPECT_EQ((*mine)[1].role, "developer");
    auto bad_role = ids_->set_membership(a.id, alice.id, "emperor");
    EXPECT_FALSE(bad_role); // CHECK constraint
    auto removed = ids_->remove_membership(a.id, alice.id);
    ASSERT_TRUE(removed);
    EXPECT_TRUE(*removed);
    EXPECT_FALSE(*ids_->remove_membership(a.id, alice.id));
}

TEST_P(StoreTest, DirectorySyncReplacesOnlyItsOwnMemberships) {
    auto a = *ids_->create_tenant("alpha");
    auto b = *ids_->create_tenant("beta");
    auto c = *ids_->create_tenant("gamma");
    auto bob = person("bob");
    ASSERT_TRUE(ids_->set_membership(a.id, bob.id, "owner")); // set by hand
    ASSERT_TRUE(ids_->sync_memberships(bob.id, "ldap", {{a.id, "viewer"}, {b.id, "developer"}}));
    auto first = *ids_->memberships_of_user(bob.id);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].role, "owner"); // the manual one wins
    EXPECT_EQ(first[0].source, "manual");
    EXPECT_EQ(first[1].source, "ldap");
    ASSERT_TRUE(ids_->sync_memberships(bob.id, "ldap", {{c.id, "auditor"}}));
    auto second = *ids_->memberships_of_user(bob.id);
    ASSERT_EQ(second.size(), 2u);
    EXPECT_EQ(second[0].tenant_name, "alpha");
    EXPECT_EQ(second[1].tenant_name, "gamma");
    EXPECT_EQ(second[1].role, "auditor");
}

TEST_P(StoreTest, KeyGrantCarriesTheOwnersCurrentRole) {
    auto t = *ids_->create_tenant("acme");
    auto dev = person("dev");
    ASSERT_TRUE(ids_->set_membership(t.id, dev.id, "developer"));
    auto k = key_for(t, dev, "cpk_AAAA0001");
    auto grant = ids_->find_key_grant("hash-cpk_AAAA0001");
    ASSERT_TRUE(grant && *grant);
    EXPECT_EQ((*grant)->key.tenant_name, "acme");
    EXPECT_EQ((*grant)->user.username, "dev");
    EXPECT_EQ((*grant)->role, std::optional<std::string>("developer"));
    ASSERT_TRUE(ids_->remove_membership(t.id, dev.id));
    grant = ids_->find_key_grant("hash-cpk_AAAA0001");
    ASSERT_TRUE(grant && *grant);
    EXPECT_FALSE((*grant)->role); // left the tenant: the key grants nothing
    EXPECT_FALSE(*ids_->find_key_grant("hash-unknown"));
}

TEST_P(StoreTest, RevokeAndTouchKeys) {
    auto t = *ids_->create_tenant("acme");
    auto dev = person("dev");
    auto k = key_for(t, dev, "cpk_AAAA0002");
    now_ += 10;
    ASSERT_TRUE(ids_->touch_key(k.id));
    auto revoked = ids_->revoke_key(k.id);
    ASSERT_TRUE(revoked);
    EXPECT_TRUE(*revoked);
    EXPECT_FALSE(*ids_->revoke_key(k.id)); // only once
    auto listed = ids_->list_keys(t.id);
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].last_used_at, std::optional<int64_t>(now_));
    EXPECT_EQ((*listed)[0].revoked_at, std::optional<int64_t>(now_));
    EXPECT_EQ((*listed)[0].username, "dev");
}

TEST_P(StoreTest, DeletingATenantRemovesItsKeysAndMemberships) {
    auto t = *ids_->create_tenant("doomed");
    auto dev = person("dev");
    ASSERT_TRUE(ids_->set_membership(t.id, dev.id, "developer"));
    key_for(t, dev, "cpk_AAAA0003");
    ASSERT_TRUE(ids_->delete_tenant(t.id));
    EXPECT_FALSE(*ids_->find_key_by_prefix("cpk_AAAA0003"));
    EXPECT_TRUE(ids_->memberships_of_user(dev.id)->empty());
    EXPECT_TRUE(*ids_->find_user("dev")); // people outlive tenants
}

TEST_P(StoreTest, SessionsAndSettings) {
    auto u = person("carol");
    Session s;
    s.id = IdentityStore::new_id();
    s.secret_hash = "session-hash";
    s.user_id = u.id;
    s.method = "password";
    s.created_at = now_;
    s.expires_at = now_ + 100;
    ASSERT_TRUE(ids_->create_session(s));
    auto grant = ids_->find_session_grant("session-hash");
    ASSERT_TRUE(grant && *grant);
    EXPECT_EQ((*grant)->user.username, "carol");
    EXPECT_FALSE((*grant)->session.tenant_id);
    EXPECT_TRUE(*ids_->revoke_session("session-hash"));
    EXPECT_TRUE((*ids_->find_session_grant("session-hash"))->session.revoked_at);

    EXPECT_FALSE(*ids_->get_setting("ldap"));
    ASSERT_TRUE(ids_->put_setting("ldap", R"({"enabled":false})", "owner"));
    ASSERT_TRUE(ids_->put_setting("ldap", R"({"enabled":true})", "owner"));
    EXPECT_EQ(**ids_->get_setting("ldap"), R"({"enabled":true})");
}

TEST_P(StoreTest, ChangeMonitorSeesCommitsFromOtherConnections) {
    auto monitor = db_->watch_changes();
    auto before = monitor->generation();
    for (int i = 0; i < 20; ++i) { // nothing changed: the same number, call after call
        ASSERT_EQ(monitor->generation(), before) << i;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // A commit through another process-like connection (a second pool, as the CLI would).
    auto other = open_database(url_, 1);
    ASSERT_TRUE(other);
    IdentityStore elsewhere(**other);
    ASSERT_TRUE(elsewhere.create_tenant("changed"));
    bool moved = false;
    for (int i = 0; i < 200 && !moved; ++i) { // a NOTIFY arrives a moment after the commit
        moved = monitor->generation() != before;
        if (!moved) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(moved);
    auto settled = monitor->generation();
    EXPECT_EQ(monitor->generation(), settled);
}

TEST_P(StoreTest, ConcurrentWritersAllLand) {
    auto t = *ids_->create_tenant("busy");
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int w = 0; w < 4; ++w)
        threads.emplace_back([&, w] {
            for (int i = 0; i < 25; ++i) {
                User u;
                u.username = "u" + std::to_string(w) + "-" + std::to_string(i);
                auto created = ids_->create_user(u);
                if (!created || !ids_->set_membership(t.id, created->id, "viewer")) ++failures;
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(ids_->members_of_tenant(t.id)->size(), 100u);
}

TEST_P(StoreTest, ModelRegistryRolloutsAndOutcomesAddUp) {
    ModelStore models(*db_);
    RegisteredModel m{"coder-v2", "2", "id = \"coder-v2\"\n", "loaded", 0, 0, "alice"};
    ASSERT_TRUE(models.put_registered(m));
    auto row = models.registered("coder-v2");
    ASSERT_TRUE(row && *row);
    EXPECT_EQ((*row)->spec, m.spec);
    EXPECT_GT((*row)->created_at, 0);
    ASSERT_TRUE(models.set_desired("coder-v2", "unloaded", "bob"));
    EXPECT_EQ((*models.registered("coder-v2"))->updated_by, "bob");
    EXPECT_EQ(models.set_desired("ghost", "loaded", "bob").error().code, ErrorCode::not_found);
    EXPECT_FALSE(models.set_desired("coder-v2", "sideways", "bob")); // the CHECK constraint
    m.version = "3";
    ASSERT_TRUE(models.put_registered(m)); // replaced in place
    ASSERT_EQ(models.registered()->size(), 1u);
    EXPECT_EQ(models.registered()->front().version, "3");

    ASSERT_TRUE(models.set_rollout("coder-v2", 25, "alice"));
    ASSERT_TRUE(models.set_rollout("coder-v2", 100, "alice"));
    EXPECT_FALSE(models.set_rollout("coder-v2", 101, "alice"));
    ASSERT_EQ(models.rollouts()->size(), 1u);
    EXPECT_EQ(models.rollouts()->front().share, 100);

    Outcomes o;
    o.day = "2026-12-01";
    o.model = "coder-v2";
    o.version = "2";
    o.requests = 3;
    o.errors = 1;
    o.latency_buckets = {1, 2, 0, 0, 0, 0};
    o.views = 4;
    o.selects = 1;
    ASSERT_TRUE(models.add_outcomes({o, o}));
    o.day = "2026-12-02";
    ASSERT_TRUE(models.add_outcomes({o}));
    auto sums = models.outcomes({"coder-v2", "coder"}, "2026-12-01", "2026-12-02");
    ASSERT_TRUE(sums) << sums.error().message;
    ASSERT_EQ(sums->size(), 1u);
    EXPECT_EQ((*sums)[0].requests, 9);
    EXPECT_EQ((*sums)[0].errors, 3);
    EXPECT_EQ((*sums)[0].latency_buckets[1], 6);
    EXPECT_EQ((*sums)[0].views, 12);
    EXPECT_EQ(models.outcomes({"coder-v2"}, "2026-12-02", "2026-12-02")->front().requests, 3);
    ASSERT_TRUE(models.remove_registered("coder-v2"));
    EXPECT_EQ(models.remove_registered("coder-v2").error().code, ErrorCode::not_found);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::Values(Dialect::sqlite, Dialect::postgresql),
                         [](const auto& info) {
                             return info.param == Dialect::sqlite ? "SQLite" : "PostgreSQL";
                         });

TEST(StoreUrl, RejectsUnknownSchemesAndUnreachableServers) {
    auto bad = open_database("mysql://x");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("sqlite:// or postgresql://"), std::string::npos);
    auto down = open_database("postgresql://nobody:secret-pw@127.0.0.1:1/none?connect_timeout=2");
    ASSERT_FALSE(down);
    EXPECT_EQ(down.error().code, ErrorCode::unavailable);
    EXPECT_EQ(down.error().message.find("secret-pw"), std::string::npos); // never echo the password
}

} // namespace
} // namespace codepilot::store
