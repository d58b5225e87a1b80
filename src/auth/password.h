// Local passwords: Argon2id (libargon2) in its self-describing encoded form.
#pragma once

#include "core/result.h"

#include <string>

namespace codepilot::auth {

struct PasswordCost {
    uint32_t time = 2;           // iterations
    uint32_t memory_kib = 19456; // OWASP's Argon2id minimum (19 MiB)
    uint32_t lanes = 1;
};

Result<std::string> hash_password(const std::string& password, const PasswordCost& cost = {});
bool verify_password(const std::string& password, const std::string& encoded);
// Spends the time of one verification, so that unknown users answer as slowly as known ones.
void burn_password_check(const std::string& password);
// A clear message when a new password is too weak, or "".
std::string password_problem(const std::string& password);

} // namespace codepilot::auth
