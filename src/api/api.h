// The API layer: endpoint handlers, one file per API family, registered on a Router.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "audit/audit.h"
#include "auth/auth.h"
#include "quota/quota.h"
#include "engine/engine.h"
#include "metrics/metrics.h"
#include "server/server.h"

namespace codepilot::api {

class CompletionService;

struct ApiContext {
    engine::Engine* engine = nullptr;
    CompletionService* completions = nullptr;
    metrics::Registry* metrics = nullptr;
    std::string version = "0.0.0";
    std::string git_sha = "unknown";
    std::string model_id;
    int max_tokens_cap = 4096;
    int64_t created = 0;            // unix time the model was loaded
    std::atomic<bool> ready{false}; // model loaded and serving
    auth::Authenticator* auth = nullptr;  // identity and RBAC; the store behind it
    bool auth_enabled = true;             // false: every caller is a local server owner (loopback only)
    audit::AuditLog* audit = nullptr;     // one record per call and per admin change
    quota::QuotaLedger* quotas = nullptr; // limits on inference calls, and usage accounting
};

// Registers `handler` for `method` `path`, bound to `context`.
using ContextHandler = server::asio::awaitable<void> (*)(server::Exchange&, ApiContext&);
void add_route(server::Router& router, server::http::verb method, const char* path,
               std::shared_ptr<ApiContext> context, ContextHandler handler);

void register_openai_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_health_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_code_completion_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_auth_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_admin_routes(server::Router& router, std::shared_ptr<ApiContext> context);
// Authentication and the RBAC table (auth/access_rules) in front of every route.
void install_access_gate(server::Router& router, std::shared_ptr<ApiContext> context);
// The caller the gate admitted (a local owner when no gate ran).
const auth::Principal& caller_of(const server::Exchange& exchange);

}  // namespace codepilot::api
