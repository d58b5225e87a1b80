// The audit trail as a client sees it: every call and admin change recorded, committed
// before the response under `sync`, secrets never in a record, 503 when it cannot record.
#include "audit/audit.h"
#include "core/base64.h"
#include "core/clock.h"
#include "store/store.h"
#include "support/auth_fixture.h"
#include "support/test_services.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

// Records by request id, read straight from the store.
std::map<std::string, std::vector<json>> records(store::Database& db) {
    std::map<std::string, std::vector<json>> out;
    auto rows = db.query("SELECT body FROM audit_log ORDER BY seq");
    EXPECT_TRUE(rows);
    if (rows)
        for (const auto& r : *rows) {
            auto body = json::parse(r.text(0));
            out[body["request_id"].get<std::string>()].push_back(body);
        }
    return out;
}

class SyncAuditApi : public AuthServerTest {
    void configure(config::Config& c) override { c.audit.durability = "sync"; }
};

TEST_F(SyncAuditApi, EveryCallIsCommittedBeforeItsResponse) {
    auto models = call("GET", "/v1/models", owner_key_);
    auto denied = http(port(), "GET", "/v1/models");
    auto done = call("POST", "/v1/completions", owner_key_, {{"prompt", "def f():"}, {"max_tokens", 3}});
    ASSERT_EQ(done.status, 200) << done.body;
    // No flush, no wait: under `sync` a received response already has its committed row.
    auto by_id = records(app().identities().database());
    const auto& m = by_id[models.header("x-request-id")];
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m[0]["status"], 200);
    EXPECT_EQ(m[0]["user"], "owner");
    EXPECT_EQ(m[0]["tenant"], "default");
    EXPECT_EQ(m[0]["key_prefix"], owner_key_.substr(0, 12));
    EXPECT_EQ(m[0]["route"], "/v1/models");
    EXPECT_EQ(m[0]["client_ip"], "127.0.0.1");
    const auto& d = by_id[denied.header("x-request-id")];
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0]["status"], 401);
    EXPECT_EQ(d[0]["user"], "");
    const auto& c = by_id[done.header("x-request-id")];
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0]["model"], "tiny@1"); // the routing decision: model id and version
    EXPECT_EQ(c[0]["prompt_tokens"], done.json()["usage"]["prompt_tokens"]);
    EXPECT_EQ(c[0]["completion_tokens"], done.json()["usage"]["completion_tokens"]);
    EXPECT_GT(c[0]["prompt_tokens"].get<int>(), 0);
    EXPECT_TRUE(by_id.count(http(port(), "GET", "/health").header("x-request-id")) ==
                0); // probes are not calls
}

TEST_F(SyncAuditApi, AdminChangesRecordActorObjectBeforeAndAfterWithoutSecrets) {
    auto created = call("POST", "/admin/v1/tenants", owner_key_, {{"name", "acme"}});
    ASSERT_EQ(created.status, 201);
    auto added = call("POST", "/admin/v1/tenants/acme/members", owner_key_,
                      {{"username", "dora"}, {"role", "developer"}, {"password", "dora-password-1"}});
    ASSERT_EQ(added.status, 201);
    auto promoted = call("PUT", "/admin/v1/tenants/acme/members/dora", owner_key_, {{"role", "admin"}});
    ASSERT_EQ(promoted.status, 200);
    auto key =
        call("POST", "/admin/v1/tenants/acme/keys", owner_key_, {{"user", "dora"}, {"scopes", "completion"}});
    ASSERT_EQ(key.status, 201);
    auto reset = call("PATCH", "/admin/v1/users/dora", owner_key_, {{"password", "another-password-2"}});
    ASSERT_EQ(reset.status, 200);

    auto by_id = records(app().identities().database());
    auto admin_of = [&](const HttpResponse& r) {
        for (const auto& rec : by_id[r.header("x-request-id")])
            if (rec["kind"] == "admin") return rec;
        return json();
    };
    auto t = admin_of(created);
    EXPECT_EQ(t["action"], "tenant.create");
    EXPECT_EQ(t["object"], "acme");
    EXPECT_EQ(t["user"], "owner");
    EXPECT_TRUE(t["before"].is_null());
    EXPECT_EQ(t["after"]["name"], "acme");
    auto role = admin_of(promoted);
    EXPECT_EQ(role["action"], "member.role");
    EXPECT_EQ(role["before"]["role"], "developer");
    EXPECT_EQ(role["after"]["role"], "admin");
    EXPECT_EQ(admin_of(key)["after"]["prefix"], key.json()["prefix"]);
    EXPECT_EQ(admin_of(reset)["after"]["password"], "(changed)");

    auto all = app().identities().database().query("SELECT body FROM audit_log");
    ASSERT_TRUE(all);
    for (const auto& r : *all) {
        EXPECT_EQ(r.text(0).find(key.json()["key"].get<std::string>()), std::string::npos); // the key itself
        EXPECT_EQ(r.text(0).find("another-password-2"), std::string::npos);
        EXPECT_EQ(r.text(0).find("dora-password-1"), std::string::npos);
        EXPECT_EQ(r.text(0).find("$argon2id$"), std::string::npos);
    }
    auto keys = audit::load_chain_keys("", data_dir_.string(), false); // the one the server generated
    ASSERT_TRUE(keys);
    auto report = audit::verify(app().identities().database(), {&*keys, {}});
    ASSERT_TRUE(report);
    EXPECT_FALSE(report->first_bad_seq) << report->problem;
}

class StoredPromptsApi : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        c.audit.durability = "sync";
        c.audit.store_prompts = mode_;
        // The guard only counts: what the trail stores is redacted by the audit's own pass.
        c.guard.policy.prompts = "log";
        if (mode_ == "encrypted") {
            key_file_ = data_dir_.string() + "-keys";
            std::ofstream(key_file_) << "k1:" << base64url_encode(std::string(32, 'k')) << "\n";
            c.audit.key_file = key_file_;
        }
    }
    void TearDown() override {
        AuthServerTest::TearDown();
        if (!key_file_.empty()) std::filesystem::remove(key_file_);
    }
    json record_of(const HttpResponse& r) {
        auto by_id = records(app().identities().database()); // named: a temporary would dangle in the loop
        for (const auto& rec : by_id[r.header("x-request-id")])
            if (rec["kind"] == "call") return rec;
        return json();
    }
    std::string mode_ = "redacted", key_file_;
};

TEST_F(StoredPromptsApi, RedactedPromptsKeepTheCodeButNotTheSecrets) {
    auto r = call("POST", "/v1/completions", owner_key_,
                  {{"prompt", "conn = 'postgresql://app:hunter2pass@db/x'\n"}, {"max_tokens", 3}});
    ASSERT_EQ(r.status, 200);
    auto rec = record_of(r);
    ASSERT_TRUE(rec.contains("prompt") && rec["prompt"].is_object()) << rec.dump();
    const std::string text = rec["prompt"]["text"];
    EXPECT_NE(text.find("conn = "), std::string::npos);
    EXPECT_EQ(text.find("hunter2pass"), std::string::npos);
    EXPECT_NE(text.find("postgresql://app:<SECRET:database_url_password>@db/x"), std::string::npos) << text;
    EXPECT_EQ(rec["prompt"]["secrets_redacted"], 1);
    EXPECT_EQ(rec["completion"]["text"], r.json()["choices"][0]["text"]);
    auto models = call("GET", "/v1/models", owner_key_);
    EXPECT_FALSE(record_of(models).contains("prompt")); // only inference calls have prompts
}

class EncryptedPromptsApi : public StoredPromptsApi {
protected:
    void SetUp() override {
        mode_ = "encrypted";
        StoredPromptsApi::SetUp();
    }
};

TEST_F(EncryptedPromptsApi, SealedInTheStoreOpenedByExportWithTheKey) {
    auto r = call("POST", "/v1/completions", owner_key_,
                  {{"prompt", "def proprietary_algorithm():"}, {"max_tokens", 3}});
    ASSERT_EQ(r.status, 200);
    auto rec = record_of(r);
    ASSERT_TRUE(rec["prompt"].contains("sealed")) << rec.dump();
    auto all = app().identities().database().query("SELECT body FROM audit_log");
    for (const auto& row : *all) EXPECT_EQ(row.text(0).find("proprietary_algorithm"), std::string::npos);
    std::ostringstream out;
    auto keys = audit::load_prompt_keys(key_file_);
    ASSERT_TRUE(keys);
    ASSERT_TRUE(audit::export_jsonl(app().identities().database(), 0, unix_millis() + 1000, out, &*keys));
    EXPECT_NE(out.str().find("def proprietary_algorithm():"), std::string::npos);
}

// PostgreSQL store, `sync`: while the database refuses connections, requests get 503 rather
// than go unaudited; when it is back they succeed again.
class SyncAuditOnPostgres : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        pg_ = std::make_unique<PostgresDatabase>();
        c.store.url = pg_->url();
        c.audit.durability = "sync";
    }
    void TearDown() override {
        AuthServerTest::TearDown();
        pg_.reset();
    }
    std::unique_ptr<PostgresDatabase> pg_;
};

TEST_F(SyncAuditOnPostgres, AnUnavailableStoreMeans503NotUnauditedCalls) {
    ASSERT_EQ(call("GET", "/v1/models", owner_key_).status, 200); // the key is now cached
    auto admin = store::open_database(service_url("CODEPILOT_TEST_PG_URL"), 1);
    ASSERT_TRUE(admin);
    const std::string name = pg_->url().substr(pg_->url().rfind('/') + 1);
    ASSERT_TRUE((*admin)->query("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false"));
    ASSERT_TRUE((*admin)->query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" +
                                name + "'"));
    auto refused = call("GET", "/v1/models", owner_key_);
    EXPECT_EQ(refused.status, 503);
    EXPECT_EQ(refused.header("retry-after"), "1");
    ASSERT_TRUE((*admin)->query("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true"));
    int status = 0;
    for (int i = 0; i < 50 && status != 200; ++i) {
        status = call("GET", "/v1/models", owner_key_).status;
        if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(status, 200);
    auto keys = audit::load_chain_keys("", data_dir_.string(), false); // the one the server generated
    ASSERT_TRUE(keys);
    auto report = audit::verify(app().identities().database(), {&*keys, {}});
    ASSERT_TRUE(report);
    EXPECT_FALSE(report->first_bad_seq) << report->problem;
}

} // namespace
} // namespace codepilot::testenv
