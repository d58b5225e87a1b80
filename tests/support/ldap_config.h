// The LDAP settings that match the seeded test directory (tests/services/directory.ldif), over
// StartTLS with the test CA. The service account's password comes by reference, as in
// production: an environment variable.
#pragma once

#include "config/config.h"
#include "support/test_services.h"

#include <cstdlib>

namespace codepilot::testenv {

inline constexpr const char* kTestLdapBindPassword = "service-secret";
inline constexpr const char* kTestLdapBindPasswordEnv = "CODEPILOT_TEST_LDAP_BIND_PASSWORD";

inline config::LdapConfig test_ldap_config() {
    ::setenv(kTestLdapBindPasswordEnv, kTestLdapBindPassword, 1);
    config::LdapConfig c;
    c.enabled = true;
    c.url = service_url("CODEPILOT_TEST_LDAP_URL");
    c.start_tls = true;
    c.ca_file = service_url("CODEPILOT_TEST_LDAP_CA");
    c.bind_dn = "cn=codepilot-service,dc=codepilot,dc=test";
    c.bind_password_env = kTestLdapBindPasswordEnv;
    c.base_dn = "ou=people,dc=codepilot,dc=test";
    c.user_filter = "(&(objectClass=inetOrgPerson)(uid={username}))";
    c.group_base_dn = "ou=groups,dc=codepilot,dc=test";
    c.group_filter = "(&(objectClass=posixGroup)(memberUid={username}))";
    c.timeout_ms = 3000;
    c.group_map = {{"cn=platform-admins,ou=groups,dc=codepilot,dc=test", "platform", "admin"},
                   {"cn=developers,ou=groups,dc=codepilot,dc=test", "platform", "developer"},
                   {"cn=developers,ou=groups,dc=codepilot,dc=test", "payments", "developer"},
                   {"cn=auditors,ou=groups,dc=codepilot,dc=test", "payments", "auditor"}};
    return c;
}

} // namespace codepilot::testenv
