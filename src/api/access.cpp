// The access gate: authenticates the caller and checks the route's rule from the one RBAC
// table (auth/access_rules.cpp) before any handler runs. Routes without a rule are refused.
#include "api/api.h"
#include "api/errors.h"
#include "api/guard_policies.h"
#include "api/request_fields.h"
#include "core/clock.h"
#include "server/async_queue.h"

#include <spdlog/spdlog.h>

namespace codepilot::api {
namespace {

using server::Exchange;
using server::asio::awaitable;
using server::http::status;

const auth::Principal& local_owner() {
    static const auth::Principal p = [] {
        auth::Principal o;
        o.method = "none";
        o.username = "local";
        o.server_owner = true;
        return o;
    }();
    return p;
}

// Plain functions: GCC 12 mishandles braced lists that live across a co_await.
server::Headers retry_after() {
    return {{"Retry-After", "1"}};
}
server::Headers retry_after_seconds(int64_t s) {
    return {{"Retry-After", std::to_string(s)}};
}
server::Headers bearer_challenge() {
    return {{"WWW-Authenticate", "Bearer realm=\"codepilot\""}};
}

void count_denied(ApiContext& ctx, const char* reason) {
    if (ctx.metrics)
        ctx.metrics
            ->counter("codepilot_authz_denied_total", "Authenticated requests refused by RBAC, by reason",
                      {{"reason", reason}})
            .inc();
}

std::string denial(const auth::Principal& p, auth::Permission needed, std::optional<auth::Role> role,
                   const std::string& tenant) {
    std::string perm(auth::to_string(needed));
    if (p.server_owner || (role && (auth::role_permissions(*role) & auth::bit(needed))))
        return "this API key's scopes (" + auth::scopes_to_string(p.scopes) + ") do not allow '" + perm + "'";
    if (!role) return "this request needs '" + perm + "' in a tenant, and the credential acts in none";
    return "permission denied: '" + perm + "' is not granted to role '" +
           std::string(auth::to_string(*role)) + "' in tenant '" + tenant + "'";
}

bool is_inference(const auth::RouteRule& rule) {
    return rule.access == auth::Access::permission &&
           (rule.permission == auth::Permission::completion || rule.permission == auth::Permission::chat ||
            rule.permission == auth::Permission::embeddings);
}

audit::Record call_record(const ApiContext& ctx, const Exchange& ex, server::http::status st,
                          std::chrono::steady_clock::time_point started, const auth::RouteRule& rule) {
    audit::Record r;
    r.kind = "call";
    r.at_ms = unix_millis();
    r.request_id = ex.request_id();
    if (ex.caller) {
        const auto& p = caller_of(ex);
        r.tenant = p.tenant_name;
        r.username = p.username;
        r.key_prefix = p.key_prefix;
        r.auth_method = p.method;
    } else if (!ex.usage.attempted_user.empty()) { // a sign-in: who it claimed to be
        r.username = ex.usage.attempted_user;
        r.auth_method = "password";
    }
    r.client_ip = ex.remote_address();
    auto agent = ex.request()[server::http::field::user_agent];
    r.user_agent = std::string(agent.substr(0, 256));
    r.method = std::string(ex.request().method_string());
    r.route = std::string(ex.path());
    if (is_inference(rule)) r.model = ex.usage.model.empty() ? ctx.model_id : ex.usage.model; // id@version
    r.status = static_cast<int>(st);
    r.prompt_tokens = ex.usage.prompt_tokens;
    r.completion_tokens = ex.usage.completion_tokens;
    r.cached_tokens = ex.usage.cached_tokens;
    r.guard_rules = ex.usage.guard_rules;
    r.latency_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count();
    if (ctx.audit->prompt_storage() != audit::PromptStorage::none && is_inference(rule)) {
        r.prompt =
            ex.request()
                .body(); // as handed to the handler (after the guard); cut, redacted or sealed by the writer
        r.completion = ex.usage.completion_text;
    }
    return r;
}

// The model id a call was routed to (usage.model is id@version).
std::string model_of(const ApiContext& ctx, const Exchange& ex) {
    if (ex.usage.model.empty()) return ctx.model_id;
    return ex.usage.model.substr(0, ex.usage.model.rfind('@'));
}

// Request counts by route and status, latency by route, and per model the engine's view:
// queue time, time to first token, inter-token latency and tokens. Never labelled by user.
void observe_call(ApiContext& ctx, const Exchange& ex, server::http::status st,
                  std::chrono::steady_clock::time_point started, const auth::RouteRule& rule) {
    if (!ctx.metrics) return;
    auto& m = *ctx.metrics;
    const std::string route = rule.pattern, method = rule.method;
    m.counter("codepilot_http_requests_total", "HTTP requests by route, method and status",
              {{"route", route}, {"method", method}, {"status", std::to_string(static_cast<int>(st))}})
        .inc();
    m.histogram("codepilot_http_request_duration_seconds", "End-to-end request latency by route",
                {{"route", route}, {"method", method}}, metrics::Registry::latency_buckets_seconds())
        .observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (!is_inference(rule)) return;
    if (ctx.registry && !ex.usage.model.empty()) { // per version, for canary comparisons
        const auto at = ex.usage.model.rfind('@');
        ctx.registry->record(
            ex.usage.model.substr(0, at), at == std::string::npos ? "" : ex.usage.model.substr(at + 1),
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
                .count(),
            static_cast<int>(st) >= 500, ex.usage.prompt_tokens, ex.usage.completion_tokens);
    }
    const metrics::Labels model{{"model", model_of(ctx, ex)}};
    const auto& buckets = metrics::Registry::latency_buckets_seconds();
    for (const auto& g : ex.usage.generations) {
        m.histogram("codepilot_queue_time_seconds", "Time a generation waited for a sequence", model, buckets)
            .observe(g.queue_ms / 1000.0);
        if (g.first_token_ms > 0)
            m.histogram("codepilot_time_to_first_token_seconds", "Time from submission to the first token",
                        model, buckets)
                .observe(g.first_token_ms / 1000.0);
        if (g.inter_token_ms > 0)
            m.histogram("codepilot_inter_token_latency_seconds",
                        "Mean time between generated tokens, per generation", model, buckets)
                .observe(g.inter_token_ms / 1000.0);
    }
    m.counter("codepilot_prompt_tokens_total", "Prompt tokens, as the engine counted them", model)
        .inc(static_cast<double>(ex.usage.prompt_tokens));
    m.counter("codepilot_completion_tokens_total", "Generated tokens", model)
        .inc(static_cast<double>(ex.usage.completion_tokens));
    m.counter("codepilot_cached_prompt_tokens_total", "Prompt tokens reused from the KV cache", model)
        .inc(static_cast<double>(ex.usage.cached_tokens));
    m.counter("codepilot_shifted_prompt_tokens_total",
              "Prompt tokens reused from the KV cache at a shifted position (part of the cached ones)", model)
        .inc(static_cast<double>(ex.usage.shifted_tokens));
    m.counter("codepilot_evaluated_prompt_tokens_total", "Prompt tokens evaluated (not reused)", model)
        .inc(static_cast<double>(ex.usage.prompt_tokens - ex.usage.cached_tokens));
}

// What the finisher needs to know about a call that the gate learns after installing it.
struct CallState {
    std::shared_ptr<quota::Ticket> ticket;
};

quota::Subject subject_of(const auth::Principal& p) {
    return quota::Subject{p.tenant_id, p.tenant_name, p.user_id, p.username, p.key_prefix};
}

// The finisher: gives back the call's quota slot and debits its usage, then writes its audit
// record, committed before the response ends when durability is `sync`, queued for the next
// group commit when `batched`.
awaitable<bool> finish_call(ApiContext* ctx, Exchange& ex, server::http::status st,
                            std::chrono::steady_clock::time_point started, const auth::RouteRule* rule,
                            std::shared_ptr<CallState> state) {
    observe_call(*ctx, ex, st, started, *rule);
    if (state->ticket) { // admitted calls only: a refused one consumed nothing
        auto settle = [ctx, &ex, &state] {
            state->ticket->finish(ex.usage.prompt_tokens + ex.usage.completion_tokens); // Redis: a round trip
            if (ctx->quotas)
                ctx->quotas->account(subject_of(caller_of(ex)), model_of(*ctx, ex), ex.usage.prompt_tokens,
                                     ex.usage.completion_tokens, ex.usage.cached_tokens);
            return true;
        };
        if (!co_await blocking(*ctx, Lane::store, settle)) settle(); // a full queue must not lose usage
    }
    if (!ctx->audit || ctx->audit->durability() == audit::Durability::off) co_return true;
    auto record = call_record(*ctx, ex, st, started, *rule);
    if (ctx->audit->durability() != audit::Durability::sync) co_return ctx->audit->append(std::move(record));
    auto executor = co_await server::asio::this_coro::executor;
    auto committed = std::make_shared<server::AsyncQueue<Status>>(executor);
    if (!ctx->audit->append(std::move(record), [committed](Status s) { committed->push(std::move(s)); }))
        co_return false;
    std::optional<Status> result;
    while (!result) result = co_await committed->pop();
    co_return result->ok();
}

// A verified client certificate's binding (mTLS), from the cache or the store lane. The reason a
// certificate is refused (bound to no one, a disabled user) is no secret: it goes to the client.
awaitable<Result<std::shared_ptr<const auth::Principal>>>
certified(ApiContext& ctx, const server::ClientCertificate& c, const std::string& request_id) {
    const auth::CertificateIdentity id{c.fingerprint_sha256, c.subject, c.sans};
    if (auto hit = ctx.auth->authenticate_certificate_cached(id)) co_return hit;
    auto checked =
        co_await blocking(ctx, Lane::store, [&ctx, &id] { return ctx.auth->authenticate_certificate(id); });
    if (!checked) co_return make_error(ErrorCode::overloaded, "the server is busy; try again shortly");
    if (*checked) co_return std::move(**checked);
    const Error& error = checked->error();
    if (error.code == ErrorCode::unavailable) {
        spdlog::warn("authentication unavailable: {}", error.message);
        co_return make_error(ErrorCode::unavailable,
                             "authentication is temporarily unavailable; try again shortly");
    }
    spdlog::info("request {}: client certificate refused: {}", request_id, error.message);
    co_return make_error(ErrorCode::unauthenticated, error.message);
}

// The caller behind an Authorization header (else behind the connection's client certificate),
// or why not: answered from the credential cache on this thread, else checked on the store
// lane. One rule for the gate and the pre-body check. Errors: unauthenticated (401),
// unavailable (the store or the issuer), overloaded (a full lane).
awaitable<Result<std::shared_ptr<const auth::Principal>>>
authenticated(ApiContext& ctx, std::string_view header, const server::ClientCertificate* certificate,
              const std::string& request_id) {
    if (header.empty() && certificate) co_return co_await certified(ctx, *certificate, request_id);
    if (header.empty())
        co_return make_error(ErrorCode::unauthenticated,
                             "authentication required: send 'Authorization: Bearer <API key or token>'");
    if (auto hit = ctx.auth->authenticate_cached(header)) co_return hit;
    auto checked =
        co_await blocking(ctx, Lane::store, [&ctx, header] { return ctx.auth->authenticate(header); });
    if (!checked) co_return make_error(ErrorCode::overloaded, "the server is busy; try again shortly");
    if (*checked) co_return std::move(**checked);
    const Error& error = checked->error();
    if (error.code == ErrorCode::unavailable) {
        spdlog::warn("authentication unavailable: {}", error.message);
        co_return make_error(ErrorCode::unavailable,
                             "authentication is temporarily unavailable; try again shortly");
    }
    spdlog::info("request {}: authentication failed: {}", request_id, error.message); // the detail stays here
    co_return make_error(ErrorCode::unauthenticated, "invalid credentials");
}

server::Headers refusal_headers(ErrorCode code) {
    return code == ErrorCode::unauthenticated ? bearer_challenge() : retry_after();
}

awaitable<bool> admit(ApiContext& ctx, Exchange& ex, server::http::verb method, const std::string& pattern) {
    const auto* rule = auth::find_route_rule(server::http::to_string(method), pattern);
    if (!rule) {
        spdlog::error("route {} {} has no access rule: refused", std::string(server::http::to_string(method)),
                      pattern);
        co_await ex.respond_error(status::internal_server_error, "this route has no access rule");
        co_return false;
    }
    const bool call = rule->access != auth::Access::probe && rule->access != auth::Access::metrics_scrape;
    const bool audited = call && ctx.audit && ctx.audit->durability() != audit::Durability::off;
    auto state = std::make_shared<CallState>();
    if (call) {
        auto* context = &ctx;
        auto started = std::chrono::steady_clock::now();
        ex.set_finisher(
            [context, started, rule, state](Exchange& e, server::http::status st) -> awaitable<bool> {
                co_return co_await finish_call(context, e, st, started, rule, state);
            });
    }
    if (audited) {
        if (!ctx.audit->accepting()) { // refuse before doing any work that could not be recorded
            co_await ex.respond_error(
                status::service_unavailable,
                "the audit trail is behind (its store is unavailable); try again shortly", {}, retry_after());
            co_return false;
        }
    }
    if (rule->access == auth::Access::probe || rule->access == auth::Access::public_route) co_return true;
    if (rule->access == auth::Access::metrics_scrape && ctx.auth && ctx.auth->config().metrics_public)
        co_return true;

    std::shared_ptr<const auth::Principal> caller;
    if (!ctx.auth_enabled || !ctx.auth) {
        static const auto owner = std::make_shared<const auth::Principal>(local_owner());
        caller = owner;
    } else {
        auto field = ex.request()[server::http::field::authorization];
        auto who = co_await authenticated(ctx, std::string_view(field.data(), field.size()),
                                          ex.client_certificate(), ex.request_id());
        if (!who) {
            const auto code = who.error().code;
            co_await ex.respond_error(status_for(code), who.error().message, {}, refusal_headers(code));
            co_return false;
        }
        caller = std::move(*who);
    }
    const auth::Principal& principal = *caller;

    if (rule->access == auth::Access::permission || rule->access == auth::Access::metrics_scrape) {
        std::optional<auth::Role> role = principal.role;
        std::string tenant = principal.tenant_name;
        auth::PermissionSet granted = 0;
        if (rule->tenant_param) {
            tenant = ex.path_param(rule->tenant_param);
            if (tenant.empty()) tenant = ex.query_param(rule->tenant_param); // e.g. /admin/v1/usage?tenant=
            if (tenant.empty()) {
                co_await ex.respond_error(status::bad_request,
                                          std::string("'") + rule->tenant_param +
                                              "' is required: name the tenant",
                                          rule->tenant_param);
                co_return false;
            }
            auto looked_up = co_await blocking(ctx, Lane::store, [&ctx, &principal, &tenant] {
                return ctx.auth ? ctx.auth->access_in(principal, tenant)
                                : Result<std::optional<auth::TenantAccess>>(
                                      make_error(ErrorCode::unavailable, "no store"));
            });
            auto access = looked_up ? std::move(*looked_up)
                                    : Result<std::optional<auth::TenantAccess>>(make_error(
                                          ErrorCode::overloaded, "the server is busy; try again shortly"));
            if (!access) {
                co_await respond_error(ex, access.error());
                co_return false;
            }
            if (!*access) { // another tenant's resources are not even acknowledged
                count_denied(ctx, "tenant");
                co_await ex.respond_error(status::not_found, "tenant '" + tenant + "' not found", "tenant");
                co_return false;
            }
            role = (*access)->role;
            granted = (*access)->permissions;
        } else {
            granted = principal.permissions(role);
        }
        if (!(granted & auth::bit(rule->permission))) {
            count_denied(ctx, principal.server_owner ||
                                      (role && (auth::role_permissions(*role) & auth::bit(rule->permission)))
                                  ? "scope"
                                  : "role");
            co_await ex.respond_error(status::forbidden, denial(principal, rule->permission, role, tenant));
            co_return false;
        }
    }
    ex.caller = std::move(caller);
    // Every route, whether or not its handler reads the body: nothing deeper than this is taken.
    if (auto deep = nesting_error(ex.request().body())) {
        co_await respond_error(ex, *deep);
        co_return false;
    }
    if (is_inference(*rule)) ex.response_cache = ctx.response_cache;
    if (ctx.guard && is_inference(*rule)) {
        // Before quota: a refused prompt costs the tenant nothing. Scanning is CPU work in
        // proportion to the body, so it runs on the worker pool.
        // A snapshot: a policy changed meanwhile applies from the next request.
        std::shared_ptr<const GuardPolicy> policy = ctx.guard->policy_for(principal.tenant_name);
        ex.guard = policy->output;
        if (policy->settings.prompts != PromptAction::off) {
            const std::string& body = ex.request().body();
            // The lambda captures only references: GCC 12 destroys a co_await operand's temporaries
            // wrongly, so one holding a shared_ptr is freed twice. `policy` keeps it alive here.
            const GuardPolicy& in_force = *policy;
            auto guarded = co_await blocking(ctx, Lane::store,
                                             [&in_force, &body] { return guard_body(in_force, body); });
            if (!guarded) {
                co_await ex.respond_error(status::service_unavailable,
                                          "the server is busy; try again shortly", {}, retry_after());
                co_return false;
            }
            count_findings(ctx.metrics, guarded->rules, to_string(policy->settings.prompts));
            ex.usage.guard_rules = guarded->rules;
            if (guarded->blocked) {
                co_await respond_error(ex, *guarded->blocked);
                co_return false;
            }
            if (guarded->body) ex.replace_body(std::move(*guarded->body));
        }
    }
    if (ctx.quotas && is_inference(*rule) && !principal.tenant_id.empty()) {
        auto admitted = co_await blocking(ctx, Lane::store, [&ctx, &principal] {
            return ctx.quotas->admit(subject_of(principal)); // Redis, or the store on a new day: may block
        });
        if (!admitted) {
            co_await ex.respond_error(status::service_unavailable, "the server is busy; try again shortly",
                                      {}, retry_after());
            co_return false;
        }
        auto decision = std::move(*admitted);
        for (auto& h : decision.headers) ex.response_headers.push_back(std::move(h));
        if (!decision.allowed) {
            co_await ex.respond_error(decision.unavailable ? status::service_unavailable
                                                           : status::too_many_requests,
                                      decision.message, {}, retry_after_seconds(decision.retry_after_s));
            co_return false;
        }
        state->ticket = std::move(decision.ticket);
        if (state->ticket) {
            auto* context = &ctx;
            ex.claim_generations = [context, state](int64_t extra) -> awaitable<Status> {
                auto widened =
                    co_await blocking(*context, Lane::store, [&] { return state->ticket->widen(extra); });
                if (!widened)
                    co_return make_error(ErrorCode::overloaded, "the server is busy; try again shortly");
                if (widened->allowed) co_return Ok{};
                co_return make_error(widened->unavailable ? ErrorCode::unavailable : ErrorCode::rate_limited,
                                     widened->message);
            };
        }
    }
    co_return true;
}

// A call refused before its body was read is audited like one the gate refused.
void audit_refusal(ApiContext& ctx, const server::http::request_header<>& header,
                   const server::Router::HeaderContext& at, status st) {
    if (!ctx.audit || ctx.audit->durability() == audit::Durability::off) return;
    audit::Record r;
    r.kind = "call";
    r.at_ms = unix_millis();
    r.request_id = at.request_id;
    r.client_ip = at.remote;
    r.user_agent = std::string(header[server::http::field::user_agent].substr(0, 256));
    r.method = std::string(header.method_string());
    std::string_view target(header.target().data(), header.target().size());
    r.route = std::string(target.substr(0, target.find('?')));
    r.status = static_cast<int>(st);
    if (!ctx.audit->append(std::move(r)))
        spdlog::error("audit: buffer full, a refused call was not recorded");
}

// Before a body is read: /auth bodies are small, and a body is only read once its sender has
// shown valid credentials (401 instead of "100 Continue" for a large anonymous upload).
awaitable<server::HeaderVerdict> check_header(ApiContext& ctx, const server::http::request_header<>& header,
                                              const server::Router::HeaderContext& at) {
    const std::string& pattern = at.pattern;
    server::HeaderVerdict verdict;
    if (pattern.rfind("/auth/", 0) == 0) verdict.body_limit = static_cast<uint64_t>(ctx.auth_body_bytes);
    const auto length = header[server::http::field::content_length];
    const bool has_body =
        (!length.empty() && length != "0") || !header[server::http::field::transfer_encoding].empty();
    const auto* rule =
        pattern.empty() ? nullptr : auth::find_route_rule(server::http::to_string(header.method()), pattern);
    if (!has_body || !rule || !ctx.auth_enabled || !ctx.auth) co_return verdict;
    if (rule->access == auth::Access::probe || rule->access == auth::Access::public_route) co_return verdict;
    if (rule->access == auth::Access::metrics_scrape && ctx.auth->config().metrics_public) co_return verdict;
    auto field = header[server::http::field::authorization];
    const std::string_view credentials(field.data(), field.size());
    auto refuse = [&](status st, std::string message, server::Headers headers) {
        audit_refusal(ctx, header, at, st);
        verdict.status = st;
        verdict.body = server::error_body(st, message);
        verdict.headers = std::move(headers);
        return verdict;
    };
    // Checked once here; the gate then finds the caller in the credential cache.
    auto who = co_await authenticated(ctx, credentials, at.certificate, at.request_id);
    if (!who)
        co_return refuse(status_for(who.error().code), who.error().message,
                         refusal_headers(who.error().code));
    co_return verdict;
}

} // namespace

void install_access_gate(server::Router& router, std::shared_ptr<ApiContext> context) {
    router.set_header_check(
        [context](const server::http::request_header<>& header,
                  const server::Router::HeaderContext& at) -> awaitable<server::HeaderVerdict> {
            co_return co_await check_header(*context, header, at);
        });
    router.set_gate(
        [context](Exchange& ex, server::http::verb method, const std::string& pattern) -> awaitable<bool> {
            co_return co_await admit(*context, ex, method, pattern);
        });
}

const auth::Principal& caller_of(const Exchange& exchange) {
    if (exchange.caller) return *static_cast<const auth::Principal*>(exchange.caller.get());
    return local_owner();
}

} // namespace codepilot::api
