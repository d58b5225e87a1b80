// The API layer: endpoint handlers, one file per API family, registered on a Router.
#pragma once

#include "audit/audit.h"
#include "auth/auth.h"
#include "auth/sign_in_throttle.h"
#include "core/worker_pool.h"
#include "engine/engine.h"
#include "inference/inference.h"
#include "inference/registry.h"
#include "metrics/metrics.h"
#include "quota/quota.h"
#include "server/server.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>

namespace codepilot::api {

class CompletionService;
class GuardPolicies;
class ResponseCache;

struct ApiContext {
    inference::Fleet* fleet = nullptr; // the models; every inference call is routed through it
    // Models registered at run time, canary shares and per-version outcomes (unset: config only).
    inference::ModelRegistry* registry = nullptr;
    metrics::Registry* metrics = nullptr;
    std::string version = "0.0.0";
    std::string git_sha = "unknown";
    std::string model_id; // the default completion model (legacy single-model fields)
    int max_tokens_cap = 4096;
    int64_t created = 0;                  // unix time the model was loaded
    std::atomic<bool> ready{false};       // model loaded and serving
    auth::Authenticator* auth = nullptr;  // identity and RBAC; the store behind it
    bool auth_enabled = true;             // false: every caller is a local server owner (loopback only)
    audit::AuditLog* audit = nullptr;     // one record per call and per admin change
    quota::QuotaLedger* quotas = nullptr; // limits on inference calls, and usage accounting
    WorkerPool* workers = nullptr;  // blocking work: store misses, Redis, admin handlers (unset: inline)
    WorkerPool* sign_ins = nullptr; // sign-ins (Argon2, LDAP): unauthenticated work has its own lane
    auth::SignInThrottle* throttle = nullptr;
    int max_generations = 16;                // per request: prompts × n
    int64_t auth_body_bytes = 16 * 1024;     // /auth/* bodies
    GuardPolicies* guard = nullptr;          // secrets in inference requests (unset: none looked for)
    ResponseCache* response_cache = nullptr; // deterministic answers kept (unset: off)
};

// Where blocking work runs: `store` for the store, Redis and admin work of authenticated
// callers, `sign_in` for password hashing and directory binds.
enum class Lane { store, sign_in };

// Runs `fn` on the lane's pool (inline when none is configured); nullopt when its queue is full.
template <typename F>
server::asio::awaitable<std::optional<std::invoke_result_t<F&>>> blocking(ApiContext& ctx, Lane lane, F fn) {
    return offload(lane == Lane::sign_in ? ctx.sign_ins : ctx.workers, std::move(fn));
}

// Registers `handler` for `method` `path`, bound to `context`.
using ContextHandler = server::asio::awaitable<void> (*)(server::Exchange&, ApiContext&);
void add_route(server::Router& router, server::http::verb method, const char* path,
               std::shared_ptr<ApiContext> context, ContextHandler handler);

void register_openai_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_health_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_code_completion_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_auth_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_admin_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_model_routes(server::Router& router, std::shared_ptr<ApiContext> context);
// Authentication and the RBAC table (auth/access_rules) in front of every route.
void install_access_gate(server::Router& router, std::shared_ptr<ApiContext> context);
// The caller the gate admitted (a local owner when no gate ran).
const auth::Principal& caller_of(const server::Exchange& exchange);

} // namespace codepilot::api
