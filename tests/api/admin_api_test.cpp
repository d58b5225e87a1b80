// The admin REST surface: tenants, members, keys and settings, with the finer rules a
// product needs (keys shown once, only owners make owners, the last owner stays).
#include "auth/settings_json.h"
#include "core/private_files.h"
#include "store/store.h"
#include "support/auth_fixture.h"
#include "support/log_capture.h"

#include <fstream>
#include <gtest/gtest.h>
#include <sstream>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

class AdminApi : public AuthServerTest {};

TEST_F(AdminApi, OwnerCreatesTenantsWithValidNames) {
    auto created = call("POST", "/admin/v1/tenants", owner_key_, {{"name", "acme"}});
    ASSERT_EQ(created.status, 201) << created.body;
    EXPECT_EQ(created.json()["name"], "acme");
    auto dup = call("POST", "/admin/v1/tenants", owner_key_, {{"name", "acme"}});
    EXPECT_EQ(dup.status, 400);
    EXPECT_EQ(dup.json()["error"]["message"], "tenant 'acme' already exists");
    auto bad = call("POST", "/admin/v1/tenants", owner_key_, {{"name", "Bad Name!"}});
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(bad.json()["error"]["param"], "name");
    EXPECT_EQ(call("POST", "/admin/v1/tenants", owner_key_, json::array()).status, 400);
    EXPECT_EQ(call("POST", "/admin/v1/tenants", owner_key_, {{"name", 7}}).status, 400);
    auto listed = call("GET", "/admin/v1/tenants", owner_key_).json()["data"];
    EXPECT_EQ(listed.size(), 2u); // default and acme
}

TEST_F(AdminApi, MembersKeysAndSignInEndToEnd) {
    tenant("acme");
    auto added = call(
        "POST", "/admin/v1/tenants/acme/members", owner_key_,
        {{"username", "dora"}, {"role", "developer"}, {"password", "dora-password-1"}, {"email", "d@x"}});
    ASSERT_EQ(added.status, 201) << added.body;
    EXPECT_EQ(added.json()["created_user"], true);
    EXPECT_EQ(added.json().contains("password_hash"), false);
    auto weak = call("POST", "/admin/v1/tenants/acme/members", owner_key_,
                     {{"username", "weak"}, {"role", "developer"}, {"password", "short"}});
    EXPECT_EQ(weak.status, 400);
    EXPECT_EQ(weak.json()["error"]["param"], "password");
    EXPECT_EQ(call("POST", "/admin/v1/tenants/acme/members", owner_key_, {{"username", "x"}, {"role", "god"}})
                  .status,
              400);

    std::string session =
        post_json(port(), "/auth/login", {{"username", "dora"}, {"password", "dora-password-1"}})
            .json()["token"];
    auto created = call("POST", "/admin/v1/tenants/acme/keys", session,
                        {{"scopes", json::array({"completion"})}, {"expires_in", "30d"}, {"name", "laptop"}});
    ASSERT_EQ(created.status, 201) << created.body;
    std::string plaintext = created.json()["key"];
    EXPECT_EQ(created.json()["scopes"], "completion");
    EXPECT_EQ(created.json()["state"], "active");
    EXPECT_GT(created.json()["expires_at"].get<int64_t>(), std::time(nullptr) + 29 * 86400);
    EXPECT_EQ(call("GET", "/v1/models", plaintext).status, 200);
    // Listings never show the key again.
    auto listed = call("GET", "/admin/v1/tenants/acme/keys", owner_key_);
    ASSERT_EQ(listed.status, 200);
    EXPECT_EQ(listed.body.find(plaintext.substr(13)), std::string::npos);
    EXPECT_EQ(listed.json()["data"][0]["prefix"], created.json()["prefix"]);
    // A developer creates keys only for themselves.
    auto for_other =
        call("POST", "/admin/v1/tenants/acme/keys", session, {{"user", "owner"}, {"scopes", "completion"}});
    EXPECT_EQ(for_other.status, 403);
    auto bad_scope = call("POST", "/admin/v1/tenants/acme/keys", session, {{"scopes", "completion,root"}});
    EXPECT_EQ(bad_scope.status, 400);
    EXPECT_NE(bad_scope.json()["error"]["message"].get<std::string>().find("'root'"), std::string::npos);
    EXPECT_EQ(
        call("POST", "/admin/v1/tenants/acme/keys", session, {{"scopes", "chat"}, {"expires_in", "-3d"}})
            .status,
        400);
    // A completion-only key cannot mint a chat key.
    auto escalate = call("POST", "/admin/v1/tenants/acme/keys", plaintext, {{"scopes", "chat"}});
    EXPECT_EQ(escalate.status, 403);
    // Revoking one's own key works; it stops at once.
    std::string prefix = created.json()["prefix"];
    auto revoked = call("DELETE", "/admin/v1/tenants/acme/keys/" + prefix, session);
    ASSERT_EQ(revoked.status, 200) << revoked.body;
    EXPECT_EQ(revoked.json()["state"], "revoked");
    EXPECT_EQ(call("GET", "/v1/models", plaintext).status, 401);
}

TEST_F(AdminApi, ServiceAccountsGetKeysButNoPassword) {
    tenant("ci");
    auto bot = call("POST", "/admin/v1/tenants/ci/members", owner_key_,
                    {{"username", "ci-bot"}, {"role", "developer"}, {"kind", "service"}});
    ASSERT_EQ(bot.status, 201) << bot.body;
    EXPECT_EQ(bot.json()["kind"], "service");
    auto with_pw = call("POST", "/admin/v1/tenants/ci/members", owner_key_,
                        {{"username", "ci-bot2"},
                         {"role", "developer"},
                         {"kind", "service"},
                         {"password", "a-long-password"}});
    EXPECT_EQ(with_pw.status, 400);
    auto k =
        call("POST", "/admin/v1/tenants/ci/keys", owner_key_, {{"user", "ci-bot"}, {"scopes", "completion"}});
    ASSERT_EQ(k.status, 201) << k.body;
    EXPECT_EQ(call("GET", "/v1/models", k.json()["key"].get<std::string>()).status, 200);
    EXPECT_EQ(
        post_json(port(), "/auth/login", {{"username", "ci-bot"}, {"password", "anything-at-all"}}).status,
        401);
}

TEST_F(AdminApi, OnlyOwnersMakeOwnersAndTheLastOwnerStays) {
    member("acme", "olga", "owner");
    member("acme", "adam", "admin");
    member("acme", "dev", "developer");
    std::string admin = key("acme", "adam");
    std::string owner = key("acme", "olga");
    auto promote = call("PUT", "/admin/v1/tenants/acme/members/dev", admin, {{"role", "owner"}});
    EXPECT_EQ(promote.status, 403);
    EXPECT_EQ(call("DELETE", "/admin/v1/tenants/acme/members/olga", admin).status, 403);
    auto demote_self = call("PUT", "/admin/v1/tenants/acme/members/olga", owner, {{"role", "admin"}});
    EXPECT_EQ(demote_self.status, 400);
    EXPECT_NE(demote_self.json()["error"]["message"].get<std::string>().find("at least one owner"),
              std::string::npos);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/members/dev", owner, {{"role", "owner"}}).status, 200);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/members/olga", owner, {{"role", "admin"}}).status, 200);
    EXPECT_EQ(call("PUT", "/admin/v1/tenants/acme/members/nobody", owner, {{"role", "admin"}}).status, 404);
    // The new owner removes an admin.
    EXPECT_EQ(call("DELETE", "/admin/v1/tenants/acme/members/adam", key("acme", "dev")).status, 200);
    auto members = call("GET", "/admin/v1/tenants/acme/members", owner_key_).json()["data"];
    EXPECT_EQ(members.size(), 2u);
}

TEST_F(AdminApi, LdapSettingsNameTheServicePasswordAndNeverHoldIt) {
    const json base = {
        {"enabled", true},
        {"url", "ldaps://127.0.0.1:1"},
        {"base_dn", "dc=x"},
        {"bind_dn", "cn=svc,dc=x"},
        {"group_map", json::array({{{"group", "cn=g,dc=x"}, {"tenant", "t"}, {"role", "viewer"}}})}};
    // A literal password is refused by name, with what to use instead.
    json literal = base;
    literal["bind_password"] = "s3cret-pw";
    auto refused = call("PUT", "/admin/v1/settings/ldap", owner_key_, literal);
    ASSERT_EQ(refused.status, 400) << refused.body;
    EXPECT_EQ(refused.json()["error"]["param"], "bind_password");
    const std::string why = refused.json()["error"]["message"];
    EXPECT_NE(why.find("bind_password_file"), std::string::npos) << why;
    EXPECT_NE(why.find("bind_password_env"), std::string::npos) << why;
    EXPECT_EQ(refused.body.find("s3cret-pw"), std::string::npos);
    // So is a bind DN without any reference, and a reference that cannot be read.
    auto none = call("PUT", "/admin/v1/settings/ldap", owner_key_, base);
    EXPECT_EQ(none.status, 400) << none.body;
    EXPECT_EQ(none.json()["error"]["param"], "bind_password_file");
    json missing = base;
    missing["bind_password_file"] = (data_dir_ / "no-such-file").string();
    auto unreadable = call("PUT", "/admin/v1/settings/ldap", owner_key_, missing);
    EXPECT_EQ(unreadable.status, 400) << unreadable.body;
    EXPECT_EQ(unreadable.json()["error"]["param"], "bind_password_file");
    json unset = base;
    ::unsetenv("CODEPILOT_TEST_NO_SUCH_VARIABLE");
    unset["bind_password_env"] = "CODEPILOT_TEST_NO_SUCH_VARIABLE";
    auto unset_reply = call("PUT", "/admin/v1/settings/ldap", owner_key_, unset);
    EXPECT_EQ(unset_reply.status, 400) << unset_reply.body;
    EXPECT_EQ(unset_reply.json()["error"]["param"], "bind_password_env");

    const std::string secret_file = (data_dir_ / "ldap-bind").string();
    ASSERT_TRUE(write_private_file(secret_file, "s3cret-pw\n"));
    json by_file = base;
    by_file["bind_password_file"] = secret_file;
    auto put = call("PUT", "/admin/v1/settings/ldap", owner_key_, by_file);
    ASSERT_EQ(put.status, 200) << put.body;
    EXPECT_EQ(put.json()["bind_password_file"], secret_file);
    EXPECT_FALSE(put.json().contains("bind_password"));
    auto got = call("GET", "/admin/v1/settings/ldap", owner_key_);
    EXPECT_EQ(got.json()["bind_password_file"], secret_file);
    EXPECT_EQ(got.body.find("s3cret-pw"), std::string::npos);
    EXPECT_EQ(app().authenticator().ldap_settings().bind_password_file, secret_file);
    ASSERT_EQ(call("PUT", "/admin/v1/settings/ldap", owner_key_, {{"timeout_ms", 900}}).status, 200);
    EXPECT_EQ(app().authenticator().ldap_settings().bind_password_file, secret_file);
    EXPECT_EQ(app().authenticator().ldap_settings().timeout_ms, 900);
    auto stored = ids().get_setting("ldap");
    ASSERT_TRUE(stored && *stored);
    EXPECT_NE((*stored)->find("\"timeout_ms\":900"), std::string::npos);
    EXPECT_EQ((*stored)->find("s3cret-pw"), std::string::npos);
    EXPECT_FALSE(json::parse(**stored).contains("bind_password"));
}

TEST_F(AdminApi, LdapAndOidcSettingsAreValidated) {
    auto unknown = call("PUT", "/admin/v1/settings/ldap", owner_key_, {{"urll", "ldap://x"}});
    EXPECT_EQ(unknown.status, 400);
    EXPECT_EQ(unknown.json()["error"]["param"], "urll");
    auto bad_filter =
        call("PUT", "/admin/v1/settings/ldap", owner_key_,
             {{"enabled", true}, {"url", "ldaps://x"}, {"base_dn", "dc=x"}, {"user_filter", "(uid=alice)"}});
    EXPECT_EQ(bad_filter.status, 400);
    EXPECT_NE(bad_filter.body.find("{username}"), std::string::npos) << bad_filter.body;
    auto bad_alg = call("PUT", "/admin/v1/settings/oidc", owner_key_,
                        {{"enabled", true},
                         {"issuer", "i"},
                         {"audience", "a"},
                         {"jwks_file", "/x"},
                         {"algorithms", {"HS256"}}});
    EXPECT_EQ(bad_alg.status, 400);
    EXPECT_NE(bad_alg.json()["error"]["message"].get<std::string>().find("HS256"), std::string::npos);
    EXPECT_EQ(call("GET", "/admin/v1/settings/smtp", owner_key_).status, 404);
}

// The transport opt-outs belong to the config file: a settings change cannot downgrade LDAP or
// the JWKS to plain text.
TEST_F(AdminApi, SettingsCannotTurnOffTransportSecurity) {
    const json ldap = {{"enabled", true}, {"url", "ldap://dir.corp:389"}, {"base_dn", "dc=x"}};
    auto plain = call("PUT", "/admin/v1/settings/ldap", owner_key_, ldap);
    EXPECT_EQ(plain.status, 400);
    EXPECT_NE(plain.json()["error"]["message"].get<std::string>().find("auth.ldap.url"), std::string::npos)
        << plain.body;
    json opted_out = ldap;
    opted_out["allow_insecure"] = true;
    auto refused = call("PUT", "/admin/v1/settings/ldap", owner_key_, opted_out);
    EXPECT_EQ(refused.status, 400);
    EXPECT_EQ(refused.json()["error"]["param"], "allow_insecure");
    EXPECT_NE(refused.json()["error"]["message"].get<std::string>().find("only in the config file"),
              std::string::npos)
        << refused.body;
    json unchecked = {
        {"enabled", true}, {"url", "ldaps://dir.corp"}, {"base_dn", "dc=x"}, {"tls_verify", false}};
    EXPECT_EQ(call("PUT", "/admin/v1/settings/ldap", owner_key_, unchecked).status, 400);
    const json oidc = {
        {"enabled", true}, {"issuer", "i"}, {"audience", "a"}, {"jwks_url", "http://idp/jwks"}};
    auto http_jwks = call("PUT", "/admin/v1/settings/oidc", owner_key_, oidc);
    EXPECT_EQ(http_jwks.status, 400);
    EXPECT_NE(http_jwks.json()["error"]["message"].get<std::string>().find("auth.oidc.jwks_url"),
              std::string::npos)
        << http_jwks.body;
    json oidc_opted_out = oidc;
    oidc_opted_out["allow_insecure"] = true;
    EXPECT_EQ(call("PUT", "/admin/v1/settings/oidc", owner_key_, oidc_opted_out).json()["error"]["param"],
              "allow_insecure");
    EXPECT_FALSE(call("GET", "/admin/v1/settings/ldap", owner_key_).json().contains("allow_insecure"));
}

// A settings row from an older version, with the service password in clear.
class AdminApiOldLdapRow : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        log_ = std::make_unique<LogCapture>();
        ASSERT_TRUE(make_private_dir(c.data_dir));
        auto db = store::open_and_migrate(config::store_url(c), 1);
        ASSERT_TRUE(db) << db.error().message;
        store::IdentityStore ids(**db);
        json old = auth::ldap_to_json(config::LdapConfig{});
        old["enabled"] = false;
        old["url"] = "ldap://directory.corp:389";
        old["bind_dn"] = "cn=svc,dc=corp";
        old["bind_password"] = "old-cleartext-secret";
        ASSERT_TRUE(ids.put_setting("ldap", old.dump(), "dana"));
    }
    std::unique_ptr<LogCapture> log_;
};

TEST_F(AdminApiOldLdapRow, IsScrubbedOfThePasswordAtStartAndTheRestKept) {
    EXPECT_EQ(log_->count("held the service account's password in clear"), 1) << log_->text();
    EXPECT_EQ(log_->text().find("old-cleartext-secret"), std::string::npos);
    auto stored = ids().get_setting("ldap");
    ASSERT_TRUE(stored && *stored);
    EXPECT_EQ((*stored)->find("old-cleartext-secret"), std::string::npos) << **stored;
    EXPECT_FALSE(json::parse(**stored).contains("bind_password"));
    EXPECT_EQ(app().authenticator().ldap_settings().url, "ldap://directory.corp:389");
    EXPECT_EQ(call("GET", "/admin/v1/settings/ldap", owner_key_).json()["bind_dn"], "cn=svc,dc=corp");

    // Not in the file either: the old row's bytes are zeroed, not just unlinked (secure_delete).
    server_.reset();
    std::ifstream in(data_dir_ / "codepilot.db", std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_GT(bytes.str().size(), 0u);
    EXPECT_EQ(bytes.str().find("old-cleartext-secret"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(data_dir_ / "codepilot.db-wal"));
}

TEST_F(AdminApi, TheBootstrapKeyIsInA0600FileAndExpires) {
    auto path = data_dir_ / "bootstrap-owner.key";
    ASSERT_EQ(*app().bootstrap_key_file(), path.string());
    EXPECT_EQ(permission_bits(path.string()), kPrivateFileMode);
    auto record = ids().find_key_by_prefix(owner_key_.substr(0, 12));
    ASSERT_TRUE(record && *record);
    ASSERT_TRUE((*record)->expires_at);
    EXPECT_EQ(*(*record)->expires_at - (*record)->created_at, 7 * 86400);
    EXPECT_EQ(call("GET", "/auth/me", owner_key_).status, 200);
}

TEST_F(AdminApi, RolesAreListed) {
    auto roles = call("GET", "/admin/v1/roles", owner_key_);
    ASSERT_EQ(roles.status, 200);
    EXPECT_EQ(roles.json()["roles"].size(), 5u);
    EXPECT_EQ(roles.json()["roles"][3]["name"], "auditor");
    EXPECT_EQ(roles.json()["roles"][3]["permissions"], json::array({"audit.read", "usage.read"}));
}

} // namespace
} // namespace codepilot::testenv
