// base64url without padding (RFC 4648 §5): JWTs, sealed audit texts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace codepilot {

std::string base64url_encode(std::string_view data);
// nullopt for characters outside the alphabet or non-canonical trailing bits.
std::optional<std::string> base64url_decode(std::string_view text);

} // namespace codepilot
