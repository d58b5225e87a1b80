#include "cli/cli_store.h"

#include "audit/audit.h"
#include "core/clock.h"

#include <future>
#include <iostream>
#include <unistd.h>

namespace codepilot::cli {

void add_store_flags(CLI::App* cmd, StoreFlags& f) {
    cmd->add_option("--config", f.config_path, "TOML configuration file (as for serve)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--data-dir", f.data_dir, "data directory (as for serve; default ./data)");
    cmd->add_option("--store", f.store_url, "store URL (overrides store.url)");
}

std::string cli_actor() {
    const char* user = std::getenv("USER");
    return std::string("cli:") + (user ? user : std::to_string(::getuid()));
}

int fail(const std::string& message, int code) {
    std::cerr << "error: " << message << "\n";
    return code;
}

Status OpenStore::record(const std::string& action, const std::string& object, nlohmann::json before,
                         nlohmann::json after) {
    audit::Options options;
    options.durability = audit::Durability::sync;
    auto keys = audit::load_chain_keys(config.audit.chain_key_file, config.data_dir, true);
    if (!keys) return keys.error();
    options.chain_keys = std::move(*keys);
    options.prepare_threads = 1;
    audit::AuditLog log(*db, options, nullptr);
    audit::Record r;
    r.kind = "admin";
    r.at_ms = unix_millis();
    r.username = cli_actor();
    r.auth_method = "cli";
    r.action = action;
    r.object = object;
    r.before = std::move(before);
    r.after = std::move(after);
    std::promise<Status> committed;
    log.append(std::move(r), [&committed](Status s) { committed.set_value(std::move(s)); });
    return committed.get_future().get();
}

Result<OpenStore> open_store(const StoreFlags& f) {
    config::Config cfg;
    if (!f.config_path.empty()) {
        auto loaded = config::load_config_file(f.config_path);
        if (!loaded) return loaded.error();
        cfg = *loaded;
    }
    if (!f.data_dir.empty()) cfg.data_dir = f.data_dir;
    if (!f.store_url.empty()) cfg.store.url = f.store_url;
    auto db = store::open_and_migrate(config::store_url(cfg), 1);
    if (!db) return db.error();
    OpenStore out;
    out.config = cfg;
    out.db = std::move(*db);
    out.identities = std::make_unique<store::IdentityStore>(*out.db);
    return out;
}

} // namespace codepilot::cli
