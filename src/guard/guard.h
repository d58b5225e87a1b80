// Secret redaction: finds credentials in text (cloud keys, tokens, private keys, passwords
// in assignments and URLs) and masks them, so that a redacted prompt can be kept for audit.
#pragma once

#include <string>
#include <string_view>

namespace codepilot::guard {

struct Redaction {
    std::string text;
    int secrets = 0; // how many were masked
};

// Each secret becomes "[REDACTED:<kind>]"; everything else is kept as it was.
Redaction redact_secrets(std::string_view text);

} // namespace codepilot::guard
