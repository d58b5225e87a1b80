// The real PostgreSQL and slapd that scripts/test_services.sh starts for the suite (make test
// does it). Their URLs come from the environment or from <build>/test-services.env.
#pragma once

#include <string>

namespace codepilot::testenv {

// The value of a test-services variable; fails the current test with a clear message (and
// returns "") when the services are not running.
std::string service_url(const std::string& name);

// A file of the throw-away CA's directory (CODEPILOT_TEST_TLS_DIR): ca.pem, other-ca.pem (a CA
// that signed nothing here), server.{pem,key} (127.0.0.1 and localhost), client.{pem,key},
// elsewhere.{pem,key} (the test CA's, for another host name).
std::string tls_file(const std::string& name);

// A fresh, empty PostgreSQL database for one test, dropped on destruction.
class PostgresDatabase {
public:
    PostgresDatabase();
    ~PostgresDatabase();
    const std::string& url() const { return url_; }
    bool ok() const { return !url_.empty(); }

private:
    std::string admin_url_, name_, url_;
};

} // namespace codepilot::testenv
