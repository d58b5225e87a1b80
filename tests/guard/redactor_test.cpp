// Secret redaction: every kind it knows is masked, ordinary code is left alone, and huge or
// adversarial inputs are handled whole (RE2: linear time, no recursion).
#include "guard/guard.h"

#include <gtest/gtest.h>

namespace codepilot::guard {
namespace {

TEST(Redactor, MasksEachKindOfSecret) {
    struct Case {
        const char* input;
        const char* expected;
    };
    const Case cases[] = {
        {"aws = 'AKIAIOSFODNN7EXAMPLE'", "aws = '[REDACTED:aws_access_key]'"},
        {"token ghp_0123456789abcdefghijABCDEFGHIJ0123456789 ok", "token [REDACTED:github_token] ok"},
        {"SLACK=xoxb-1234567890-abcdefghij", "SLACK=[REDACTED:slack_token]"},
        {"key: cpk_AbCd1234_0123456789abcdefghij0123456789ABCDEFGHIJ", "key: [REDACTED:codepilot_key]"},
        {"Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [REDACTED:bearer_token]"},
        {"postgresql://app:hunter2secret@db:5432/x", "postgresql://app:[REDACTED:url_password]@db:5432/x"},
        {"DB_PASSWORD = \"correct-horse\"", "DB_PASSWORD = \"[REDACTED:assigned_secret]\""},
        {"api_key: 'abcdef123456'", "api_key: '[REDACTED:assigned_secret]'"},
        {"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "jwt [REDACTED:jwt]"},
    };
    for (const auto& c : cases) {
        auto r = redact_secrets(c.input);
        EXPECT_EQ(r.text, c.expected) << c.input;
        EXPECT_EQ(r.secrets, 1) << c.input;
    }
}

TEST(Redactor, PrivateKeyBlocksGoWhole) {
    std::string text = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE "
                       "KEY-----\nafter";
    auto r = redact_secrets(text);
    EXPECT_EQ(r.text, "before\n[REDACTED:private_key]\nafter");
    auto cert = redact_secrets("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    EXPECT_EQ(cert.secrets, 0); // certificates are public
}

// Found writing fuzz_redactor's invariant (a second pass changes nothing): a placeholder matched
// the next rules ("token=[REDACTED:jwt]" became an assigned secret), so one secret counted twice
// and redacting redacted text changed it again.
TEST(Redactor, RedactingRedactedTextChangesNothing) {
    const char* inputs[] = {
        "token=ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
        "password: 'hunter2hunter2'",
        "postgresql://app:s3cretpass@db:5432/app",
        "api_key = eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXN0cmluZw",
    };
    for (const char* input : inputs) {
        const Redaction once = redact_secrets(input);
        EXPECT_EQ(once.secrets, 1) << input << " -> " << once.text;
        const Redaction twice = redact_secrets(once.text);
        EXPECT_EQ(twice.secrets, 0) << once.text << " -> " << twice.text;
        EXPECT_EQ(twice.text, once.text);
    }
}

// Found by fuzz_redactor: a "-----BEGIN" whose line had no closing dashes took the next line's
// header as its end, and the private key after it went out as it was.
TEST(Redactor, APrivateKeyAfterABrokenHeaderIsMasked) {
    const std::string key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----\n";
    for (const std::string& before :
         {std::string("-----BEGIN CERT\n"), std::string("-----BEGIN X-----"),
          std::string("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}) {
        const Redaction r = redact_secrets(before + key + "after");
        EXPECT_EQ(r.secrets, 1) << before;
        EXPECT_EQ(r.text.find("MIIEvQIBADANBgkq"), std::string::npos) << r.text;
        EXPECT_NE(r.text.find("[REDACTED:private_key]\nafter"), std::string::npos) << r.text;
    }
    // An END line without its dashes ends at its line, not at the next key's header.
    const Redaction two = redact_secrets("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END \n" + key);
    EXPECT_EQ(two.secrets, 2) << two.text;
    EXPECT_EQ(two.text.find("MIIEvQIBADANBgkq"), std::string::npos) << two.text;
}

TEST(Redactor, LeavesOrdinaryCodeAlone) {
    const std::string code = "def password_strength(pw):\n    return len(pw) > 12  # tokens: 3\n";
    auto r = redact_secrets(code);
    EXPECT_EQ(r.text, code);
    EXPECT_EQ(r.secrets, 0);
}

TEST(Redactor, HugeInputsDoNotExhaustTheStack) {
    std::string huge(2 * 1024 * 1024, 'a'); // one long run of letters
    huge += " password=" + std::string(100000, 'b');
    auto r = redact_secrets(huge);
    EXPECT_EQ(r.secrets, 1);
    EXPECT_EQ(r.text.find(std::string(600, 'b')), std::string::npos);
}

// Near-misses everywhere (what makes a backtracking engine retry at every offset), with real
// secrets at the start, in the middle and at the end of 2 MiB.
TEST(Redactor, TwoMebibytesOfNearMissesAreRedactedExactly) {
    std::string text = "AKIAIOSFODNN7EXAMPLE ";
    size_t near_misses = 0;
    while (text.size() < 1024 * 1024) {
        text += "passwordpassword_token-secret api_key ghp_short eyJabcdefgh.eyJ Bearer x ";
        ++near_misses;
    }
    text += "db postgresql://app:hunter2secret@db/x ";
    while (text.size() < 2 * 1024 * 1024)
        text += "s3://" + std::string(300, 'u') + ":" + std::string(300, 'p') + " ";
    text += "Authorization: Bearer abcdefghijklmnop1234";
    auto r = redact_secrets(text);
    EXPECT_EQ(r.secrets, 3);
    EXPECT_EQ(r.text.rfind("[REDACTED:aws_access_key] ", 0), 0u);
    EXPECT_NE(r.text.find("postgresql://app:[REDACTED:url_password]@db/x "), std::string::npos);
    EXPECT_EQ(r.text.substr(r.text.size() - 45), "Authorization: Bearer [REDACTED:bearer_token]");
    EXPECT_EQ(r.text.find("hunter2secret"), std::string::npos);
    // Everything else is untouched: the same length apart from the three replacements.
    EXPECT_EQ(r.text.size(), text.size() - 20 - 13 - 20 + 25 + 23 + 23);
    size_t kept = 0;
    for (size_t at = 0; (at = r.text.find("passwordpassword_token-secret api_key", at)) != std::string::npos;
         ++at)
        ++kept;
    EXPECT_EQ(kept, near_misses);
}

TEST(Redactor, SecretsLongerThanThePatternBoundsAreMaskedWhole) {
    const std::string part(5000, 'A'); // beyond std::regex's old 4096 bound for a JWT segment
    auto jwt = redact_secrets("t eyJ" + part + ".eyJ" + part + "." + part + " done");
    EXPECT_EQ(jwt.text, "t [REDACTED:jwt] done");
    auto token = redact_secrets("ghp_" + std::string(400, 'a') + " x");
    EXPECT_EQ(token.text, "[REDACTED:github_token] x");
    auto value = redact_secrets("password=" + std::string(3000, 'b') + ";next");
    EXPECT_EQ(value.text, "password=[REDACTED:assigned_secret];next");
}

// Prompts are bytes: invalid UTF-8 around or inside a secret neither hides it nor is lost.
TEST(Redactor, InvalidUtf8IsKeptAndDoesNotHideSecrets) {
    auto r = redact_secrets("\xff\xfe password=\xffhunter2hunter2 \xc3");
    EXPECT_EQ(r.text, "\xff\xfe password=[REDACTED:assigned_secret] \xc3");
    EXPECT_EQ(r.secrets, 1);
}

} // namespace
} // namespace codepilot::guard
