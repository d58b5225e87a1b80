// `codepilot migrate | tenant | user | key`: the admin operations on the store directly, for
// bootstrap and scripts. Each takes the same --config/--data-dir as `serve`.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace codepilot::cli {

// Adds the subcommands to `app`; the returned function runs the one that was parsed and
// returns its exit code, or -1 when none of them was.
std::function<int()> add_admin_commands(CLI::App& app);

} // namespace codepilot::cli
