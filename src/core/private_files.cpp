#include "core/private_files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace codepilot {
namespace {

namespace fs = std::filesystem;

Error io_error(const std::string& what, const std::string& path, int err) {
    return make_error(ErrorCode::unavailable, what + " " + path + ": " + std::strerror(err));
}

std::string octal(unsigned mode) {
    char text[16];
    std::snprintf(text, sizeof text, "%04o", mode & 07777);
    return text;
}

} // namespace

Status make_private_dir(const std::string& path) {
    if (path.empty()) return Ok{};
    std::vector<fs::path> missing; // deepest first
    for (fs::path p = fs::path(path).lexically_normal(); !p.empty(); p = p.parent_path()) {
        std::error_code ec;
        if (fs::exists(p, ec)) break;
        missing.push_back(p);
        if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        // mkdir's mode is cut by the umask, which can only take bits away from 0700.
        if (::mkdir(it->c_str(), kPrivateDirMode) != 0 && errno != EEXIST)
            return io_error("cannot create directory", it->string(), errno);
    }
    return Ok{};
}

Status write_private_file(const std::string& path, std::string_view content) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kPrivateFileMode);
    if (fd < 0) return io_error("cannot create", path, errno);
    size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = errno;
            ::close(fd);
            ::unlink(path.c_str());
            return io_error("cannot write", path, err);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int err = errno;
        ::unlink(path.c_str());
        return io_error("cannot write", path, err);
    }
    return Ok{};
}

Status create_private_file_if_missing(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kPrivateFileMode);
    if (fd >= 0) {
        ::close(fd);
        return Ok{};
    }
    if (errno == EEXIST) return Ok{};
    return io_error("cannot create", path, errno);
}

std::optional<unsigned> permission_bits(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return static_cast<unsigned>(st.st_mode & 07777);
}

std::optional<std::string> looser_mode_warning(const std::string& path, unsigned allowed) {
    auto mode = permission_bits(path);
    if (!mode || (*mode & 0777 & ~allowed) == 0) return std::nullopt;
    return path + " has mode " + octal(*mode & 0777) + ", looser than " + octal(allowed) +
           ": other local users may read it (chmod " + octal(allowed).substr(1) + " " + path + ")";
}

} // namespace codepilot
