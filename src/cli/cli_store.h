// Internal to the CLI: the store the admin commands work on, opened as `serve` would, and the
// audit record each change leaves (actor "cli:<OS user>").
#pragma once

#include "config/config.h"
#include "store/store.h"

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace codepilot::cli {

struct StoreFlags {
    std::string config_path, data_dir, store_url;
};
void add_store_flags(CLI::App* cmd, StoreFlags& flags);
// Who the CLI acts as in audit records and stored rows: "cli:<OS user>".
std::string cli_actor();
// Prints "error: message" to stderr; returns `code`.
int fail(const std::string& message, int code = 1);

struct OpenStore {
    config::Config config;
    std::unique_ptr<store::Database> db;
    std::unique_ptr<store::IdentityStore> identities;
    // A change made from the command line, recorded in the audit trail like the API's,
    // linked with the server's chain key; waits for the commit.
    Status record(const std::string& action, const std::string& object, nlohmann::json before,
                  nlohmann::json after);
};
Result<OpenStore> open_store(const StoreFlags& flags);

// `codepilot model register|list|load|unload|promote|rollback|compare` (model_commands.cpp).
void add_model_commands(CLI::App* model_cmd,
                        std::vector<std::pair<CLI::App*, std::function<int()>>>& commands);

// `codepilot guard scan` (guard_commands.cpp).
void add_guard_commands(CLI::App& app, std::vector<std::pair<CLI::App*, std::function<int()>>>& commands);

} // namespace codepilot::cli
