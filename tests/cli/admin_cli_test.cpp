// The admin CLI on a store shared with a running server: what the CLI creates or revokes
// takes effect on the server's next request.
#include "audit/audit.h"
#include "store/audit_store.h"
#include "store/store.h"
#include "support/http_client.h"
#include "support/test_env.h"
#include "support/test_pki.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace codepilot::testenv {
namespace {

struct Run {
    int code = -1;
    std::string out;
    std::string last_line() const {
        std::string s = out;
        while (!s.empty() && s.back() == '\n') s.pop_back();
        auto nl = s.rfind('\n');
        return nl == std::string::npos ? s : s.substr(nl + 1);
    }
};

Run cli(const std::string& args, const std::string& stdin_text = "") {
    std::string command = std::string(CODEPILOT_BINARY) + " " + args + " 2>&1";
    if (!stdin_text.empty()) command = "printf '%s\\n' '" + stdin_text + "' | " + command;
    Run r;
    FILE* p = ::popen(command.c_str(), "r");
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

class AdminCli : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("cp-cli-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        flags_ = " --data-dir " + dir_.string();
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
    std::string flags_;
};

TEST_F(AdminCli, BootstrapsAStoreAndManagesKeysThatARunningServerHonours) {
    auto migrate = cli("migrate" + flags_);
    ASSERT_EQ(migrate.code, 0) << migrate.out;
    EXPECT_NE(migrate.out.find("applied 0001_identity"), std::string::npos);
    EXPECT_EQ(cli("migrate" + flags_).last_line(),
              "schema version " + std::to_string(store::migrations().back().version) + " (up to date)");

    ASSERT_EQ(cli("tenant create acme" + flags_).code, 0);
    auto dup = cli("tenant create acme" + flags_);
    EXPECT_EQ(dup.code, 1);
    EXPECT_NE(dup.out.find("already exists"), std::string::npos);
    EXPECT_EQ(cli("tenant create Bad!" + flags_).code, 2);
    auto user =
        cli("user create dana --tenant acme --role developer --password-stdin" + flags_, "dana-password-1");
    ASSERT_EQ(user.code, 0) << user.out;
    EXPECT_NE(cli("user create eve --tenant acme --role emperor" + flags_).code, 0); // CLI11 rejects the role
    auto weak = cli("user create weak --tenant acme --password-stdin" + flags_, "short");
    EXPECT_EQ(weak.code, 2);
    EXPECT_NE(weak.out.find("12 characters"), std::string::npos);
    ASSERT_EQ(cli("user create ci-bot --tenant acme --service" + flags_).code, 0);

    auto created =
        cli("key create --tenant acme --user ci-bot --scopes completion --expires 30d --name build" + flags_);
    ASSERT_EQ(created.code, 0) << created.out;
    std::string key = created.last_line();
    ASSERT_EQ(key.rfind("cpk_", 0), 0u) << created.out; // the key alone on the last line
    EXPECT_EQ(cli("key create --tenant acme --user nobody" + flags_).code, 1);
    EXPECT_EQ(cli("key create --tenant acme --user ci-bot --scopes root" + flags_).code, 2);
    EXPECT_EQ(cli("key create --tenant acme --user ci-bot --expires soon" + flags_).code, 2);

    // A server on the same data dir (its own process-wide pool) sees the CLI's key...
    auto c = test_config();
    c.auth.enabled = true;
    c.data_dir = dir_.string();
    c.store.url = "";
    TestServer server(c);
    EXPECT_FALSE(server.app().bootstrap_key_file()); // users exist: no bootstrap
    EXPECT_FALSE(std::filesystem::exists(dir_ / "bootstrap-owner.key"));
    std::map<std::string, std::string> auth{{"Authorization", "Bearer " + key}};
    EXPECT_EQ(http(server.port(), "GET", "/v1/models", "", auth).status, 200);
    auto me = http(server.port(), "GET", "/auth/me", "", auth).json();
    EXPECT_EQ(me["username"], "ci-bot");
    EXPECT_EQ(me["scopes"], "completion");

    // ...lists it without its secret, and stops honouring it once the CLI revokes it.
    std::string prefix = key.substr(0, 12);
    auto listed = cli("key list --tenant acme" + flags_);
    ASSERT_EQ(listed.code, 0);
    EXPECT_NE(listed.out.find(prefix + "\tci-bot\tcompletion\tactive"), std::string::npos) << listed.out;
    EXPECT_EQ(listed.out.find(key), std::string::npos);
    auto revoked = cli("key revoke " + prefix + flags_);
    ASSERT_EQ(revoked.code, 0) << revoked.out;
    EXPECT_EQ(http(server.port(), "GET", "/v1/models", "", auth).status, 401);
    EXPECT_NE(cli("key list --tenant acme" + flags_).out.find("\trevoked\t"), std::string::npos);
    EXPECT_EQ(cli("key revoke cpk_nothere0" + flags_).code, 1);

    // The password set through the CLI signs in.
    auto login =
        post_json(server.port(), "/auth/login", {{"username", "dana"}, {"password", "dana-password-1"}});
    EXPECT_EQ(login.status, 200) << login.body;
}

// `codepilot guard policy`: a tenant's own rules and policy in the store, validated as the API
// validates them; `guard scan --tenant` then scans with them.
TEST_F(AdminCli, SetsShowsAndClearsATenantsGuardPolicyAndScansWithIt) {
    ASSERT_EQ(cli("tenant create acme" + flags_).code, 0);
    std::ofstream(dir_ / "acme-rules.toml") << "[[rule]]\nid = 'acme_token'\nregex = 'acme_[0-9a-f]{16}'\n"
                                               "keywords = ['acme_']\n";
    std::ofstream(dir_ / "bad-rules.toml") << "[[rule]]\nid = 'greedy'\nregex = '.*'\n";
    std::ofstream(dir_ / "deploy.sh") << "#!/bin/sh\nTOKEN=acme_0123456789abcdef ./run\n";
    const std::string rules = (dir_ / "acme-rules.toml").string(), file = (dir_ / "deploy.sh").string();

    auto bad = cli("guard policy set --tenant acme --rules " + (dir_ / "bad-rules.toml").string() + flags_);
    EXPECT_EQ(bad.code, 2) << bad.out;
    EXPECT_NE(bad.out.find("rule 'greedy': the regex matches the empty string"), std::string::npos)
        << bad.out;
    EXPECT_EQ(cli("guard policy set --tenant acme --prompts shred" + flags_).code, 2);
    EXPECT_EQ(cli("guard policy set --tenant nowhere --prompts block" + flags_).code, 1);

    // An unknown tenant is an error (2), never "found" (1).
    EXPECT_EQ(cli("guard scan --tenant nowhere " + file + flags_).code, 2);
    // Before: the built-in rules do not know Acme's tokens.
    EXPECT_EQ(cli("guard scan --tenant acme " + file + flags_).code, 0);
    auto set = cli("guard policy set --tenant acme --prompts block --deny 'project\\s+bluebird' --rules " +
                   rules + flags_);
    ASSERT_EQ(set.code, 0) << set.out;
    auto show = cli("guard policy show --tenant acme" + flags_);
    ASSERT_EQ(show.code, 0) << show.out;
    auto shown = nlohmann::json::parse(show.out);
    EXPECT_EQ(shown["effective"]["prompts"], "block");
    EXPECT_EQ(shown["effective"]["own_rules"], nlohmann::json::array({"acme_token"}));
    EXPECT_EQ(shown["effective"]["deny"], nlohmann::json::array({"project\\s+bluebird"}));
    EXPECT_EQ(shown["stored"]["rules"][0]["id"], "acme_token");
    // A later set changes only what it names.
    ASSERT_EQ(cli("guard policy set --tenant acme --pii true" + flags_).code, 0);
    shown = nlohmann::json::parse(cli("guard policy show --tenant acme" + flags_).out);
    EXPECT_EQ(shown["effective"]["pii"], true);
    EXPECT_EQ(shown["effective"]["prompts"], "block");

    auto scan = cli("guard scan --tenant acme " + file + flags_);
    EXPECT_EQ(scan.code, 1) << scan.out;
    EXPECT_NE(scan.out.find("deploy.sh:2:7: acme_token"), std::string::npos) << scan.out;
    EXPECT_EQ(scan.out.find("acme_0123456789abcdef"), std::string::npos) << "never the value";

    ASSERT_EQ(cli("guard policy clear --tenant acme" + flags_).code, 0);
    EXPECT_TRUE(
        nlohmann::json::parse(cli("guard policy show --tenant acme" + flags_).out)["stored"].is_null());
    EXPECT_EQ(cli("guard policy clear --tenant acme" + flags_).code, 1);
    EXPECT_EQ(cli("guard scan --tenant acme " + file + flags_).code, 0);
    // Each change is in the audit trail, and the chain holds.
    auto verify = cli("audit verify" + flags_);
    EXPECT_EQ(verify.code, 0) << verify.out;
}

TEST_F(AdminCli, CliChangesAreAuditedAndVerifyFindsTampering) {
    ASSERT_EQ(cli("tenant create acme" + flags_).code, 0);
    ASSERT_EQ(cli("user create ci-bot --tenant acme --service" + flags_).code, 0);
    auto key = cli("key create --tenant acme --user ci-bot" + flags_).last_line();
    ASSERT_EQ(cli("key revoke " + key.substr(0, 12) + flags_).code, 0);
    auto ok = cli("audit verify" + flags_);
    EXPECT_EQ(ok.code, 0) << ok.out;
    EXPECT_EQ(ok.last_line(), "audit chain intact: 4 records");

    auto exported = cli("audit export --from 2020-01-01" + flags_);
    ASSERT_EQ(exported.code, 0) << exported.out;
    std::istringstream lines(exported.out);
    std::string line;
    std::vector<nlohmann::json> records;
    while (std::getline(lines, line))
        if (!line.empty() && line[0] == '{') records.push_back(nlohmann::json::parse(line));
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(records[0]["action"], "tenant.create");
    EXPECT_EQ(records[0]["user"].get<std::string>().rfind("cli:", 0), 0u);
    EXPECT_EQ(records[2]["action"], "key.create");
    EXPECT_EQ(records[3]["action"], "key.revoke");
    EXPECT_EQ(exported.out.find(key), std::string::npos); // never the key itself
    EXPECT_EQ(cli("audit export --from yesterday" + flags_).code, 2);

    {
        auto db = store::open_database("sqlite://" + (dir_ / "codepilot.db").string(), 1);
        ASSERT_TRUE(db);
        ASSERT_TRUE(
            (*db)->query("UPDATE audit_log SET body = REPLACE(body, 'ci-bot', 'someone') WHERE seq = 3"));
    }
    auto broken = cli("audit verify" + flags_);
    EXPECT_EQ(broken.code, 1);
    EXPECT_EQ(broken.last_line().rfind(
                  "audit chain BROKEN at record 3: its content was changed (or chain key 'auto-", 0),
              0u)
        << broken.out; // the CLI's records are keyed too
}

// Someone who can write the database file rewrites history from row `from` on, re-linking
// every row (and the head) with `key`: plain SHA-256 when it has no id.
void rewrite_history(const std::filesystem::path& db_file, int64_t from, const store::ChainKey& key) {
    auto db = store::open_database("sqlite://" + db_file.string(), 1);
    ASSERT_TRUE(db);
    std::vector<store::AuditRow> rows;
    ASSERT_TRUE(store::AuditStore(**db).scan(0, 0, [&](const store::AuditRow& r) -> Status {
        rows.push_back(r);
        return Ok{};
    }));
    std::string prev = store::kAuditGenesis;
    for (auto& row : rows) {
        if (row.seq >= from) {
            if (row.seq == from) row.body.insert(1, "\"forged\":true,");
            row.hash = store::audit_link(prev, row.body, key);
            ASSERT_TRUE((*db)->query(
                "UPDATE audit_log SET body = ?, prev_hash = ?, hash = ?, key_id = ? WHERE seq = ?",
                {row.body, prev, row.hash, key.id, row.seq}));
        }
        prev = row.hash;
    }
    ASSERT_TRUE((*db)->query("UPDATE audit_head SET hash = ? WHERE id = 1", {prev}));
}

TEST_F(AdminCli, VerifyWithAnchorsCatchesAHistoryRewrittenWithRecomputedHashes) {
    ASSERT_EQ(cli("tenant create acme" + flags_).code, 0);
    ASSERT_EQ(cli("tenant create globex" + flags_).code, 0);
    // No key configured: one was generated beside the database, for the owner only.
    const auto key_file = dir_ / "audit-chain.key";
    ASSERT_TRUE(std::filesystem::exists(key_file));
    EXPECT_EQ(std::filesystem::status(key_file).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::ifstream in(key_file);
    std::stringstream text;
    text << in.rdbuf();
    auto ring = audit::parse_key_ring(text.str());
    ASSERT_TRUE(ring) << ring.error().message;
    const store::ChainKey real = audit::current_chain_key(*ring);

    { // a server on the same data dir anchors the head when it shuts down cleanly
        auto c = test_config();
        c.data_dir = dir_.string();
        c.store.url = "";
        TestServer server(c);
        EXPECT_EQ(http(server.port(), "GET", "/v1/models").status, 200);
    }
    const std::string anchors = (dir_ / "audit-anchors.jsonl").string();
    ASSERT_TRUE(std::filesystem::exists(anchors));
    auto ok = cli("audit verify --anchors " + anchors + flags_);
    ASSERT_EQ(ok.code, 0) << ok.out;
    EXPECT_NE(ok.last_line().find(", 1 anchors match"), std::string::npos) << ok.out;

    const auto db_file = dir_ / "codepilot.db";
    rewrite_history(db_file, 2, store::ChainKey{real.id, std::string(32, 'x')}); // without the key
    auto wrong_key = cli("audit verify" + flags_);
    EXPECT_EQ(wrong_key.code, 1);
    EXPECT_EQ(wrong_key.last_line(),
              "audit chain BROKEN at record 2: its content was changed (or chain key '" + real.id +
                  "' is not the key that linked it)");

    rewrite_history(db_file, 1, store::ChainKey{}); // every row re-linked with plain SHA-256
    auto plain = cli("audit verify" + flags_);
    EXPECT_EQ(plain.code, 0) << plain.out; // the chain alone cannot tell ...
    EXPECT_NE(plain.out.find("predate chain keys"), std::string::npos) << plain.out;
    auto plain_anchored = cli("audit verify --anchors " + anchors + flags_);
    EXPECT_EQ(plain_anchored.code, 1); // ... the anchor can
    EXPECT_NE(plain_anchored.last_line().find(": anchor " + anchors + ":1 says record "), std::string::npos)
        << plain_anchored.out;

    rewrite_history(db_file, 1, real); // even with the key itself
    EXPECT_EQ(cli("audit verify" + flags_).code, 0);
    auto keyed_anchored = cli("audit verify --anchors " + anchors + flags_);
    EXPECT_EQ(keyed_anchored.code, 1);
    EXPECT_NE(keyed_anchored.last_line().find("(history was rewritten)"), std::string::npos)
        << keyed_anchored.out;
}

// Client certificates from the CLI: bound by file, subject or SAN, listed, unbound; each audited.
TEST_F(AdminCli, BindsListsAndUnbindsClientCertificates) {
    ASSERT_EQ(cli("tenant create acme" + flags_).code, 0);
    ASSERT_EQ(cli("user create ci-bot --tenant acme --service" + flags_).code, 0);
    TestPki pki((dir_ / "pki").string());
    auto bot = pki.client("bot", "ci-bot", {"URI:spiffe://acme/ci"});
    auto bound = cli("cert bind --tenant acme --user ci-bot --cert-file " + bot.cert +
                     " --scopes completion" + flags_);
    ASSERT_EQ(bound.code, 0) << bound.out;
    EXPECT_NE(bound.out.find(certificate_fingerprint(bot.cert)), std::string::npos) << bound.out;
    EXPECT_EQ(cli("cert bind --tenant acme --user ci-bot --cert-file " + bot.cert + flags_).code,
              1); // bound already
    EXPECT_EQ(cli("cert bind --tenant acme --user ci-bot --san ftp:x" + flags_).code, 2);
    EXPECT_EQ(cli("cert bind --tenant acme --user ci-bot --subject CN=a --san DNS:a" + flags_).code, 2);
    EXPECT_EQ(cli("cert bind --tenant acme --user nobody --san DNS:a.example" + flags_).code, 1);
    ASSERT_EQ(cli("cert bind --tenant acme --user ci-bot --san URI:spiffe://acme/ci" + flags_).code, 0);
    auto list = cli("cert list --tenant acme" + flags_);
    ASSERT_EQ(list.code, 0);
    EXPECT_NE(list.out.find("URI:spiffe://acme/ci"), std::string::npos) << list.out;
    const std::string id = bound.out.substr(bound.out.rfind("binding ") + 8, 32);
    auto unbound = cli("cert unbind " + id + flags_);
    EXPECT_EQ(unbound.code, 0) << unbound.out;
    EXPECT_EQ(cli("cert unbind " + id + flags_).code, 1);
    auto exported = cli("audit export --from 2000-01-01" + flags_);
    EXPECT_NE(exported.out.find("certificate.bind"), std::string::npos);
    EXPECT_NE(exported.out.find("certificate.unbind"), std::string::npos);
}

TEST_F(AdminCli, ServeRefusesAuthOffOffLoopback) {
    auto r = cli("serve --auth off --host 0.0.0.0 --port 0 --model " + tiny_model() + flags_);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("only while the server listens on loopback"), std::string::npos) << r.out;
}

TEST_F(AdminCli, AWrongStoreUrlIsAClearError) {
    auto r = cli("tenant list --store mysql://db/x" + flags_);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("sqlite:// or postgresql://"), std::string::npos);
}

} // namespace
} // namespace codepilot::testenv
