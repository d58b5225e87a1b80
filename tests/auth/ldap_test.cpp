// LDAP sign-in against a real OpenLDAP slapd seeded with users and groups
// (scripts/test_services.sh, tests/services/directory.ldif).
#include "auth/auth.h"
#include "auth/ldap_directory.h"
#include "auth/settings_json.h"
#include "core/private_files.h"
#include "store/store.h"
#include "support/ldap_config.h"
#include "support/log_capture.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace codepilot::auth {
namespace {

TEST(LdapDirectory, FindsBindsAndReadsGroupsBothWays) {
    LdapDirectory d(testenv::test_ldap_config());
    auto alice = d.authenticate("alice", "alice-pass");
    ASSERT_TRUE(alice) << alice.error().message;
    EXPECT_EQ(alice->dn, "uid=alice,ou=people,dc=codepilot,dc=test");
    EXPECT_EQ(alice->display_name, "Alice Liddell");
    EXPECT_EQ(alice->email, "alice@codepilot.test");
    // memberOf (groupOfNames through the memberof overlay)
    auto grants = d.map_groups(alice->groups);
    ASSERT_EQ(grants.size(), 2u);
    EXPECT_EQ(grants[0], (std::pair<std::string, std::string>{"payments", "developer"}));
    EXPECT_EQ(grants[1], (std::pair<std::string, std::string>{"platform", "admin"})); // the higher role wins

    auto bob = d.authenticate("bob", "bob-pass");
    ASSERT_TRUE(bob) << bob.error().message;
    // memberUid of a POSIX group comes from the group search; auditor < developer in payments
    bool posix = false;
    for (const auto& g : bob->groups) posix |= g == "cn=auditors,ou=groups,dc=codepilot,dc=test";
    EXPECT_TRUE(posix);
    auto bob_grants = d.map_groups(bob->groups);
    ASSERT_EQ(bob_grants.size(), 2u);
    EXPECT_EQ(bob_grants[0].second, "developer");
}

TEST(LdapDirectory, WrongPasswordUnknownUserAndEmptyPasswordAreInvalid) {
    LdapDirectory d(testenv::test_ldap_config());
    for (auto [user, pass] :
         {std::pair{"alice", "wrong"}, std::pair{"nobody", "alice-pass"}, std::pair{"alice", ""}}) {
        auto r = d.authenticate(user, pass);
        ASSERT_FALSE(r) << user;
        EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << user;
        EXPECT_EQ(r.error().message, "invalid credentials");
    }
}

TEST(LdapDirectory, FilterInjectionIsEscaped) {
    LdapDirectory d(testenv::test_ldap_config());
    // Unescaped, "*)(uid=*" would turn the filter into (uid=*)(uid=*) and match every user.
    for (const char* name : {"*)(uid=*", "*", "al*", "alice)(|(uid=*"}) {
        auto r = d.authenticate(name, "alice-pass");
        EXPECT_FALSE(r) << name;
    }
    // The user whose name really is "evil*)(uid=*" signs in as exactly that user.
    auto evil = d.authenticate("evil*)(uid=*", "evil-pass");
    ASSERT_TRUE(evil) << evil.error().message;
    EXPECT_EQ(evil->dn, "cn=Evil Name,ou=people,dc=codepilot,dc=test");
    EXPECT_FALSE(d.authenticate("evil*)(uid=*", "alice-pass"));
}

TEST(LdapDirectory, UnreachableOrMisconfiguredDirectoryIsUnavailable) {
    auto down = testenv::test_ldap_config();
    down.url = "ldap://127.0.0.1:1";
    down.timeout_ms = 500;
    auto r = LdapDirectory(down).authenticate("alice", "alice-pass");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::unavailable);

    auto bad_service = testenv::test_ldap_config();
    ::setenv("CODEPILOT_TEST_WRONG_BIND_PASSWORD", "not-the-service-password", 1);
    bad_service.bind_password_env = "CODEPILOT_TEST_WRONG_BIND_PASSWORD";
    auto s = LdapDirectory(bad_service).authenticate("alice", "alice-pass");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, ErrorCode::unavailable);
    EXPECT_NE(s.error().message.find("service bind"), std::string::npos);
}

// The service password is named, never held: a file (re-read at each bind) or a variable.
class LdapServicePassword : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("cp-ldap-secret-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir_);
        ASSERT_TRUE(make_private_dir(dir_.string()));
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string secret_file(const std::string& name, const std::string& content) {
        auto path = (dir_ / name).string();
        EXPECT_TRUE(write_private_file(path, content));
        return path;
    }
    std::filesystem::path dir_;
};

TEST_F(LdapServicePassword, FromAFileSignsInAndARotatedFileIsReadAtTheNextBind) {
    auto c = testenv::test_ldap_config();
    c.bind_password_env.clear();
    c.bind_password_file = secret_file("bind", std::string(testenv::kTestLdapBindPassword) + "\n");
    testenv::LogCapture log;
    LdapDirectory d(c);
    EXPECT_EQ(log.count("bind_password_file"), 0) << log.text(); // 0600: nothing to say
    auto alice = d.authenticate("alice", "alice-pass");
    ASSERT_TRUE(alice) << alice.error().message;
    EXPECT_EQ(d.config().bind_password_file, c.bind_password_file); // the reference, not the secret

    std::filesystem::remove(c.bind_password_file);
    secret_file("bind", "rotated-but-wrong\n");
    auto after = d.authenticate("alice", "alice-pass");
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error().code, ErrorCode::unavailable);
}

TEST_F(LdapServicePassword, AFileOthersCanReadIsReportedOnce) {
    auto c = testenv::test_ldap_config();
    c.bind_password_env.clear();
    c.bind_password_file = secret_file("bind", testenv::kTestLdapBindPassword);
    ASSERT_EQ(::chmod(c.bind_password_file.c_str(), 0644), 0);
    testenv::LogCapture log;
    LdapDirectory d(c);
    EXPECT_EQ(log.count(c.bind_password_file + " has mode 0644"), 1) << log.text();
    EXPECT_TRUE(d.authenticate("alice", "alice-pass")); // a warning, not a refusal
    EXPECT_EQ(log.count("has mode"), 1) << log.text();  // not once per bind
}

TEST_F(LdapServicePassword, AMissingFileUnsetVariableOrNoReferenceFailsTheServiceBindClearly) {
    auto missing = testenv::test_ldap_config();
    missing.bind_password_env.clear();
    missing.bind_password_file = (dir_ / "nothere").string();
    auto r = LdapDirectory(missing).authenticate("alice", "alice-pass");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::unavailable);
    EXPECT_NE(r.error().message.find("cannot read " + missing.bind_password_file), std::string::npos)
        << r.error().message;

    auto unset = testenv::test_ldap_config();
    ::unsetenv("CODEPILOT_TEST_UNSET_BIND_PASSWORD");
    unset.bind_password_env = "CODEPILOT_TEST_UNSET_BIND_PASSWORD";
    auto u = LdapDirectory(unset).authenticate("alice", "alice-pass");
    ASSERT_FALSE(u);
    EXPECT_NE(u.error().message.find("CODEPILOT_TEST_UNSET_BIND_PASSWORD is not set"), std::string::npos)
        << u.error().message;

    // No reference at all is not an unauthenticated bind (RFC 4513 §5.1.2) in disguise.
    auto none = testenv::test_ldap_config();
    none.bind_password_env.clear();
    auto n = LdapDirectory(none).authenticate("alice", "alice-pass");
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error().code, ErrorCode::unavailable);
    EXPECT_NE(n.error().message.find("no password"), std::string::npos) << n.error().message;
}

TEST(LdapDirectory, StartTlsAndLdapsWithTheCompanyCa) {
    auto start_tls = testenv::test_ldap_config(); // StartTLS with the test CA
    ASSERT_TRUE(start_tls.start_tls);
    ASSERT_TRUE(config::validate_ldap(start_tls));
    testenv::LogCapture log;
    auto r = LdapDirectory(start_tls).authenticate("alice", "alice-pass");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->display_name, "Alice Liddell");

    auto ldaps = start_tls;
    ldaps.start_tls = false;
    ldaps.url = testenv::service_url("CODEPILOT_TEST_LDAPS_URL");
    ASSERT_TRUE(config::validate_ldap(ldaps));
    auto s = LdapDirectory(ldaps).authenticate("bob", "bob-pass");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_FALSE(LdapDirectory(ldaps).authenticate("bob", "wrong"));
    EXPECT_EQ(log.count("allow_insecure"), 0) << log.text(); // nothing to warn about
}

TEST(LdapDirectory, AnUntrustedCertificateFailsClosedWithAClearReason) {
    // A CA that did not sign the directory's certificate: no sign-in, never a fallback to sending
    // the password in clear, and a reason that names what to check but no secret.
    auto tls = testenv::test_ldap_config();
    tls.ca_file = testenv::tls_file("other-ca.pem");
    auto r = LdapDirectory(tls).authenticate("alice", "alice-pass");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::unavailable);
    EXPECT_NE(r.error().message.find("StartTLS"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("auth.ldap.ca_file"), std::string::npos) << r.error().message;
    auto ldaps = tls;
    ldaps.start_tls = false;
    ldaps.url = testenv::service_url("CODEPILOT_TEST_LDAPS_URL");
    auto s = LdapDirectory(ldaps).authenticate("alice", "alice-pass");
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, ErrorCode::unavailable);
    EXPECT_NE(s.error().message.find("TLS handshake"), std::string::npos) << s.error().message;
    EXPECT_NE(s.error().message.find("auth.ldap.ca_file"), std::string::npos) << s.error().message;
    for (const auto& message : {r.error().message, s.error().message}) {
        EXPECT_EQ(message.find(testenv::kTestLdapBindPassword), std::string::npos) << message;
        EXPECT_EQ(message.find("alice-pass"), std::string::npos) << message;
    }
}

TEST(LdapDirectory, PlainLdapAndUncheckedCertificatesOnlyWithTheOptOutAndAWarning) {
    auto plain = testenv::test_ldap_config();
    plain.start_tls = false;
    plain.ca_file.clear();
    auto refused = config::validate_ldap(plain);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("auth.ldap.url"), std::string::npos) << refused.error().message;
    EXPECT_NE(refused.error().message.find("auth.ldap.allow_insecure"), std::string::npos);

    plain.allow_insecure = true;
    ASSERT_TRUE(config::validate_ldap(plain));
    testenv::LogCapture log;
    LdapDirectory directory(plain);
    EXPECT_EQ(log.count("auth.ldap: allow_insecure: " + plain.url + " without StartTLS"), 1) << log.text();
    auto alice = directory.authenticate("alice", "alice-pass");
    ASSERT_TRUE(alice) << alice.error().message;

    // tls_verify = false: the same opt-out, and then any certificate is taken (the other CA's too).
    auto unchecked = testenv::test_ldap_config();
    unchecked.tls_verify = false;
    unchecked.ca_file = testenv::tls_file("other-ca.pem");
    ASSERT_FALSE(config::validate_ldap(unchecked));
    unchecked.allow_insecure = true;
    ASSERT_TRUE(config::validate_ldap(unchecked));
    LdapDirectory lax(unchecked);
    EXPECT_EQ(log.count("auth.ldap: allow_insecure: tls_verify = false"), 1) << log.text();
    EXPECT_TRUE(lax.authenticate("alice", "alice-pass"));
}

// Settings saved by an older version with plain ldap:// are refused at start like the file would
// be; the file's opt-out lets the server start so that they can be fixed through the API.
TEST(LdapDirectory, SavedPlainLdapSettingsNeedTheFilesOptOut) {
    auto db = store::open_and_migrate("sqlite::memory:", 1);
    ASSERT_TRUE(db) << db.error().message;
    store::IdentityStore ids(**db);
    auto saved = ldap_to_json(testenv::test_ldap_config());
    saved["start_tls"] = false;
    ASSERT_TRUE(ids.put_setting("ldap", saved.dump(), "dana"));
    config::AuthConfig file;
    auto refused = Authenticator(ids, file, nullptr).load_saved_settings();
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find("saved ldap settings: auth.ldap.url"), std::string::npos)
        << refused.error().message;
    file.ldap.allow_insecure = true;
    testenv::LogCapture log;
    Authenticator opted_out(ids, file, nullptr);
    ASSERT_TRUE(opted_out.load_saved_settings());
    EXPECT_TRUE(opted_out.ldap_settings().enabled);
    EXPECT_EQ(log.count("auth.ldap: allow_insecure:"), 1) << log.text();
}

} // namespace
} // namespace codepilot::auth
