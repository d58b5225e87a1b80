// Anchors: the chain's head exported outside the database (an append-only file, syslog), and
// read back by `audit verify --anchors`.
#include "audit/audit.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <syslog.h>
#include <unistd.h>

namespace codepilot::audit {

std::string anchor_line(const Anchor& anchor) {
    return nlohmann::json{{"at_ms", anchor.at_ms}, {"seq", anchor.seq}, {"hash", anchor.hash}}.dump();
}

Status write_anchor(const AnchorOptions& options, const Anchor& anchor) {
    const std::string line = anchor_line(anchor) + "\n";
    if (options.syslog) syslog(LOG_AUTH | LOG_NOTICE, "codepilot audit anchor %s", line.c_str());
    if (options.file.empty()) return Ok{};
    // Opened per anchor (once a minute): a rotated or re-mounted file is picked up, and
    // O_APPEND keeps every line whole at the end whoever else appends.
    int fd = ::open(options.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return make_error(ErrorCode::unavailable,
                          "cannot open anchor file " + options.file + ": " + std::strerror(errno));
    const bool ok =
        ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok)
        return make_error(ErrorCode::unavailable,
                          "cannot write anchor file " + options.file + ": " + std::strerror(saved));
    return Ok{};
}

Result<std::vector<Anchor>> read_anchors(const std::string& path) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorCode::invalid_argument, "cannot read anchor file " + path);
    std::vector<Anchor> out;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (line.empty()) continue;
        const std::string where = path + ":" + std::to_string(number);
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_integer() ||
            j["seq"].get<int64_t>() < 0 || !j.contains("hash") || !j["hash"].is_string())
            return make_error(ErrorCode::invalid_argument,
                              where + ": not an anchor ({\"seq\":…,\"hash\":\"…\"})");
        Anchor a;
        a.seq = j["seq"].get<int64_t>();
        a.hash = j["hash"].get<std::string>();
        a.at_ms = j.value("at_ms", int64_t{0});
        a.where = where;
        out.push_back(std::move(a));
    }
    return out;
}

} // namespace codepilot::audit
