// The audit trail's redaction of stored prompts: the guard's rule set (one engine for requests,
// output and the trail), personal data included, with the same typed placeholders; huge or
// adversarial inputs are handled whole (RE2: linear time, no recursion).
#include "guard/guard.h"

#include <gtest/gtest.h>

namespace codepilot::guard {
namespace {

const std::string kKey = "AKIAQYLPMN5HHHFPZAM2"; // the shape of an AWS access key id, not a real one
const std::string kToken = "ghp_Zr7Qk2Lm9Vx4Tb8Nc1Hd6Js3Fw5Pg0Ya2Ue7";

TEST(AuditRedaction, MasksEachKindWithTheGuardsPlaceholders) {
    struct Case {
        std::string input, expected;
    };
    const Case cases[] = {
        {"aws = '" + kKey + "'", "aws = '<SECRET:aws_access_key_id>'"},
        {"token " + kToken + " ok", "token <SECRET:github_pat> ok"},
        {"postgresql://app:hunter2secret@db:5432/x",
         "postgresql://app:<SECRET:database_url_password>@db:5432/x"},
        {"DB_PASSWORD = \"correct-horse-battery\"", "DB_PASSWORD = \"<SECRET:password_assignment>\""},
        {"mail jane.doe@corp-mail.com now", "mail <SECRET:email_address> now"}, // personal data too
    };
    for (const auto& c : cases) {
        auto r = redact_secrets(c.input);
        EXPECT_EQ(r.text, c.expected) << c.input;
        EXPECT_EQ(r.secrets, 1) << c.input;
    }
}

TEST(AuditRedaction, TheSameValueGetsTheSamePlaceholder) {
    auto r = redact_secrets("a=" + kKey + "\nb=" + kKey + "\n");
    EXPECT_EQ(r.text, "a=<SECRET:aws_access_key_id>\nb=<SECRET:aws_access_key_id>\n");
    EXPECT_EQ(r.secrets, 2);
}

TEST(AuditRedaction, UsesTheServersRulesWhenGiven) {
    auto rules = RuleSet::extend(
        RuleSet::builtin(),
        "[[rule]]\nid = 'acme_token'\nregex = 'acme_[a-z0-9]{20}'\nkeywords = ['acme_']\n", "test");
    ASSERT_TRUE(rules) << rules.error().message;
    const std::string text = "t = acme_0123456789abcdefghij";
    EXPECT_EQ(redact_secrets(text).secrets, 0);
    EXPECT_EQ(redact_secrets(text, rules->get()).text, "t = <SECRET:acme_token>");
}

TEST(AuditRedaction, PrivateKeyBlocksGoWholeAndCertificatesStay) {
    const std::string text = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
                             "-----END RSA PRIVATE KEY-----\nafter";
    auto r = redact_secrets(text);
    EXPECT_EQ(r.secrets, 1) << r.text;
    EXPECT_EQ(r.text.find("MIIEpAIBAAKCAQEA"), std::string::npos) << r.text;
    EXPECT_EQ(r.text.rfind("before\n", 0), 0u);
    EXPECT_EQ(r.text.substr(r.text.size() - 6), "\nafter");
    auto cert = redact_secrets("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    EXPECT_EQ(cert.secrets, 0); // certificates are public
}

// A placeholder is not a secret: redacting redacted text changes nothing (fuzz_redactor's
// invariant), so a record redacted twice reads as once.
TEST(AuditRedaction, RedactingRedactedTextChangesNothing) {
    const std::string inputs[] = {
        "token=" + kToken,
        "password: 'hunter2hunter2'",
        "postgresql://app:s3cretpass@db:5432/app",
        "api_key = eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXN0cmluZw",
    };
    for (const auto& input : inputs) {
        const Redaction once = redact_secrets(input);
        EXPECT_EQ(once.secrets, 1) << input << " -> " << once.text;
        const Redaction twice = redact_secrets(once.text);
        EXPECT_EQ(twice.secrets, 0) << once.text << " -> " << twice.text;
        EXPECT_EQ(twice.text, once.text);
    }
}

// Found by fuzz_redactor: the first match's boundary hid an e-mail address right after it
// ("...@git.hub" then ".56789@github.com"); once the first became a placeholder the second
// matched, so a second pass changed the text. The redaction now repeats until nothing is found.
TEST(AuditRedaction, ASecretNextToARedactedOneIsFoundInTheSamePass) {
    const Redaction once = redact_secrets("RE5551111@git.hub.56789@github.com x");
    EXPECT_EQ(once.text, "<SECRET:email_address><SECRET:email_address_2> x");
    EXPECT_EQ(once.secrets, 2);
    EXPECT_EQ(redact_secrets(once.text).secrets, 0);
}

// Found by fuzz_redactor: a key header inside a URL's password was masked, and the password,
// now free of spaces, matched url_basic_auth on a second pass. A value that holds a
// placeholder is allowlisted.
TEST(AuditRedaction, AValueHoldingAPlaceholderIsNotASecretAgain) {
    const Redaction once =
        redact_secrets("git https://x:ab-----BEGIN PRIVATE KEY-----BCDEFGHIJ0123456789@github.com/a/b\n");
    EXPECT_EQ(once.text, "git https://x:ab<SECRET:private_key>@github.com/a/b\n");
    const Redaction twice = redact_secrets(once.text);
    EXPECT_EQ(twice.secrets, 0);
    EXPECT_EQ(twice.text, once.text);
}

TEST(AuditRedaction, LeavesOrdinaryCodeAlone) {
    const std::string code = "def password_strength(pw):\n    return len(pw) > 12  # tokens: 3\n";
    auto r = redact_secrets(code);
    EXPECT_EQ(r.text, code);
    EXPECT_EQ(r.secrets, 0);
}

// Near-misses everywhere (what makes a backtracking engine retry at every offset), with real
// secrets at the start, in the middle and at the end of 2 MiB; nothing else changes.
TEST(AuditRedaction, TwoMebibytesOfNearMissesAreRedactedExactly) {
    std::string text = kKey + " ";
    size_t near_misses = 0;
    while (text.size() < 1024 * 1024) {
        text += "passwordpassword_token-secret api_key ghp_short eyJabcdefgh.eyJ Bearer x ";
        ++near_misses;
    }
    text += "db postgresql://app:hunter2secret@db/x ";
    while (text.size() < 2 * 1024 * 1024) text += "s3://" + std::string(300, 'u') + " ";
    text += "token " + kToken;
    auto r = redact_secrets(text);
    EXPECT_EQ(r.secrets, 3);
    EXPECT_EQ(r.text.rfind("<SECRET:aws_access_key_id> ", 0), 0u);
    EXPECT_NE(r.text.find("postgresql://app:<SECRET:database_url_password>@db/x "), std::string::npos);
    EXPECT_EQ(r.text.substr(r.text.size() - 25), "token <SECRET:github_pat>");
    EXPECT_EQ(r.text.find("hunter2secret"), std::string::npos);
    size_t kept = 0;
    for (size_t at = 0; (at = r.text.find("passwordpassword_token-secret api_key", at)) != std::string::npos;
         ++at)
        ++kept;
    EXPECT_EQ(kept, near_misses);
}

TEST(AuditRedaction, SecretsLongerThanUsualAreMaskedWhole) {
    const std::string part(5000, 'A');
    auto jwt = redact_secrets("t eyJ" + part + ".eyJ" + part + "." + part + " done");
    EXPECT_EQ(jwt.text, "t <SECRET:jwt> done");
    std::string long_value; // 3000 characters of a random-looking password
    const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (size_t i = 0; i < 3000; ++i) long_value += alphabet[(i * 7919 + i / 7) % alphabet.size()];
    auto value = redact_secrets("password = \"" + long_value + "\";\nnext");
    EXPECT_EQ(value.text, "password = \"<SECRET:password_assignment>\";\nnext");
}

// Prompts are bytes: invalid UTF-8 around a secret neither hides it nor is lost.
TEST(AuditRedaction, InvalidUtf8IsKeptAndDoesNotHideSecrets) {
    auto r = redact_secrets("\xff\xfe key=" + kKey + " \xc3");
    EXPECT_EQ(r.text, "\xff\xfe key=<SECRET:aws_access_key_id> \xc3");
    EXPECT_EQ(r.secrets, 1);
}

} // namespace
} // namespace codepilot::guard
