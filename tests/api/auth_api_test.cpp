// Authentication and RBAC on the real server: every kind of credential, every refusal, the
// 404-not-403 rule between tenants, and the counters on /metrics.
#include "auth/access_rules.h"
#include "auth/credentials.h"
#include "auth/settings_json.h"
#include "support/auth_fixture.h"
#include "support/jwt_signer.h"
#include "support/ldap_config.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <unistd.h>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

class AuthApi : public AuthServerTest {};

TEST_F(AuthApi, TheBootstrapOwnerKeyWorksAndProbesArePublic) {
    EXPECT_EQ(http(port(), "GET", "/health").status, 200);
    EXPECT_EQ(http(port(), "GET", "/metrics").status, 200); // auth.metrics_public
    auto me = call("GET", "/auth/me", owner_key_);
    ASSERT_EQ(me.status, 200) << me.body;
    EXPECT_EQ(me.json()["username"], "owner");
    EXPECT_EQ(me.json()["server_owner"], true);
    EXPECT_EQ(me.json()["tenant"], "default");
    EXPECT_EQ(call("GET", "/v1/models", owner_key_).status, 200);
}

TEST_F(AuthApi, MissingAndMalformedCredentialsGet401) {
    auto none = http(port(), "GET", "/v1/models");
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(none.header("www-authenticate"), "Bearer realm=\"codepilot\"");
    EXPECT_EQ(none.json()["error"]["type"], "authentication_error");
    EXPECT_NE(none.json()["error"]["message"].get<std::string>().find("Authorization: Bearer"),
              std::string::npos);
    for (const std::string& header : std::vector<std::string>{
             "Basic b3duZXI6cHc=", "Bearer", "Bearer ", "Token " + owner_key_, "Bearer a b",
             "Bearer " + owner_key_ + "x", "Bearer cpk_AAAAAAAA_" + std::string(40, 'A'), owner_key_}) {
        auto r = http(port(), "GET", "/v1/models", "", {{"Authorization", header}});
        EXPECT_EQ(r.status, 401) << header;
        EXPECT_EQ(r.json()["error"]["message"], "invalid credentials") << header;
    }
    EXPECT_EQ(http(port(), "GET", "/v1/models", "", {{"Authorization", "bearer " + owner_key_}}).status, 200);
}

TEST_F(AuthApi, RevokedAndExpiredKeysStopAtTheirNextRequest) {
    member("acme", "dev", "developer");
    std::string k = key("acme", "dev");
    ASSERT_EQ(call("GET", "/v1/models", k).status, 200);
    auto prefix = *auth::api_key_prefix(k);
    ASSERT_TRUE(ids().revoke_key((*ids().find_key_by_prefix(prefix))->id));
    EXPECT_EQ(call("GET", "/v1/models", k).status, 401);

    std::string short_lived = key("acme", "dev", "completion", 1);
    std::vector<store::Value> params{ids().now() - 1, *auth::api_key_prefix(short_lived)};
    ASSERT_TRUE(ids().database().execute("UPDATE api_keys SET expires_at = ? WHERE prefix = ?", params));
    auto expired = call("GET", "/v1/models", short_lived);
    EXPECT_EQ(expired.status, 401);
    EXPECT_EQ(expired.json()["error"]["message"], "invalid credentials");
}

TEST_F(AuthApi, ScopesAndRolesLimitInference) {
    member("acme", "dev", "developer");
    member("acme", "audrey", "auditor");
    std::string completion_only = key("acme", "dev", "completion");
    auto chat = call("POST", "/v1/chat/completions", completion_only,
                     {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}, {"max_tokens", 1}});
    EXPECT_EQ(chat.status, 403);
    EXPECT_EQ(chat.json()["error"]["type"], "permission_error");
    EXPECT_NE(chat.json()["error"]["message"].get<std::string>().find("scopes (completion)"),
              std::string::npos);
    auto done = call("POST", "/v1/completions", completion_only, {{"prompt", "x"}, {"max_tokens", 1}});
    EXPECT_EQ(done.status, 200) << done.body;

    std::string auditor = key("acme", "audrey");
    auto refused = call("POST", "/v1/completions", auditor, {{"prompt", "x"}, {"max_tokens", 1}});
    EXPECT_EQ(refused.status, 403);
    EXPECT_NE(refused.json()["error"]["message"].get<std::string>().find("role 'auditor'"),
              std::string::npos);
    EXPECT_EQ(call("GET", "/v1/models", auditor).status, 403); // auditors read audit and usage, nothing else
}

TEST_F(AuthApi, AnotherTenantsResourcesAreNotFoundNotForbidden) {
    member("acme", "ann", "admin");
    member("globex", "gus", "admin");
    std::string acme_admin = key("acme", "ann");
    std::string globex_key = key("globex", "gus");
    EXPECT_EQ(call("GET", "/admin/v1/tenants/acme/members", acme_admin).status, 200);
    auto probe = call("GET", "/admin/v1/tenants/globex/members", acme_admin);
    EXPECT_EQ(probe.status, 404);
    EXPECT_EQ(probe.json()["error"]["message"], "tenant 'globex' not found");
    auto missing = call("GET", "/admin/v1/tenants/no-such-tenant/members", acme_admin);
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(missing.json()["error"]["message"], "tenant 'no-such-tenant' not found"); // indistinguishable
    // Revoking globex's key through acme's path: not found, and the key still works.
    auto prefix = *auth::api_key_prefix(globex_key);
    EXPECT_EQ(call("DELETE", "/admin/v1/tenants/acme/keys/" + prefix, acme_admin).status, 404);
    EXPECT_EQ(call("GET", "/v1/models", globex_key).status, 200);
    // Tenant listings show only one's own.
    auto listed = call("GET", "/admin/v1/tenants", acme_admin).json()["data"];
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0]["name"], "acme");
}

TEST_F(AuthApi, ARoleTryingAnAdminRouteIsForbidden) {
    member("acme", "dev", "developer");
    member("acme", "vic", "viewer");
    auto r = call("POST", "/admin/v1/tenants/acme/members", key("acme", "dev"),
                  {{"username", "x"}, {"role", "developer"}});
    EXPECT_EQ(r.status, 403);
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find(
                  "'members.write' is not granted to role 'developer'"),
              std::string::npos);
    EXPECT_EQ(call("POST", "/admin/v1/tenants", key("acme", "vic"), {{"name", "mine"}}).status, 403);
    EXPECT_EQ(call("GET", "/admin/v1/settings/ldap", key("acme", "dev")).status, 403);
}

TEST_F(AuthApi, PasswordSignInGivesASessionThatSignOutEnds) {
    member("acme", "pat", "developer", "pat-password-123");
    auto login = post_json(port(), "/auth/login", {{"username", "pat"}, {"password", "pat-password-123"}});
    ASSERT_EQ(login.status, 200) << login.body;
    std::string token = login.json()["token"];
    EXPECT_EQ(token.rfind("cps_", 0), 0u);
    EXPECT_EQ(login.json()["tenant"], "acme");
    EXPECT_EQ(login.json()["role"], "developer");
    auto me = call("GET", "/auth/me", token);
    ASSERT_EQ(me.status, 200);
    EXPECT_EQ(me.json()["method"], "session");
    EXPECT_EQ(call("GET", "/v1/models", token).status, 200);
    EXPECT_EQ(call("POST", "/auth/logout", token).status, 200);
    EXPECT_EQ(call("GET", "/v1/models", token).status, 401);
    // The session token is stored only as a digest.
    auto rows = ids().database().query("SELECT secret_hash FROM sessions");
    ASSERT_TRUE(rows);
    for (const auto& r : *rows) EXPECT_EQ(r.text(0).find(token), std::string::npos);
}

TEST_F(AuthApi, SignInFailuresAllSayOnlyInvalidCredentials) {
    auto pat = member("acme", "pat", "developer", "pat-password-123");
    member("acme", "dis", "developer", "dis-password-123");
    auto disabled = *ids().find_user("dis");
    disabled->disabled = true;
    ASSERT_TRUE(ids().update_user(*disabled));
    std::set<std::string> bodies;
    for (auto [user, pass] : {std::pair{"pat", "wrong-password"}, std::pair{"nobody", "pat-password-123"},
                              std::pair{"dis", "dis-password-123"}}) {
        auto r = post_json(port(), "/auth/login", {{"username", user}, {"password", pass}});
        EXPECT_EQ(r.status, 401) << user;
        bodies.insert(r.json()["error"].dump());
    }
    EXPECT_EQ(bodies.size(), 1u); // identical answers: nothing says which part was wrong
    EXPECT_EQ(json::parse(*bodies.begin())["message"], "invalid credentials");
    auto missing = post_json(port(), "/auth/login", {{"username", "pat"}});
    EXPECT_EQ(missing.status, 400);
    EXPECT_EQ(missing.json()["error"]["param"], "password");
    auto bad_tenant = post_json(
        port(), "/auth/login", {{"username", "pat"}, {"password", "pat-password-123"}, {"tenant", "globex"}});
    EXPECT_EQ(bad_tenant.status, 404);
    (void)pat;
}

TEST_F(AuthApi, DisablingAUserStopsTheirKeys) {
    member("acme", "dev", "developer");
    std::string k = key("acme", "dev");
    ASSERT_EQ(call("GET", "/v1/models", k).status, 200);
    auto r = call("PATCH", "/admin/v1/users/dev", owner_key_, {{"disabled", true}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(call("GET", "/v1/models", k).status, 401);
}

TEST_F(AuthApi, EveryRegisteredRouteHasAnAccessRule) {
    for (const auto& [method, pattern] : app().routes())
        EXPECT_NE(auth::find_route_rule(method, pattern), nullptr) << method << " " << pattern;
    for (const auto& rule : auth::route_rules()) {
        bool registered = false;
        for (const auto& [method, pattern] : app().routes())
            registered |= method == rule.method && pattern == rule.pattern;
        EXPECT_TRUE(registered) << "stale rule " << rule.method << " " << rule.pattern;
    }
}

TEST_F(AuthApi, DecisionsAreCountedWithoutNames) {
    member("acme", "quinzel", "developer", "dev-password-123");
    call("GET", "/v1/models", owner_key_);
    call("GET", "/v1/models", "cpk_AAAAAAAA_" + std::string(40, 'A'));
    post_json(port(), "/auth/login", {{"username", "quinzel"}, {"password", "nope-nope-nope"}});
    call("POST", "/admin/v1/tenants/acme/members", key("acme", "quinzel"),
         {{"username", "x"}, {"role", "viewer"}});
    auto metrics = http(port(), "GET", "/metrics").body;
    EXPECT_NE(metrics.find(R"(codepilot_auth_attempts_total{method="api_key",result="success"})"),
              std::string::npos);
    EXPECT_NE(metrics.find(R"(codepilot_auth_attempts_total{method="api_key",result="failure"} 1)"),
              std::string::npos);
    EXPECT_NE(metrics.find(R"(codepilot_auth_attempts_total{method="password",result="failure"} 1)"),
              std::string::npos);
    EXPECT_NE(metrics.find(R"(codepilot_authz_denied_total{reason="role"} 1)"), std::string::npos);
    EXPECT_EQ(metrics.find("quinzel"), std::string::npos);
    EXPECT_EQ(metrics.find("acme"), std::string::npos);
}

TEST(AuthOff, IsRefusedUnlessTheServerListensOnLoopback) {
    auto c = test_config();
    c.auth.enabled = false;
    c.server.host = "0.0.0.0";
    auto app = app::Application::create(c);
    ASSERT_FALSE(app);
    EXPECT_NE(app.error().message.find("loopback"), std::string::npos);
    c.server.host = "127.0.0.1";
    TestServer local(c);
    EXPECT_EQ(http(local.port(), "GET", "/v1/models").status, 200); // no credentials needed
}

// LDAP sign-in through the API, and what happens when the directory goes away.
class LdapAuthApi : public AuthServerTest {
    void configure(config::Config& c) override { c.auth.ldap = test_ldap_config(); }
};

TEST_F(LdapAuthApi, DirectoryUsersAreProvisionedWithMappedRoles) {
    auto login = post_json(port(), "/auth/login",
                           {{"username", "alice"}, {"password", "alice-pass"}, {"tenant", "platform"}});
    ASSERT_EQ(login.status, 200) << login.body;
    EXPECT_EQ(login.json()["role"], "admin");
    std::string token = login.json()["token"];
    auto me = call("GET", "/auth/me", token).json();
    EXPECT_EQ(me["memberships"].size(), 2u); // platform (admin) and payments (developer)
    auto user = ids().find_user("alice");
    ASSERT_TRUE(user && *user);
    EXPECT_EQ((*user)->source, "ldap");
    EXPECT_EQ((*user)->email, "alice@codepilot.test");
    // An admin of platform manages it; payments only as a developer.
    EXPECT_EQ(call("GET", "/admin/v1/tenants/platform/members", token).status, 200);
    EXPECT_EQ(
        call("POST", "/admin/v1/tenants/payments/members", token, {{"username", "x"}, {"role", "viewer"}})
            .status,
        403);
    // Injection names are invalid credentials, not a match-all.
    auto injected = post_json(port(), "/auth/login", {{"username", "*)(uid=*"}, {"password", "alice-pass"}});
    EXPECT_EQ(injected.status, 401);
    EXPECT_EQ(injected.json()["error"]["message"], "invalid credentials");
}

TEST_F(LdapAuthApi, DirectoryDownMeans503ForSignInWhileKeysKeepWorking) {
    member("acme", "dev", "developer");
    std::string k = key("acme", "dev");
    auto down = app().authenticator().ldap_settings();
    down.url = "ldap://127.0.0.1:1";
    down.timeout_ms = 300;
    app().authenticator().set_ldap(down);
    auto r = post_json(port(), "/auth/login", {{"username", "alice"}, {"password", "alice-pass"}});
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.header("retry-after"), "1");
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("API keys keep working"),
              std::string::npos);
    EXPECT_EQ(call("GET", "/v1/models", k).status, 200);
}

// The entry is the account: "Alice " is alice, and a disabled alice stays out however typed.
TEST_F(LdapAuthApi, TheDirectoryEntryIsTheAccountWhateverTheSpelling) {
    auto first = post_json(port(), "/auth/login", {{"username", "alice"}, {"password", "alice-pass"}});
    ASSERT_EQ(first.status, 200) << first.body;
    auto again = post_json(port(), "/auth/login", {{"username", " Alice"}, {"password", "alice-pass"}});
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.json()["user"]["username"], "alice");
    auto rows = ids().database().query("SELECT COUNT(*) FROM users WHERE source = 'ldap'");
    ASSERT_TRUE(rows);
    EXPECT_EQ((*rows)[0].integer(0), 1);
    auto alice = *ids().find_user("alice");
    ASSERT_TRUE(alice);
    EXPECT_EQ(alice->external_id.value_or("").rfind("uuid:", 0), 0u)
        << alice->external_id.value_or(""); // entryUUID
    alice->disabled = true;
    ASSERT_TRUE(ids().update_user(*alice));
    for (const char* name : {"alice", "Alice", "ALICE "})
        EXPECT_EQ(post_json(port(), "/auth/login", {{"username", name}, {"password", "alice-pass"}}).status,
                  401)
            << name;
}

// OIDC bearer tokens through the API.
class OidcAuthApi : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        jwks_ =
            std::filesystem::temp_directory_path() / ("cp-api-jwks-" + std::to_string(::getpid()) + ".json");
        std::ofstream(jwks_) << jwks_of({&signer_}).dump();
        c.auth.oidc.enabled = true;
        c.auth.oidc.issuer = "https://idp.test";
        c.auth.oidc.audience = "codepilot";
        c.auth.oidc.jwks_file = jwks_.string();
    }
    void TearDown() override {
        AuthServerTest::TearDown();
        std::filesystem::remove(jwks_);
    }
    json claims(const std::string& tenant, const std::string& role) {
        int64_t now = std::time(nullptr);
        return {{"iss", "https://idp.test"},
                {"aud", "codepilot"},
                {"sub", "sub-7"},
                {"preferred_username", "erin"},
                {"tenant", tenant},
                {"role", role},
                {"exp", now + 600},
                {"iat", now}};
    }
    std::filesystem::path jwks_;
    static inline JwtSigner signer_{JwtSigner::Kind::ec, "api-ec"};
};

TEST_F(OidcAuthApi, TokensMapClaimsToUserTenantAndRole) {
    tenant("acme");
    std::string dev = signer_.sign(claims("acme", "developer"));
    auto me = call("GET", "/auth/me", dev);
    ASSERT_EQ(me.status, 200) << me.body;
    EXPECT_EQ(me.json()["method"], "jwt");
    EXPECT_EQ(me.json()["username"], "erin");
    EXPECT_EQ(me.json()["role"], "developer");
    EXPECT_EQ(call("GET", "/v1/models", dev).status, 200);
    EXPECT_EQ(
        call("POST", "/admin/v1/tenants/acme/members", dev, {{"username", "x"}, {"role", "viewer"}}).status,
        403);
    std::string admin = signer_.sign(claims("acme", "admin"));
    EXPECT_EQ(call("GET", "/admin/v1/tenants/acme/members", admin).status, 200);
    EXPECT_EQ((*ids().find_user("erin"))->source, "oidc");
}

TEST_F(OidcAuthApi, BadTokensAreInvalidCredentials) {
    tenant("acme");
    json expired = claims("acme", "developer");
    expired["exp"] = std::time(nullptr) - 3600;
    json wrong_aud = claims("acme", "developer");
    wrong_aud["aud"] = "other";
    for (const auto& token :
         {signer_.sign(expired), signer_.sign(wrong_aud), signer_.sign(claims("nowhere", "developer")),
          unsigned_token(claims("acme", "developer")), signer_.sign(claims("acme", "emperor"))}) {
        auto r = call("GET", "/v1/models", token);
        EXPECT_EQ(r.status, 401) << token;
        EXPECT_EQ(r.json()["error"]["message"], "invalid credentials");
    }
}

// The issuer's subject is the account; the name claim, which users can often edit, is not.
TEST_F(OidcAuthApi, TheSubjectIsTheAccountNotTheEditableName) {
    tenant("acme");
    auto erin = call("GET", "/auth/me", signer_.sign(claims("acme", "developer")));
    ASSERT_EQ(erin.status, 200) << erin.body;
    auto renamed = claims("acme", "developer");
    renamed["preferred_username"] = "mallory";
    auto same = call("GET", "/auth/me", signer_.sign(renamed));
    ASSERT_EQ(same.status, 200) << same.body;
    EXPECT_EQ(same.json()["username"], "erin"); // still erin's account, under erin's name
    auto impostor = claims("acme", "developer");
    impostor["sub"] = "sub-8"; // someone else who named themselves erin
    EXPECT_EQ(call("GET", "/auth/me", signer_.sign(impostor)).status, 401);
}

} // namespace
} // namespace codepilot::testenv
