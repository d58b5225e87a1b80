// LDAP and OIDC settings as JSON for the admin API and the settings table: the same keys as
// the TOML [auth.ldap] / [auth.oidc] sections, unknown keys refused, secrets masked on the way out.
#pragma once

#include "config/config.h"
#include "core/result.h"

#include <nlohmann/json.hpp>

namespace codepilot::auth {

inline constexpr const char* kMaskedSecret = "********";

nlohmann::json ldap_to_json(const config::LdapConfig& ldap, bool mask_secrets);
nlohmann::json oidc_to_json(const config::OidcConfig& oidc);
// Fields absent from `body` keep their value from `base`; a masked password keeps the old one.
Result<config::LdapConfig> ldap_from_json(const nlohmann::json& body, const config::LdapConfig& base);
Result<config::OidcConfig> oidc_from_json(const nlohmann::json& body, const config::OidcConfig& base);

} // namespace codepilot::auth
