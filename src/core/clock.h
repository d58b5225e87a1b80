// Wall-clock time as unix milliseconds (record timestamps; injectable clocks default to it).
#pragma once

#include <chrono>
#include <cstdint>

namespace codepilot {

inline int64_t unix_millis() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace codepilot
