// LDAP sign-in (OpenLDAP libldap): service bind → search for the user with the configured
// filter, the name escaped per RFC 4515 → bind as the found DN with the given password →
// read groups (memberOf on the entry, or a group search for POSIX groups). The service
// account's password is read from its file or environment variable at each bind.
#pragma once

#include "config/config.h"
#include "core/result.h"

#include <string>
#include <vector>

namespace codepilot::auth {

// RFC 4515 value escaping: * ( ) \ NUL become \2a \28 \29 \5c \00.
std::string escape_ldap_filter_value(std::string_view value);

struct DirectoryUser {
    std::string dn, display_name, email;
    std::string entry_uuid; // RFC 4530 entryUUID when the directory has it (survives renames and moves)
    std::vector<std::string> groups; // group DNs
};

// The service account's password from bind_password_file (its first line) or
// bind_password_env; "" when neither is set. unavailable: the reference cannot be read.
Result<std::string> read_bind_password(const config::LdapConfig& config);

enum class DirectoryFailure { invalid_credentials, unavailable };

class LdapDirectory {
public:
    // Logs a warning when the password file is readable by others or the reference is unset.
    explicit LdapDirectory(config::LdapConfig config);
    // invalid_argument: wrong user or password; unavailable: the directory cannot be reached
    // or refused the service account (the message says which, for the server log).
    Result<DirectoryUser> authenticate(const std::string& username, const std::string& password) const;
    // Tenant → role from the configured group map (the highest role wins within a tenant).
    std::vector<std::pair<std::string, std::string>> map_groups(const std::vector<std::string>& groups) const;
    const config::LdapConfig& config() const { return config_; }

private:
    config::LdapConfig config_;
};

} // namespace codepilot::auth
