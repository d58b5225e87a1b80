// Secrets and their digests: random tokens, SHA-256, base64url, constant-time comparison,
// and the shapes of API keys (cpk_<prefix>_<secret>) and session tokens (cps_<secret>).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/base64.h"

namespace codepilot::auth {

std::string random_token(size_t chars); // [A-Za-z0-9], from OpenSSL's CSPRNG
std::string sha256_hex(std::string_view data);
using codepilot::base64url_decode;
using codepilot::base64url_encode;
bool constant_time_equal(std::string_view a, std::string_view b);

struct NewApiKey {
    std::string plaintext; // shown once
    std::string prefix;    // shown in listings: identifies the key, proves nothing
    std::string secret_hash;
};
NewApiKey generate_api_key();
// The prefix of a well-formed key, or nullopt.
std::optional<std::string> api_key_prefix(std::string_view token);

struct NewSessionToken {
    std::string plaintext;
    std::string secret_hash;
};
NewSessionToken generate_session_token();

enum class TokenKind { api_key, session, jwt, unknown };
TokenKind classify_token(std::string_view token);

} // namespace codepilot::auth
