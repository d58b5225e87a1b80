// Text encodings of bytes: base64url without padding (RFC 4648 §5) for JWTs and sealed audit
// texts, hex for digests and ids.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace codepilot {

std::string base64url_encode(std::string_view data);
// Lower-case hex of bytes (digests, random ids).
std::string hex_encode(const unsigned char* data, size_t size);
// nullopt for characters outside the alphabet or non-canonical trailing bits.
std::optional<std::string> base64url_decode(std::string_view text);

} // namespace codepilot
