// Bytes from the system's CSPRNG (OpenSSL's RAND_bytes) for keys, tokens, ids and nonces. A
// failed RNG must never yield a predictable secret, so failure ends the process (fail closed)
// instead of handing back whatever the buffer held. Needs OpenSSL::Crypto where it is used.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <openssl/rand.h>

namespace codepilot {

inline void secure_random(unsigned char* out, size_t n) {
    if (RAND_bytes(out, static_cast<int>(n)) != 1) {
        std::fputs("fatal: the system random number generator failed; no secret can be made\n", stderr);
        std::abort();
    }
}

} // namespace codepilot
