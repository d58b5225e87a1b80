// The audit trail's redaction (the guard's rules) over any prompt bytes (not only UTF-8). One
// pass must mask every secret it finds: a second pass over its output changes nothing (a
// placeholder is not a secret), and no private key header of the input survives (the rules
// without their allowlist: a placeholder-like key body is allowlisted on purpose).
#include "fuzz_check.h"
#include "guard/guard.h"

#include <string>
#include <vector>

using namespace codepilot::guard;

namespace {

void check(bool ok, const char* what) {
    fuzz_check(ok, "fuzz_redactor", what);
}

// The PEM headers in the text that name a private key: "-----BEGIN ", up to 40 capitals, digits
// or spaces, then "PRIVATE KEY-----" (or "PRIVATE KEY BLOCK-----"), as OpenSSL, OpenSSH and GnuPG
// write them.
std::vector<std::string> private_key_headers(const std::string& text) {
    std::vector<std::string> out;
    for (size_t at = text.find("-----BEGIN"); at != std::string::npos; at = text.find("-----BEGIN", at + 1)) {
        size_t i = at + 10, n = 0;
        while (i < text.size() && n <= 40 &&
               (text[i] == ' ' || (text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= '0' && text[i] <= '9'))) {
            // the label ends where " PRIVATE KEY" starts
            for (const std::string tail : {" PRIVATE KEY-----", " PRIVATE KEY BLOCK-----"})
                if (text.compare(i, tail.size(), tail) == 0)
                    out.push_back(text.substr(at, i + tail.size() - at));
            ++i;
            ++n;
        }
    }
    return out;
}

// The built-in rules without their allowlist: a key block whose body reads like a placeholder
// ("EXAMPLE") is allowlisted on purpose, so the header check runs on the rules alone.
const RuleSet& rules_without_allowlist() {
    static const std::shared_ptr<const RuleSet> rules = [] {
        std::string text(RuleSet::builtin_text());
        const size_t from = text.find("\n[allowlist]"), to = text.find("\n[[rule]]", from);
        text.erase(from, to - from);
        return *RuleSet::parse(text, "rules without allowlist");
    }();
    return *rules;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const Redaction once = redact_secrets(input);
    check(once.secrets >= 0, "a negative count");
    check(once.secrets == 0 || once.text != input, "secrets counted but nothing masked");
    const auto headers = private_key_headers(input);
    if (!headers.empty()) {
        const Redaction strict = redact_secrets(input, &rules_without_allowlist());
        for (const auto& header : headers)
            check(strict.text.find(header) == std::string::npos, "a private key header survived");
    }

    const Redaction twice = redact_secrets(once.text);
    check(twice.secrets == 0 && twice.text == once.text, "redacting redacted text changed it");
    return 0;
}
