// Prompt storage for the audit trail: modes and AES-256-GCM sealing (keys: key_ring.cpp).
#include "audit/audit.h"
#include "core/secure_random.h"
#include "core/base64.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

namespace codepilot::audit {

std::optional<PromptStorage> parse_prompt_storage(std::string_view text) {
    if (text == "none") return PromptStorage::none;
    if (text == "redacted") return PromptStorage::redacted;
    if (text == "encrypted") return PromptStorage::encrypted;
    return std::nullopt;
}

std::string seal(const PromptKeys& keys, std::string_view plain) {
    const std::string& key = keys.keys.at(keys.current);
    unsigned char nonce[12];
    secure_random(nonce, sizeof nonce);  // a repeated GCM nonce would expose plaintexts
    std::string out(sizeof nonce + plain.size() + 16, '\0');
    std::copy(nonce, nonce + sizeof nonce, out.begin());
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                       nonce);
    EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()) + sizeof nonce, &len,
                      reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size()));
    EVP_EncryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + sizeof nonce + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out.data() + sizeof nonce + plain.size());
    EVP_CIPHER_CTX_free(ctx);
    return "aes256gcm:" + keys.current + ":" + base64url_encode(out);
}

Result<std::string> open_sealed(const PromptKeys& keys, std::string_view sealed) {
    auto bad = [](std::string why) { return make_error(ErrorCode::invalid_argument, std::move(why)); };
    if (sealed.substr(0, 10) != "aes256gcm:") return bad("not a sealed text");
    auto colon = sealed.find(':', 10);
    if (colon == std::string_view::npos) return bad("sealed text without a key id");
    std::string id(sealed.substr(10, colon - 10));
    auto key = keys.keys.find(id);
    if (key == keys.keys.end()) return bad("no audit key '" + id + "' (rotated out?)");
    auto data = base64url_decode(sealed.substr(colon + 1));
    if (!data || data->size() < 28) return bad("sealed text is damaged");
    const size_t n = data->size() - 28;
    std::string plain(n, '\0');
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr,
                       reinterpret_cast<const unsigned char*>(key->second.data()),
                       reinterpret_cast<const unsigned char*>(data->data()));
    EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(plain.data()), &len,
                      reinterpret_cast<const unsigned char*>(data->data()) + 12, static_cast<int>(n));
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, data->data() + 12 + n);
    int ok = EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(plain.data()) + len, &len);
    EVP_CIPHER_CTX_free(ctx);
    if (ok != 1) return bad("sealed text does not authenticate (wrong key or tampered)");
    return plain;
}

} // namespace codepilot::audit
