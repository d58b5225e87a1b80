#include "core/secret_reference.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace codepilot {

Result<std::string> read_secret(const SecretReference& ref) {
    if (!ref.env.empty()) {
        const char* value = std::getenv(ref.env.c_str());
        if (!value)
            return make_error(ErrorCode::unavailable,
                              ref.env_key + ": the environment variable " + ref.env + " is not set");
        return std::string(value);
    }
    if (ref.file.empty()) return std::string();
    std::ifstream in(ref.file);
    if (!in)
        return make_error(ErrorCode::unavailable,
                          ref.file_key + ": cannot read " + ref.file + ": " + std::strerror(errno));
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

} // namespace codepilot
