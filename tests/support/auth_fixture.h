// A server with authentication on (a SQLite file store) and helpers to make tenants, people and
// keys directly in its store, then call it over HTTP with a bearer token.
#pragma once

#include "auth/auth.h"
#include "auth/password.h"
#include "support/http_client.h"
#include "support/test_env.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <memory>
#include <unistd.h>

namespace codepilot::testenv {

class AuthServerTest : public ::testing::Test {
protected:
    virtual void configure(config::Config&) {}

    void SetUp() override {
        auto c = test_config();
        c.auth.enabled = true;
        // A file, as in production, so that credential caching runs on PRAGMA data_version.
        data_dir_ = std::filesystem::temp_directory_path() / ("cp-auth-" + std::to_string(::getpid()) + "-" +
                                                              store::IdentityStore::new_id().substr(0, 8));
        c.data_dir = data_dir_.string();
        c.store.url = "";
        configure(c);
        server_ = std::make_unique<TestServer>(c);
        // The first start wrote the owner key to a file, as for an operator.
        ASSERT_TRUE(app().bootstrap_key_file());
        std::ifstream(*app().bootstrap_key_file()) >> owner_key_;
        ASSERT_FALSE(owner_key_.empty());
    }

    app::Application& app() { return server_->app(); }
    store::IdentityStore& ids() { return app().identities(); }
    int port() { return server_->port(); }

    store::Tenant tenant(const std::string& name) {
        auto found = ids().find_tenant(name);
        if (found && *found) return **found;
        auto t = ids().create_tenant(name);
        EXPECT_TRUE(t) << t.error().message;
        return *t;
    }

    // A local person (with a password when given) and a membership.
    store::User member(const std::string& tenant_name, const std::string& username, const std::string& role,
                       const std::string& password = "") {
        auto existing = ids().find_user(username);
        store::User u;
        if (existing && *existing) {
            u = **existing;
        } else {
            u.username = username;
            if (!password.empty()) u.password_hash = *auth::hash_password(password, {1, 1024, 1});
            u = *ids().create_user(u);
        }
        EXPECT_TRUE(ids().set_membership(tenant(tenant_name).id, u.id, role));
        return u;
    }

    std::string key(const std::string& tenant_name, const std::string& username,
                    const std::string& scopes = "completion,chat,embeddings,admin",
                    std::optional<int64_t> ttl = std::nullopt) {
        auto k = auth::issue_api_key(ids(), tenant_name, username, *auth::parse_scopes(scopes), ttl, "test",
                                     "test");
        EXPECT_TRUE(k) << k.error().message;
        return k ? k->plaintext : "";
    }

    HttpResponse call(const std::string& method, const std::string& path, const std::string& token,
                      const nlohmann::json& body = nullptr) {
        std::map<std::string, std::string> headers;
        if (!token.empty()) headers["Authorization"] = "Bearer " + token;
        if (!body.is_null()) headers["Content-Type"] = "application/json";
        return http(port(), method, path, body.is_null() ? "" : body.dump(), headers);
    }

    void TearDown() override {
        server_.reset();
        std::filesystem::remove_all(data_dir_);
    }

    std::filesystem::path data_dir_;
    std::unique_ptr<TestServer> server_;
    std::string owner_key_;
};

} // namespace codepilot::testenv
