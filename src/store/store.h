// The store module's public face: a database (SQLite or PostgreSQL, chosen by URL), its
// migrations and the typed repositories. SQL never leaves this module.
#pragma once

#include "store/database.h"
#include "store/identity_store.h"
#include "store/migrations.h"

namespace codepilot::store {

// Opens the database and applies missing migrations.
Result<std::unique_ptr<Database>> open_and_migrate(const std::string& url, int pool_size = 4);

} // namespace codepilot::store
