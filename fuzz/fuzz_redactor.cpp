// Secret redaction over any prompt bytes (not only UTF-8). One pass must mask every secret it
// knows: a second pass over its output changes nothing (a placeholder is not a secret), finds
// none of the unambiguous kinds (keys, tokens, private key blocks), and no private key header
// of the input survives.
#include "fuzz_check.h"
#include "guard/guard.h"

#include <string>
#include <vector>

using namespace codepilot::guard;

namespace {

void check(bool ok, const char* what) {
    fuzz_check(ok, "fuzz_redactor", what);
}

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

// The PEM headers (one line each) in the text that name a private key.
std::vector<std::string> private_key_headers(const std::string& text) {
    std::vector<std::string> out;
    for (size_t at = text.find("-----BEGIN "); at != std::string::npos;
         at = text.find("-----BEGIN ", at + 1)) {
        size_t close = text.find("-----", at + 11);
        if (close == std::string::npos) break;
        const std::string header = text.substr(at, close + 5 - at);
        if (header.find('\n') == std::string::npos && header.find("PRIVATE KEY") != std::string::npos)
            out.push_back(header);
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    const Redaction once = redact_secrets(input);
    check(once.secrets >= 0, "a negative count");
    check(once.secrets == 0 || once.text != input, "secrets counted but nothing masked");
    for (const auto& header : private_key_headers(input))
        check(once.text.find(header) == std::string::npos, "a private key header survived");

    const Redaction twice = redact_secrets(once.text);
    check(twice.secrets == 0 && twice.text == once.text, "redacting redacted text changed it");
    for (const char* kind :
         {"aws_access_key", "github_token", "slack_token", "codepilot_key", "jwt", "private_key"}) {
        const std::string placeholder = std::string("[REDACTED:") + kind + "]";
        check(count(twice.text, placeholder) == count(once.text, placeholder),
              "a second pass found a secret the first one left");
    }
    return 0;
}
