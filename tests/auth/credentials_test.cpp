// Pure auth logic: token shapes, digests, passwords, filter escaping, durations, RBAC tables.
#include "auth/access_rules.h"
#include "auth/auth.h"
#include "auth/credentials.h"
#include "auth/ldap_directory.h"
#include "auth/password.h"

#include <gtest/gtest.h>
#include <set>

namespace codepilot::auth {
namespace {

TEST(Credentials, ApiKeysHaveAVisiblePrefixAndAreStoredAsADigest) {
    auto k = generate_api_key();
    EXPECT_EQ(k.plaintext.rfind(k.prefix + "_", 0), 0u);
    EXPECT_EQ(k.prefix.size(), 12u);
    EXPECT_EQ(api_key_prefix(k.plaintext), std::optional<std::string>(k.prefix));
    EXPECT_EQ(k.secret_hash, sha256_hex(k.plaintext));
    EXPECT_EQ(k.secret_hash.find(k.plaintext), std::string::npos);
    EXPECT_NE(generate_api_key().plaintext, k.plaintext);
    EXPECT_EQ(classify_token(k.plaintext), TokenKind::api_key);
    EXPECT_FALSE(api_key_prefix(k.plaintext + "x"));
    EXPECT_FALSE(api_key_prefix("cpk_short_key"));
    std::string tampered = k.plaintext;
    tampered[20] = '!';
    EXPECT_FALSE(api_key_prefix(tampered));
}

TEST(Credentials, TokenKinds) {
    EXPECT_EQ(classify_token(generate_session_token().plaintext), TokenKind::session);
    EXPECT_EQ(classify_token("aaa.bbb.ccc-signature"), TokenKind::jwt);
    EXPECT_EQ(classify_token("sk-something"), TokenKind::unknown);
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Credentials, Base64UrlRoundTripsAndRejectsJunk) {
    for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                         std::string("\xff\xfe\x00\x01", 4)})
        EXPECT_EQ(base64url_decode(base64url_encode(s)), std::optional<std::string>(s));
    EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
    EXPECT_FALSE(base64url_decode("ab+c"));
    EXPECT_FALSE(base64url_decode("abcde"));
    EXPECT_FALSE(base64url_decode("ab=="));
}

TEST(Passwords, Argon2idHashesVerifyAndDiffer) {
    PasswordCost cheap{1, 1024, 1};
    auto h1 = hash_password("correct horse battery", cheap);
    auto h2 = hash_password("correct horse battery", cheap);
    ASSERT_TRUE(h1 && h2);
    EXPECT_EQ(h1->rfind("$argon2id$v=19$m=1024,t=1,p=1$", 0), 0u) << *h1;
    EXPECT_NE(*h1, *h2); // salted
    EXPECT_TRUE(verify_password("correct horse battery", *h1));
    EXPECT_FALSE(verify_password("correct horse batterY", *h1));
    EXPECT_FALSE(verify_password("correct horse battery", "$2b$10$bcrypt-is-not-accepted"));
    EXPECT_NE(password_problem("short"), "");
    EXPECT_EQ(password_problem("long enough password"), "");
}

TEST(Ldap, FilterValuesAreEscapedPerRfc4515) {
    EXPECT_EQ(escape_ldap_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
    EXPECT_EQ(escape_ldap_filter_value("a\\b"), "a\\5cb");
    EXPECT_EQ(escape_ldap_filter_value(std::string("x\0y", 3)), "x\\00y");
    EXPECT_EQ(escape_ldap_filter_value("jörg.o'neil"), "jörg.o'neil");
}

TEST(Ldap, GroupMapPicksTheHighestRolePerTenant) {
    config::LdapConfig c;
    c.group_map = {{"cn=devs,ou=groups,dc=x", "acme", "developer"},
                   {"CN=Admins, OU=Groups, DC=x", "acme", "admin"},
                   {"cn=auditors,ou=groups,dc=x", "audit", "auditor"}};
    LdapDirectory d(c);
    auto grants = d.map_groups({"cn=devs,ou=groups,dc=x", "cn=admins,ou=groups,dc=x", "cn=other,dc=x"});
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_EQ(grants[0], (std::pair<std::string, std::string>{"acme", "admin"}));
}

TEST(Durations, ParseUnitsAndRejectNonsense) {
    EXPECT_EQ(parse_duration_seconds("30d"), std::optional<int64_t>(30 * 86400));
    EXPECT_EQ(parse_duration_seconds("12h"), std::optional<int64_t>(12 * 3600));
    EXPECT_EQ(parse_duration_seconds("90m"), std::optional<int64_t>(5400));
    EXPECT_EQ(parse_duration_seconds("2w"), std::optional<int64_t>(14 * 86400));
    EXPECT_EQ(parse_duration_seconds("3600"), std::optional<int64_t>(3600));
    for (const char* bad : {"", "d", "-1d", "0", "1.5h", "10y", "99999999999d", "1dd"})
        EXPECT_FALSE(parse_duration_seconds(bad)) << bad;
}

TEST(Names, TenantsAndUsers) {
    EXPECT_TRUE(valid_tenant_name("acme-corp.eu_1"));
    EXPECT_FALSE(valid_tenant_name("-acme"));
    EXPECT_FALSE(valid_tenant_name("Acme"));
    EXPECT_FALSE(valid_tenant_name("a/b"));
    EXPECT_FALSE(valid_tenant_name(std::string(64, 'a')));
    EXPECT_TRUE(valid_username("alice@example.com"));
    EXPECT_FALSE(valid_username("has space"));
    EXPECT_FALSE(valid_username(""));
}

TEST(Rbac, RolesGrantWhatTheirNamesSay) {
    auto has = [](Role r, Permission p) { return (role_permissions(r) & bit(p)) != 0; };
    EXPECT_TRUE(has(Role::developer, Permission::completion));
    EXPECT_FALSE(has(Role::developer, Permission::members_write));
    EXPECT_TRUE(has(Role::admin, Permission::members_write));
    EXPECT_FALSE(has(Role::admin, Permission::tenant_delete));
    EXPECT_TRUE(has(Role::owner, Permission::tenant_delete));
    // Auditors read audit and usage, nothing else.
    EXPECT_EQ(role_permissions(Role::auditor), bit(Permission::audit_read) | bit(Permission::usage_read));
    EXPECT_FALSE(has(Role::viewer, Permission::completion));
    for (auto r : {Role::owner, Role::admin, Role::developer, Role::auditor, Role::viewer})
        EXPECT_FALSE(has(r, Permission::server_admin));
    EXPECT_EQ(parse_role("auditor"), std::optional<Role>(Role::auditor));
    EXPECT_FALSE(parse_role("root"));
}

TEST(Rbac, ScopesLimitWhatAKeyCanDo) {
    std::string bad;
    EXPECT_EQ(parse_scopes("completion, chat"), std::optional<ScopeSet>(3));
    EXPECT_FALSE(parse_scopes("completion,root", &bad));
    EXPECT_EQ(bad, "root");
    EXPECT_FALSE(parse_scopes(""));
    EXPECT_EQ(scopes_to_string(kAllScopes), "completion,chat,embeddings,admin");
    Principal p;
    p.scopes = *parse_scopes("completion");
    auto perms = p.permissions(Role::owner);
    EXPECT_TRUE(perms & bit(Permission::completion));
    EXPECT_FALSE(perms & bit(Permission::chat));
    EXPECT_FALSE(perms & bit(Permission::members_write));
    p.server_owner = true;
    EXPECT_FALSE(p.permissions(std::nullopt) & bit(Permission::server_admin)); // needs the admin scope
    p.scopes = kAllScopes;
    EXPECT_TRUE(p.permissions(std::nullopt) & bit(Permission::server_admin));
}

TEST(Rbac, TheRouteTableHasOneRulePerRoute) {
    std::set<std::string> seen;
    for (const auto& r : route_rules()) {
        EXPECT_TRUE(seen.insert(std::string(r.method) + " " + r.pattern).second) << r.pattern;
        if (r.tenant_param && std::string(r.pattern).rfind("/admin/v1/usage", 0) != 0) {  // that one names it in the query
            EXPECT_NE(std::string(r.pattern).find(std::string("{") + r.tenant_param + "}"),
                      std::string::npos);
        }
    }
    EXPECT_EQ(find_route_rule("POST", "/v1/chat/completions")->permission, Permission::chat);
    EXPECT_EQ(find_route_rule("DELETE", "/v1/chat/completions"), nullptr);
}

} // namespace
} // namespace codepilot::auth
