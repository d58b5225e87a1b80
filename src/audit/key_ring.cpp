// Key rings for the audit trail: prompt encryption keys and chain keys, parsed from one form,
// and the chain key generated into the data directory when none is configured.
#include "audit/audit.h"
#include "core/base64.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace codepilot::audit {

Result<KeyRing> parse_key_ring(const std::string& text, const std::string& what) {
    KeyRing out;
    std::string normalized = text;
    for (auto& c : normalized)
        if (c == ';') c = '\n';
    std::istringstream lines(normalized);
    std::string line;
    while (std::getline(lines, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0)
            return make_error(ErrorCode::invalid_argument, what + ": each line is id:base64url(32 bytes)");
        std::string id = line.substr(0, colon);
        auto key = base64url_decode(line.substr(colon + 1));
        if (!key || key->size() != 32)
            return make_error(ErrorCode::invalid_argument,
                              what + ": key '" + id + "' is not 32 bytes in base64url");
        if (out.keys.count(id))
            return make_error(ErrorCode::invalid_argument, what + ": key id '" + id + "' appears twice");
        if (out.current.empty()) out.current = id;
        out.keys[id] = *key;
    }
    if (out.keys.empty()) return make_error(ErrorCode::invalid_argument, what + ": none given");
    return out;
}

Result<PromptKeys> parse_prompt_keys(const std::string& text) {
    return parse_key_ring(text, "audit keys");
}

namespace {

Result<std::string> read_file(const std::string& path, const std::string& what) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorCode::invalid_argument, "cannot read " + what + " file " + path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// A key file others can read gives away what it protects; said once at start, not refused,
// so that a mounted secret (often 0644 in containers) still works.
void warn_if_readable_by_others(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077))
        spdlog::warn("audit: {} is readable by group or others (mode {:o}); chmod 600 it", path,
                     st.st_mode & 0777);
}

// One fresh key, written with O_EXCL so that two processes starting together cannot both
// create one: the loser gets an empty ring and reads the winner's.
Result<KeyRing> create_chain_key_file(const std::string& path) {
    unsigned char raw[32], id_bytes[4];
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(id_bytes, sizeof id_bytes) != 1)
        return make_error(ErrorCode::internal, "audit: no randomness for a chain key");
    const std::string id = "auto-" + hex_encode(id_bytes, sizeof id_bytes);
    const std::string secret(reinterpret_cast<const char*>(raw), sizeof raw);
    const std::string text = "# audit chain keys: id:base64url(32 bytes), newest first\n" + id + ":" +
                             base64url_encode(secret) + "\n";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return KeyRing{};
        return make_error(ErrorCode::internal, "audit: cannot create " + path + ": " + std::strerror(errno));
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
        ::unlink(path.c_str());
        return make_error(ErrorCode::internal, "audit: cannot write " + path);
    }
    spdlog::warn("audit: no chain key configured; generated one in {} (keep a copy outside this host: "
                 "verify needs it)",
                 path);
    KeyRing ring;
    ring.current = id;
    ring.keys[id] = secret;
    return ring;
}

} // namespace

Result<PromptKeys> load_prompt_keys(const std::string& file, const char* env_var) {
    if (!file.empty()) {
        auto text = read_file(file, "audit key");
        if (!text) return text.error();
        return parse_prompt_keys(*text);
    }
    const char* env = env_var ? std::getenv(env_var) : nullptr;
    if (!env || !*env)
        return make_error(ErrorCode::invalid_argument,
                          std::string("audit.store_prompts = \"encrypted\" needs audit.key_file or ") +
                              (env_var ? env_var : "a key"));
    return parse_prompt_keys(env);
}

Result<KeyRing> load_chain_keys(const std::string& file, const std::string& data_dir, bool create,
                                const char* env_var) {
    if (!file.empty()) {
        auto text = read_file(file, "audit chain key");
        if (!text) return text.error();
        warn_if_readable_by_others(file);
        return parse_key_ring(*text, "audit chain keys (" + file + ")");
    }
    if (const char* env = env_var ? std::getenv(env_var) : nullptr; env && *env)
        return parse_key_ring(env, std::string("audit chain keys ($") + env_var + ")");
    const std::string path = (std::filesystem::path(data_dir) / kChainKeyFileName).string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        if (!create) return KeyRing{};
        std::filesystem::create_directories(data_dir, ec);
        auto made = create_chain_key_file(path);
        if (!made || !made->keys.empty()) return made;
    }
    auto text = read_file(path, "audit chain key");
    if (!text) return text.error();
    warn_if_readable_by_others(path);
    return parse_key_ring(*text, "audit chain keys (" + path + ")");
}

store::ChainKey current_chain_key(const KeyRing& ring) {
    if (ring.current.empty()) return {};
    return store::ChainKey{ring.current, ring.keys.at(ring.current)};
}

} // namespace codepilot::audit
