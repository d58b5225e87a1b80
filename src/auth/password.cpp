#include "auth/password.h"

#include "auth/credentials.h"

#include <argon2.h>

namespace codepilot::auth {

Result<std::string> hash_password(const std::string& password, const PasswordCost& cost) {
    unsigned char salt[16];
    auto salt_text = random_token(16);
    std::copy(salt_text.begin(), salt_text.end(), salt);
    size_t length = argon2_encodedlen(cost.time, cost.memory_kib, cost.lanes, sizeof salt, 32, Argon2_id);
    std::string encoded(length, '\0');
    int rc = argon2id_hash_encoded(cost.time, cost.memory_kib, cost.lanes, password.data(), password.size(),
                                   salt, sizeof salt, 32, encoded.data(), encoded.size());
    if (rc != ARGON2_OK)
        return make_error(ErrorCode::internal, std::string("argon2: ") + argon2_error_message(rc));
    encoded.resize(encoded.find('\0'));
    return encoded;
}

bool verify_password(const std::string& password, const std::string& encoded) {
    if (encoded.rfind("$argon2id$", 0) != 0) return false;
    return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

void burn_password_check(const std::string& password) {
    static const std::string dummy = hash_password("codepilot-timing-equalizer").value();
    (void)verify_password(password, dummy);
}

std::string password_problem(const std::string& password) {
    if (password.size() < 12) return "a password needs at least 12 characters";
    if (password.size() > 1024) return "a password may have at most 1024 characters";
    return "";
}

} // namespace codepilot::auth
