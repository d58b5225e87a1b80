// The TOML config as an admin (or a broken deploy script) writes it: parse_config must turn any
// bytes into a Config or an error that names the source, and a Config it returns must pass
// validate() or fail it with a message; never a crash, an exception or a hang.
#include "config/config.h"
#include "fuzz_check.h"

using namespace codepilot;

namespace {
void check(bool ok, const char* what) {
    fuzz_check(ok, "fuzz_config", what);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    auto config = config::parse_config(text, "fuzz.toml");
    if (!config) {
        check(!config.error().message.empty(), "a refused config has no message");
        return 0;
    }
    if (auto st = config::validate(*config); !st)
        check(!st.error().message.empty(), "an invalid config has no message");
    (void)config::store_url(*config);
    if (!config->quota.redis_url.empty()) (void)config::parse_redis_url(config->quota.redis_url);
    return 0;
}
