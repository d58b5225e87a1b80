// A harness's invariant: a broken one aborts, so libFuzzer keeps the input as a finding.
#pragma once

#include <cstdio>
#include <cstdlib>

inline void fuzz_check(bool ok, const char* harness, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "%s: invariant broken: %s\n", harness, what);
    std::abort();
}
