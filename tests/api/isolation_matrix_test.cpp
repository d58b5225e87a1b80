// The tenant-isolation matrix: every registered route × every role (owner, admin, developer,
// auditor, viewer, server owner, no credential) × the caller's own tenant / another tenant,
// each with the decision it must get. The expectations are written here, from the documented
// roles (docs/identity.md), not read from the route table: a route that is registered but has
// no row below fails the test, and so does any decision that differs.
#include "support/auth_fixture.h"

#include <set>

namespace codepilot::testenv {
namespace {

enum class Need { probe, public_route, any_credential, metrics, perm };
enum class Perm {
    models_read,
    completion,
    chat,
    embeddings,
    tenant_read,
    members_write,
    keys_own,
    keys_manage,
    audit_read,
    usage_read,
    tenant_delete,
    server_admin,
    quotas_write,
    guard_write
};

struct Row {
    Need need;
    Perm perm = Perm::models_read;
    bool tenant_scoped = false; // the path (or ?tenant=) names the tenant the check is made in
};

// The specification: what each route needs.
const std::map<std::string, Row>& matrix() {
    static const std::map<std::string, Row> rows = {
        {"GET /health", {Need::probe}},
        {"GET /ready", {Need::probe}},
        {"POST /auth/login", {Need::public_route}},
        {"POST /auth/logout", {Need::any_credential}},
        {"GET /auth/me", {Need::any_credential}},
        {"GET /metrics", {Need::metrics}},
        {"GET /v1/models", {Need::perm, Perm::models_read}},
        {"GET /v1/models/{model}", {Need::perm, Perm::models_read}},
        {"POST /v1/completions", {Need::perm, Perm::completion}},
        {"POST /v1/chat/completions", {Need::perm, Perm::chat}},
        {"POST /v1/embeddings", {Need::perm, Perm::embeddings}},
        {"POST /v1/events", {Need::perm, Perm::completion}},
        {"GET /v1/health", {Need::perm, Perm::models_read}},
        {"POST /v1/health", {Need::perm, Perm::models_read}},
        {"GET /v1beta/server_setting", {Need::perm, Perm::models_read}},
        {"GET /v1beta/models", {Need::perm, Perm::models_read}},
        {"POST /infill", {Need::perm, Perm::completion}},
        {"POST /complete", {Need::perm, Perm::completion}},
        {"POST /v1/code/complete", {Need::perm, Perm::completion}},
        {"POST /v1/engines/{engine}/completions", {Need::perm, Perm::completion}},
        {"GET /admin/v1/roles", {Need::any_credential}},
        {"GET /admin/v1/models", {Need::perm, Perm::server_admin}},
        {"PUT /admin/v1/models/{model}/canary", {Need::perm, Perm::server_admin}},
        {"POST /admin/v1/models", {Need::perm, Perm::server_admin}},
        {"POST /admin/v1/models/{model}/load", {Need::perm, Perm::server_admin}},
        {"POST /admin/v1/models/{model}/unload", {Need::perm, Perm::server_admin}},
        {"DELETE /admin/v1/models/{model}", {Need::perm, Perm::server_admin}},
        {"GET /admin/v1/models/{model}/compare", {Need::perm, Perm::server_admin}},
        {"GET /admin/v1/tenants", {Need::any_credential}},
        {"POST /admin/v1/tenants", {Need::perm, Perm::server_admin}},
        {"GET /admin/v1/tenants/{tenant}", {Need::perm, Perm::tenant_read, true}},
        {"DELETE /admin/v1/tenants/{tenant}", {Need::perm, Perm::tenant_delete, true}},
        {"GET /admin/v1/tenants/{tenant}/quotas", {Need::perm, Perm::tenant_read, true}},
        {"PUT /admin/v1/tenants/{tenant}/quotas", {Need::perm, Perm::quotas_write, true}},
        {"GET /admin/v1/tenants/{tenant}/guard", {Need::perm, Perm::audit_read, true}},
        {"PUT /admin/v1/tenants/{tenant}/guard", {Need::perm, Perm::guard_write, true}},
        {"DELETE /admin/v1/tenants/{tenant}/guard", {Need::perm, Perm::guard_write, true}},
        {"POST /admin/v1/tenants/{tenant}/guard/scan", {Need::perm, Perm::guard_write, true}},
        {"GET /admin/v1/usage", {Need::perm, Perm::usage_read, true}},
        {"GET /admin/v1/usage/events", {Need::perm, Perm::usage_read, true}},
        {"GET /admin/v1/tenants/{tenant}/members", {Need::perm, Perm::tenant_read, true}},
        {"POST /admin/v1/tenants/{tenant}/members", {Need::perm, Perm::members_write, true}},
        {"PUT /admin/v1/tenants/{tenant}/members/{user}", {Need::perm, Perm::members_write, true}},
        {"DELETE /admin/v1/tenants/{tenant}/members/{user}", {Need::perm, Perm::members_write, true}},
        {"GET /admin/v1/tenants/{tenant}/keys", {Need::perm, Perm::keys_own, true}},
        {"POST /admin/v1/tenants/{tenant}/keys", {Need::perm, Perm::keys_own, true}},
        {"DELETE /admin/v1/tenants/{tenant}/keys/{prefix}", {Need::perm, Perm::keys_own, true}},
        {"GET /admin/v1/tenants/{tenant}/certificates", {Need::perm, Perm::keys_manage, true}},
        {"POST /admin/v1/tenants/{tenant}/certificates", {Need::perm, Perm::keys_manage, true}},
        {"DELETE /admin/v1/tenants/{tenant}/certificates/{id}", {Need::perm, Perm::keys_manage, true}},
        {"POST /admin/v1/users", {Need::perm, Perm::server_admin}},
        {"GET /admin/v1/users/{user}", {Need::perm, Perm::server_admin}},
        {"PATCH /admin/v1/users/{user}", {Need::perm, Perm::server_admin}},
        {"DELETE /admin/v1/users/{user}/sessions", {Need::perm, Perm::server_admin}},
        {"GET /admin/v1/settings/{name}", {Need::perm, Perm::server_admin}},
        {"PUT /admin/v1/settings/{name}", {Need::perm, Perm::server_admin}},
    };
    return rows;
}

// The documented roles (docs/identity.md), written out rather than taken from auth/.
bool role_has(const std::string& role, Perm p) {
    static const std::map<std::string, std::set<Perm>> roles = {
        {"owner",
         {Perm::models_read, Perm::completion, Perm::chat, Perm::embeddings, Perm::tenant_read,
          Perm::members_write, Perm::keys_own, Perm::keys_manage, Perm::audit_read, Perm::usage_read,
          Perm::tenant_delete, Perm::quotas_write, Perm::guard_write}},
        {"admin",
         {Perm::models_read, Perm::completion, Perm::chat, Perm::embeddings, Perm::tenant_read,
          Perm::members_write, Perm::keys_own, Perm::keys_manage, Perm::audit_read, Perm::usage_read,
          Perm::quotas_write, Perm::guard_write}},
        {"developer",
         {Perm::models_read, Perm::completion, Perm::chat, Perm::embeddings, Perm::tenant_read,
          Perm::keys_own}},
        {"auditor", {Perm::audit_read, Perm::usage_read}},
        {"viewer", {Perm::models_read, Perm::tenant_read}},
    };
    return roles.at(role).count(p) > 0;
}

enum class Decision { admitted, unauthenticated, forbidden, hidden };

const char* name(Decision d) {
    switch (d) {
    case Decision::admitted:
        return "admitted";
    case Decision::unauthenticated:
        return "401";
    case Decision::forbidden:
        return "403";
    case Decision::hidden:
        return "404 (tenant hidden)";
    }
    return "?";
}

Decision expected(const Row& row, const std::string& role, bool other_tenant) {
    if (row.need == Need::probe || row.need == Need::public_route || row.need == Need::metrics)
        return Decision::admitted; // metrics: public by default (auth.metrics_public)
    if (role == "none") return Decision::unauthenticated;
    if (row.need == Need::any_credential) return Decision::admitted;
    if (role == "server-owner") return Decision::admitted;
    if (row.tenant_scoped && other_tenant) return Decision::hidden;
    return role_has(role, row.perm) ? Decision::admitted : Decision::forbidden;
}

Decision observed(const HttpResponse& r) {
    if (r.status == 401) return Decision::unauthenticated;
    if (r.status == 403) return Decision::forbidden;
    if (r.status == 404) {
        auto body = nlohmann::json::parse(r.body, nullptr, false);
        if (body.is_object() && body["error"]["param"] == "tenant") return Decision::hidden;
    }
    return Decision::admitted;
}

const std::vector<std::string> kRoles = {"owner", "admin", "developer", "auditor", "viewer"};

class IsolationMatrixTest : public AuthServerTest {
protected:
    // Tenants alpha and beta, a member of each role in both, a target member and one of its
    // keys; keys of every role in alpha. Run again after each change a call may have made.
    void seed() {
        for (const std::string t : {"alpha", "beta"}) {
            tenant(t);
            for (const auto& role : kRoles) member(t, "u-" + role, role);
            member(t, "target", "developer");
        }
        for (const auto& role : kRoles) keys_[role] = key("alpha", "u-" + role);
        for (const std::string t : {"alpha", "beta"}) {
            auto issued =
                auth::issue_api_key(ids(), t, "target", auth::kAllScopes, std::nullopt, "victim", "test");
            ASSERT_TRUE(issued);
            victim_prefix_[t] = issued->record.prefix;
            // A client-certificate binding of the target member (made again once a call removed it).
            const std::string fingerprint(64, t == "alpha" ? 'a' : 'b');
            auto existing = ids().find_certificate_grant("fingerprint", fingerprint);
            ASSERT_TRUE(existing);
            if (!*existing) {
                store::CertificateBinding b{store::IdentityStore::new_id(),
                                            tenant(t).id,
                                            t,
                                            ids().find_user("target")->value().id,
                                            "target",
                                            "fingerprint",
                                            fingerprint,
                                            "victim",
                                            "completion",
                                            "test",
                                            0};
                ASSERT_TRUE(ids().create_certificate_binding(b));
                victim_binding_[t] = b.id;
            } else {
                victim_binding_[t] = (*existing)->binding.id;
            }
        }
    }

    std::string path_for(const std::string& pattern, const std::string& tenant_name) {
        std::string out = pattern;
        auto put = [&out](const std::string& param, const std::string& value) {
            if (auto at = out.find(param); at != std::string::npos) out.replace(at, param.size(), value);
        };
        put("{tenant}", tenant_name);
        put("{user}", "target");
        put("{prefix}", victim_prefix_[tenant_name]);
        put("{id}", victim_binding_[tenant_name]);
        put("{model}", app().model_id());
        put("{engine}", "codegen");
        put("{name}", "ldap");
        if (pattern.rfind("/admin/v1/usage", 0) == 0) out += "?tenant=" + tenant_name;
        return out;
    }

    std::map<std::string, std::string> keys_;
    std::map<std::string, std::string> victim_prefix_;
    std::map<std::string, std::string> victim_binding_;
};

TEST_F(IsolationMatrixTest, EveryRouteRoleAndTenantGetsItsDecision) {
    seed();
    std::vector<std::string> failures;
    int cases = 0;
    for (const auto& [method, pattern] : app().routes()) {
        const std::string route = method + " " + pattern;
        auto row = matrix().find(route);
        if (row == matrix().end()) {
            failures.push_back(route + ": registered, but has no row in the isolation matrix");
            continue;
        }
        std::vector<std::string> roles = kRoles;
        roles.push_back("server-owner");
        roles.push_back("none");
        for (const auto& role : roles) {
            for (bool other : {false, true}) {
                const std::string tenant_name = other ? "beta" : "alpha";
                const std::string token = role == "none"           ? ""
                                          : role == "server-owner" ? owner_key_
                                                                   : keys_[role];
                // An empty object fails every handler's validation: nothing changes, and the
                // status says whether the gate let it through (sign-in: 400, a field is missing).
                const nlohmann::json body = method == "GET" || method == "DELETE" ? nlohmann::json(nullptr)
                                                                                  : nlohmann::json::object();
                auto r = call(method, path_for(pattern, tenant_name), token, body);
                ++cases;
                const Decision want = expected(row->second, role, other), got = observed(r);
                if (want != got)
                    failures.push_back(route + " as " + role + " in " + (other ? "another" : "its own") +
                                       " tenant: expected " + name(want) + ", got " +
                                       std::to_string(r.status) + " " + r.body.substr(0, 160));
                if (got == Decision::admitted && method != "GET") seed(); // undo what it may have changed
            }
        }
    }
    // Rows for routes that are not registered would be dead specification.
    std::set<std::string> registered;
    for (const auto& [method, pattern] : app().routes()) registered.insert(method + " " + pattern);
    for (const auto& [route, _] : matrix())
        if (!registered.count(route))
            failures.push_back(route + ": in the matrix, but not a registered route");
    EXPECT_GT(cases, 500);
    for (const auto& f : failures) ADD_FAILURE() << f;
}

} // namespace
} // namespace codepilot::testenv
