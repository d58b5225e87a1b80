// Secret redaction: every kind it knows is masked, ordinary code is left alone, and huge
// inputs cannot exhaust the stack.
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

} // namespace
} // namespace codepilot::guard
