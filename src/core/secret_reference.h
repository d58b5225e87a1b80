// A secret named by the configuration, never held in it: the first line of a file (re-read at
// each use, so a rotated secret needs no restart) or an environment variable. The LDAP service
// password and the Redis AUTH password are read this way.
#pragma once

#include "core/result.h"

#include <string>
#include <string_view>

namespace codepilot {

struct SecretReference {
    std::string file;     // its first line (a trailing CR dropped) ...
    std::string env;      // ... or this environment variable (it wins when both are set)
    std::string file_key; // the config keys, for messages: "bind_password_file" ...
    std::string env_key;
};

// The secret; "" when neither is set. unavailable, naming the key: it cannot be read now.
Result<std::string> read_secret(const SecretReference& ref);

} // namespace codepilot
