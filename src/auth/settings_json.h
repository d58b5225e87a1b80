// LDAP and OIDC settings as JSON for the admin API and the settings table: the same keys as
// the TOML [auth.ldap] / [auth.oidc] sections, unknown keys refused. They hold no secret: the
// LDAP service password is named by reference (bind_password_file / bind_password_env) only.
#pragma once

#include "config/config.h"
#include "core/result.h"
#include "store/identity_store.h"

#include <nlohmann/json.hpp>

namespace codepilot::auth {

nlohmann::json ldap_to_json(const config::LdapConfig& ldap);
nlohmann::json oidc_to_json(const config::OidcConfig& oidc);
// Fields absent from `body` keep their value from `base`. A literal bind_password is refused,
// and so is allow_insecure: the transport opt-outs come from the config file only.
Result<config::LdapConfig> ldap_from_json(const nlohmann::json& body, const config::LdapConfig& base);
Result<config::OidcConfig> oidc_from_json(const nlohmann::json& body, const config::OidcConfig& base);
// Whether an enabled directory's password reference can be read now (the admin API answers
// 400 at once rather than sign-ins failing later); invalid_argument naming the field if not.
Status check_bind_password(const config::LdapConfig& ldap);

// Saved settings from older versions held the LDAP service password in clear: drop it from
// the row (rewritten without it, with a warning in the log) before the settings are loaded.
Status scrub_saved_secrets(store::IdentityStore& store);

} // namespace codepilot::auth
