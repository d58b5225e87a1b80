#include "auth/credentials.h"

#include "core/secure_random.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace codepilot::auth {
namespace {
constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kKeyTag = "cpk_", kSessionTag = "cps_";
constexpr size_t kPrefixChars = 8, kKeySecretChars = 40, kSessionChars = 43;

bool is_alnum(std::string_view s) {
    for (char c : s)
        if (kAlphabet.find(c) == std::string_view::npos) return false;
    return true;
}
} // namespace

std::string random_token(size_t chars) {
    std::string out;
    out.reserve(chars);
    unsigned char buf[64];
    while (out.size() < chars) {
        secure_random(buf, sizeof buf);
        for (unsigned char b : buf) {
            if (b >= 248) continue; // 248 = 4 × 62: keeps the choice uniform
            out += kAlphabet[b % 62];
            if (out.size() == chars) break;
        }
    }
    return out;
}

std::string sha256_hex(std::string_view data) {
    // Fetched once: an implicit fetch on every call costs more than hashing a token.
    static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), digest, &len, sha256, nullptr);
    return hex_encode(digest, len);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

NewApiKey generate_api_key() {
    NewApiKey k;
    k.prefix = std::string(kKeyTag) + random_token(kPrefixChars);
    k.plaintext = k.prefix + "_" + random_token(kKeySecretChars);
    k.secret_hash = sha256_hex(k.plaintext);
    return k;
}

std::optional<std::string> api_key_prefix(std::string_view token) {
    if (token.size() != kKeyTag.size() + kPrefixChars + 1 + kKeySecretChars || token.substr(0, 4) != kKeyTag)
        return std::nullopt;
    auto prefix = token.substr(0, kKeyTag.size() + kPrefixChars);
    if (token[prefix.size()] != '_' || !is_alnum(prefix.substr(4)) ||
        !is_alnum(token.substr(prefix.size() + 1)))
        return std::nullopt;
    return std::string(prefix);
}

NewSessionToken generate_session_token() {
    NewSessionToken t;
    t.plaintext = std::string(kSessionTag) + random_token(kSessionChars);
    t.secret_hash = sha256_hex(t.plaintext);
    return t;
}

TokenKind classify_token(std::string_view token) {
    if (api_key_prefix(token)) return TokenKind::api_key;
    if (token.size() == kSessionTag.size() + kSessionChars && token.substr(0, 4) == kSessionTag &&
        is_alnum(token.substr(4)))
        return TokenKind::session;
    size_t dots = 0;
    for (char c : token) dots += c == '.';
    if (dots == 2 && token.size() > 10) return TokenKind::jwt;
    return TokenKind::unknown;
}

} // namespace codepilot::auth
