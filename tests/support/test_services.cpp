#include "support/test_services.h"

#include "store/store.h"

#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>

namespace codepilot::testenv {

std::string service_url(const std::string& name) {
    if (const char* v = std::getenv(name.c_str()); v && *v) return v;
    std::ifstream in(CODEPILOT_TEST_SERVICES_ENV);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
    ADD_FAILURE() << name
                  << " is not set: start the test services with `scripts/test_services.sh start build` "
                  << "(make test does it)";
    return "";
}

std::string tls_file(const std::string& name) {
    auto dir = service_url("CODEPILOT_TEST_TLS_DIR");
    return dir.empty() ? "" : dir + "/" + name;
}

PostgresDatabase::PostgresDatabase() {
    admin_url_ = service_url("CODEPILOT_TEST_PG_URL");
    if (admin_url_.empty()) return;
    name_ = "cp_test_" + store::IdentityStore::new_id().substr(0, 16);
    auto admin = store::open_database(admin_url_, 1);
    if (!admin) {
        ADD_FAILURE() << "cannot reach the test PostgreSQL: " << admin.error().message;
        return;
    }
    if (auto r = (*admin)->query("CREATE DATABASE " + name_); !r) { // a name we made: no user input
        ADD_FAILURE() << "CREATE DATABASE failed: " << r.error().message;
        return;
    }
    auto slash = admin_url_.rfind('/');
    url_ = admin_url_.substr(0, slash + 1) + name_;
}

PostgresDatabase::~PostgresDatabase() {
    if (url_.empty()) return;
    auto admin = store::open_database(admin_url_, 1);
    if (admin) (void)(*admin)->query("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

} // namespace codepilot::testenv
