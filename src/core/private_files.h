// Files and directories that only the server's own user may read: the data dir (0700), the
// database and the key files (0600). Created with those modes, never through a symlink, and
// checked at start so that a looser mode set by hand or by an older version is reported.
#pragma once

#include "core/result.h"

#include <optional>
#include <string>
#include <string_view>

namespace codepilot {

inline constexpr unsigned kPrivateDirMode = 0700;
inline constexpr unsigned kPrivateFileMode = 0600;

// mkdir -p; every directory it creates is 0700 (existing ones are left as they are).
Status make_private_dir(const std::string& path);
// A new file (O_EXCL, O_NOFOLLOW) with mode 0600 holding `content`, synced to disk. Fails
// when the path already exists, so a planted file or link is never written through.
Status write_private_file(const std::string& path, std::string_view content);
// Creates an empty 0600 file unless the path exists (a file SQLite will then open).
Status create_private_file_if_missing(const std::string& path);
// The permission bits (e.g. 0644), nullopt when the path does not exist.
std::optional<unsigned> permission_bits(const std::string& path);
// "PATH has mode 0644, looser than 0600: ..." when `path` grants more than `allowed`; nullopt
// when it does not, or does not exist.
std::optional<std::string> looser_mode_warning(const std::string& path, unsigned allowed);

} // namespace codepilot
