#include "app/application.h"

#include "api/api.h"
#include "api/code_completion.h"
#include "api/guard_policies.h"
#include "api/response_cache.h"
#include "app/fleet_builder.h"
#include "auth/settings_json.h"
#include "core/private_files.h"
#include "engine/model_synth.h"
#include "metrics/metrics.h"
#include "server/server.h"
#include "store/quota_store.h"
#include "store/store.h"

#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <thread>

namespace codepilot::app {

namespace asio = boost::asio;
namespace fs = std::filesystem;

struct Application::Parts {
    config::Config config;
    asio::io_context io;
    metrics::Registry metrics;
    BuiltFleet fleet; // the models, and a completion service per completion model
    std::unique_ptr<store::Database> database;
    std::unique_ptr<store::IdentityStore> identities;
    std::unique_ptr<auth::Authenticator> authenticator;
    std::unique_ptr<audit::AuditLog> audit; // after the database: destroyed (and flushed) first
    std::unique_ptr<store::QuotaStore> quota_store;
    std::unique_ptr<quota::QuotaLedger> quotas;
    // Models registered at run time; after the fleet and the database (destroyed first).
    std::unique_ptr<inference::ModelRegistry> registry;
    std::unique_ptr<auth::SignInThrottle> throttle;
    std::unique_ptr<api::GuardPolicies> guard; // polls the store: after the database (destroyed first)
    std::unique_ptr<api::ResponseCache> response_cache;
    // Blocking work off the I/O threads. Destroyed before the stores they use (declared after).
    std::unique_ptr<WorkerPool> workers, sign_ins;
    std::optional<std::string> bootstrap_key_file;
    std::shared_ptr<server::Router> router;
    std::shared_ptr<api::ApiContext> api;
    std::unique_ptr<server::HttpServer> server;
    std::vector<std::thread> threads;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::once_flag shutdown_once;
    std::thread signal_thread;
    std::promise<void> stopped;
    std::shared_future<void> stopped_future = stopped.get_future().share();

    explicit Parts(int threads) : io(threads) {}
};

std::string demo_model_path(const config::Config& config) {
    return (fs::path(config.data_dir) / "models" / "demo-qwen2-coder.gguf").string();
}

namespace {

std::string bootstrap_key_path(const config::Config& config) {
    return (fs::path(config.data_dir) / "bootstrap-owner.key").string();
}

std::string describe_duration(int64_t seconds) {
    if (seconds % 86400 == 0) return std::to_string(seconds / 86400) + (seconds == 86400 ? " day" : " days");
    if (seconds % 3600 == 0) return std::to_string(seconds / 3600) + " h";
    return std::to_string(seconds) + " s";
}

// One line per path that other local users could read (the data dir, the database files, the
// key file): reported, not refused, so that an operator's deliberate choice still starts.
void warn_about_loose_modes(const Application::Parts& parts, const config::Config& config) {
    std::vector<std::pair<std::string, unsigned>> paths = {{config.data_dir, kPrivateDirMode}};
    for (const auto& file : parts.database->files()) paths.emplace_back(file, kPrivateFileMode);
    paths.emplace_back(bootstrap_key_path(config), kPrivateFileMode);
    for (const auto& [path, allowed] : paths)
        if (auto warning = looser_mode_warning(path, allowed)) spdlog::warn("file modes: {}", *warning);
}

Status open_identity(Application::Parts& parts, const config::Config& config);

// Each connection is a descriptor: the usual soft limit (1024) would cap max_connections.
void raise_open_file_limit(int connections) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t wanted = std::min<rlim_t>(limit.rlim_max, static_cast<rlim_t>(connections) + 256);
    if (limit.rlim_cur >= wanted) return;
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) spdlog::warn("cannot raise the open-file limit to {}", wanted);
}

} // namespace

Result<std::unique_ptr<Application>> Application::create(const config::Config& config) {
    if (!config.auth.enabled && !config::is_loopback_host(config.server.host))
        return make_error(
            ErrorCode::invalid_argument,
            "authentication can be off only while the server listens on loopback (server.host is '" +
                config.server.host + "'); use 127.0.0.1 or turn auth on");
    auto parts = std::make_unique<Parts>(config.server.io_threads);
    parts->config = config;
    if (auto st = open_identity(*parts, config); !st) return st.error();

    parts->api = std::make_shared<api::ApiContext>();
    parts->api->max_tokens_cap = config.model.max_tokens_cap;
    parts->api->created = static_cast<int64_t>(std::time(nullptr));
    parts->api->metrics = &parts->metrics;
    parts->api->auth = parts->authenticator.get();
    parts->api->auth_enabled = config.auth.enabled;
    parts->api->audit = parts->audit.get();
    parts->api->quotas = parts->quotas.get();
    // 0 threads: that work runs inline on the I/O threads, as before the pools (benchmarks only).
    if (config.server.worker_threads > 0) {
        parts->workers =
            std::make_unique<WorkerPool>("store", config.server.worker_threads, config.server.worker_queue);
        parts->authenticator->set_background([pool = parts->workers.get()](std::function<void()> job) {
            return pool->try_submit(std::move(job));
        });
    }
    if (config.server.sign_in_threads > 0)
        parts->sign_ins = std::make_unique<WorkerPool>("sign-in", config.server.sign_in_threads,
                                                       config.server.worker_queue);
    if (!parts->workers || !parts->sign_ins)
        spdlog::warn("server.worker_threads or sign_in_threads is 0: blocking work runs on the I/O threads");
    parts->api->workers = parts->workers.get();
    parts->api->sign_ins = parts->sign_ins.get();
    auth::ThrottleSettings throttle;
    throttle.free_failures = config.auth.sign_in_free_failures;
    throttle.max_delay_s = config.auth.sign_in_max_delay_s;
    throttle.lock_failures = config.auth.sign_in_lock_failures;
    throttle.lock_s = config.auth.sign_in_lock_s;
    parts->throttle = std::make_unique<auth::SignInThrottle>(throttle);
    parts->api->throttle = parts->throttle.get();
    parts->api->max_generations = config.model.max_generations;
    parts->api->auth_body_bytes = config.auth.max_body_bytes;
    auto configured_guard = api::configure_guard(config.guard, &parts->metrics);
    if (!configured_guard) return configured_guard.error();
    spdlog::info("guard: {} rules; prompts: {}, output: {}{}", configured_guard->rules->size(),
                 api::to_string(configured_guard->policy.settings.prompts),
                 api::to_string(configured_guard->policy.settings.output),
                 configured_guard->tenants.empty()
                     ? ""
                     : " (" + std::to_string(configured_guard->tenants.size()) + " tenant policies)");
    parts->guard = std::make_unique<api::GuardPolicies>(std::move(*configured_guard), &parts->metrics);
    parts->guard->poll(*parts->database, std::chrono::seconds(1)); // tenants' own policies (admin API)
    parts->api->guard = parts->guard.get();
    if (config.cache.responses > 0) {
        parts->response_cache = std::make_unique<api::ResponseCache>(
            static_cast<size_t>(config.cache.responses), static_cast<size_t>(config.cache.response_mb) << 20,
            &parts->metrics);
        parts->api->response_cache = parts->response_cache.get();
        spdlog::info("response cache: up to {} greedy generations, {} MiB", config.cache.responses,
                     config.cache.response_mb);
    }
    parts->metrics.gauge(
        "codepilot_guard_policy_errors",
        "Tenants whose stored guard policy does not compile (their last good one applies)",
        [guard = parts->guard.get()] { return static_cast<double>(guard->stored_errors()); });
#ifdef CODEPILOT_VERSION
    parts->api->version = CODEPILOT_VERSION;
#endif
#ifdef CODEPILOT_GIT_SHA
    parts->api->git_sha = CODEPILOT_GIT_SHA;
#endif

    api::CompletionSettings cs;
    cs.fim_template = config.completion.fim_template;
    cs.max_prompt_tokens = config.completion.max_prompt_tokens;
    cs.max_tokens = std::min(config.completion.max_tokens, config.model.max_tokens_cap);
    cs.deadline_ms = config.completion.deadline_ms;
    cs.repo_name = config.completion.repo_name;
    cs.current_line_after_middle = config.completion.current_line_after_middle;
    cs.kv_shift_min_chunk = config.model.kv_shift_min_chunk;
    cs.stable_windows = config.completion.stable_windows;
    auto fleet = build_fleet(config, demo_model_path(config), cs, parts->metrics);
    if (!fleet) return fleet.error();
    parts->fleet = std::move(fleet.value());
    parts->api->fleet = parts->fleet.fleet.get();
    parts->api->model_id = parts->fleet.default_model;
    inference::ModelHooks hooks;
    hooks.companion = [cs, metrics = &parts->metrics](const inference::ModelSpec& spec,
                                                      inference::Backend& b) {
        return completion_companion(spec, b, cs, *metrics);
    };
    hooks.added = [metrics = &parts->metrics](const inference::Fleet::EntryPtr& e) {
        add_model_gauges(*metrics, e);
    };
    parts->registry =
        std::make_unique<inference::ModelRegistry>(*parts->fleet.fleet, *parts->database, hooks);
    if (auto st = parts->registry->start(); !st)
        return make_error(st.error().code, "models: " + st.error().message);
    parts->api->registry = parts->registry.get();

    // The engine's view of the default completion model (per-model gauges: fleet_builder.cpp).
    auto* engine_ptr = parts->fleet.fleet->find(parts->fleet.default_model)->backend.get();
    parts->metrics.gauge("codepilot_requests_running", "Requests decoding in a sequence",
                         [engine_ptr] { return engine_ptr->stats().running; });
    parts->metrics.gauge("codepilot_requests_queued", "Requests waiting for a sequence",
                         [engine_ptr] { return engine_ptr->stats().queued; });
    parts->metrics.gauge(
        "codepilot_kv_cache_used_ratio", "KV cache cells holding cached tokens / all cells", [engine_ptr] {
            auto s = engine_ptr->stats();
            return s.kv_cells_total > 0 ? static_cast<double>(s.kv_cells_used) / s.kv_cells_total : 0.0;
        });
    parts->metrics.gauge("codepilot_speculative_acceptance_ratio",
                         "Drafted tokens the model agreed with / drafted tokens", [engine_ptr] {
                             auto s = engine_ptr->stats();
                             return s.draft_tokens_proposed > 0
                                        ? static_cast<double>(s.draft_tokens_accepted) /
                                              s.draft_tokens_proposed
                                        : 0.0;
                         });
    parts->metrics.gauge(
        "codepilot_prompt_tokens_shifted_ratio",
        "Prompt tokens reused from the KV cache at a shifted position / all prompt tokens", [engine_ptr] {
            auto s = engine_ptr->stats();
            return s.prompt_tokens > 0 ? static_cast<double>(s.shifted_tokens) / s.prompt_tokens : 0.0;
        });
    parts->metrics.gauge("codepilot_prompt_tokens_cached_ratio",
                         "Prompt tokens reused from the KV cache / all prompt tokens", [engine_ptr] {
                             auto s = engine_ptr->stats();
                             return s.prompt_tokens > 0
                                        ? static_cast<double>(s.cached_tokens) / s.prompt_tokens
                                        : 0.0;
                         });

    auto router = std::make_shared<server::Router>();
    api::register_health_routes(*router, parts->api);
    api::register_openai_routes(*router, parts->api);
    api::register_code_completion_routes(*router, parts->api);
    api::register_auth_routes(*router, parts->api);
    api::register_admin_routes(*router, parts->api);
    api::install_access_gate(*router, parts->api);
    parts->router = router;

    server::ServerOptions so;
    so.host = config.server.host;
    so.port = config.server.port;
    so.max_body_bytes = config.server.max_body_bytes;
    so.max_header_bytes = config.server.max_header_bytes;
    so.read_timeout = std::chrono::seconds(config.server.read_timeout_s);
    so.keep_alive_timeout = std::chrono::seconds(config.server.keep_alive_timeout_s);
    so.max_connections = config.server.max_connections;
    so.max_connections_per_ip = config.server.max_connections_per_ip;
    so.header_timeout = std::chrono::seconds(config.server.header_timeout_s);
    if (const auto& tls = config.server.tls; tls.enabled()) {
        server::TlsOptions to;
        to.cert_file = tls.cert_file;
        to.key_file = tls.key_file;
        to.min_version = tls.min_version;
        to.client_ca_file = tls.client_ca_file;
        to.client_auth = tls.client_auth == "required"   ? server::ClientAuth::required
                         : tls.client_auth == "optional" ? server::ClientAuth::optional
                                                         : server::ClientAuth::none;
        so.tls = to;
        so.plaintext_port = tls.plaintext_port ? tls.plaintext_port : -1;
        so.hsts_max_age_s = tls.hsts_max_age_s;
    }
    so.cors_origins = config.server.cors.allowed_origins;
    so.cors_max_age_s = config.server.cors.max_age_s;
    raise_open_file_limit(config.server.max_connections);
    parts->server = std::make_unique<server::HttpServer>(parts->io, so, router);
    if (auto st = parts->server->listen(); !st) return st.error();
    parts->api->ready = true;
    if (!config.auth.enabled)
        spdlog::warn("authentication is OFF: every local caller acts as the server owner");
    if (parts->bootstrap_key_file)
        spdlog::warn(
            "first start: the server owner's API key is in {} (readable only by this user, valid {}): "
            "create your own key with it, then delete the file",
            *parts->bootstrap_key_file, describe_duration(config.auth.bootstrap_key_ttl_s));
    else if (fs::exists(bootstrap_key_path(config)))
        spdlog::warn("{} still exists: once the owner has a key of their own, delete it",
                     bootstrap_key_path(config));
    return std::unique_ptr<Application>(new Application(std::move(parts)));
}

namespace {

Status open_identity(Application::Parts& parts, const config::Config& config) {
    const std::string url = config::store_url(config);
    auto db = store::open_and_migrate(url, config.store.pool_size);
    if (!db) return make_error(db.error().code, "store: " + db.error().message);
    parts.database = std::move(*db);
    parts.identities = std::make_unique<store::IdentityStore>(*parts.database);
    parts.authenticator =
        std::make_unique<auth::Authenticator>(*parts.identities, config.auth, &parts.metrics);
    audit::Options ao;
    ao.durability = *audit::parse_durability(config.audit.durability);
    ao.flush_ms = config.audit.flush_ms;
    ao.capacity = static_cast<size_t>(config.audit.capacity);
    ao.prompts.storage = *audit::parse_prompt_storage(config.audit.store_prompts);
    if (ao.prompts.storage == audit::PromptStorage::redacted) {
        auto rules =
            api::server_rules(config.guard.rules_file); // the guard's rules redact stored prompts too
        if (!rules) return rules.error();
        ao.prompts.rules = std::move(*rules);
    }
    if (ao.prompts.storage == audit::PromptStorage::encrypted) {
        auto keys = audit::load_prompt_keys(config.audit.key_file);
        if (!keys) return keys.error();
        ao.prompts.keys = std::move(*keys);
    }
    auto chain_keys = audit::load_chain_keys(config.audit.chain_key_file, config.data_dir, true);
    if (!chain_keys) return chain_keys.error();
    ao.chain_keys = std::move(*chain_keys);
    ao.anchors.file = config.audit.anchor_file.empty()
                          ? (fs::path(config.data_dir) / "audit-anchors.jsonl").string()
                          : config.audit.anchor_file;
    ao.anchors.interval = std::chrono::seconds(config.audit.anchor_interval_s);
    ao.anchors.syslog = config.audit.anchor_syslog;
    parts.audit = std::make_unique<audit::AuditLog>(*parts.database, ao, &parts.metrics);
    parts.quota_store = std::make_unique<store::QuotaStore>(*parts.database);
    parts.quotas = std::make_unique<quota::QuotaLedger>(*parts.quota_store, &parts.metrics);
    parts.quotas->set_default_key_concurrency(config.quota.default_key_concurrency);
    if (!config.quota.redis_url.empty()) {
        auto redis = quota::RedisCounters::connect(config.quota);
        if (!redis) return redis.error();
        parts.quotas->share_counters(std::move(*redis), config.quota.redis_failure == "open");
        spdlog::info("quota: counters shared in Redis (fail {})", config.quota.redis_failure);
    }
    if (auto st = auth::scrub_saved_secrets(*parts.identities); !st) return st.error();
    if (auto st = parts.authenticator->load_saved_settings(); !st) return st.error();
    // An in-memory store with auth off ends with the process and needs no credential at all.
    const bool ephemeral =
        parts.database->dialect() == store::Dialect::sqlite && parts.database->files().empty();
    const std::string key_file = ephemeral && !config.auth.enabled ? "" : bootstrap_key_path(config);
    auto boot = auth::bootstrap_owner(*parts.identities, key_file, config.auth.bootstrap_key_ttl_s);
    if (!boot) return make_error(boot.error().code, "bootstrap: " + boot.error().message);
    if (*boot && !(*boot)->key_file.empty()) parts.bootstrap_key_file = (*boot)->key_file;
    warn_about_loose_modes(parts, config);
    auto version = store::schema_version(*parts.database);
    spdlog::info("store: {} (schema version {})",
                 url.rfind("postgres", 0) == 0 ? "postgresql (URL not logged)" : url,
                 version ? *version : -1);
    return Ok{};
}

} // namespace

Application::Application(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Application::~Application() {
    shutdown();
    for (auto& t : parts_->threads)
        if (t.joinable()) t.join();
    if (parts_->signal_thread.joinable()) parts_->signal_thread.join();
}

int Application::port() const {
    return parts_->server->port();
}
int Application::plaintext_port() const {
    return parts_->server->plaintext_port();
}

Status Application::reload_tls() {
    auto st = parts_->server->reload_tls();
    if (st)
        spdlog::info("TLS: certificate reloaded from {}", parts_->config.server.tls.cert_file);
    else
        spdlog::error("TLS: reload failed, the certificate in use stays: {}", st.error().message);
    return st;
}

namespace {
// SIGHUP, as many times as it comes: the reload reads files, so it runs on a worker.
void reload_on_hangup(asio::signal_set& hangups, Application& app, WorkerPool* workers) {
    hangups.async_wait([&hangups, &app, workers](const boost::system::error_code& ec, int) {
        if (ec) return;
        auto reload = [&app] { (void)app.reload_tls(); };
        if (!workers || !workers->try_submit(reload)) reload();
        reload_on_hangup(hangups, app, workers);
    });
}
} // namespace
const std::string& Application::model_id() const {
    return parts_->api->model_id;
}
engine::Engine& Application::engine() {
    auto* engine = parts_->fleet.fleet->find(model_id())->backend->local_engine();
    if (!engine) throw std::logic_error("the default model is not a local engine");
    return *engine;
}
inference::Fleet& Application::fleet() {
    return *parts_->fleet.fleet;
}
store::IdentityStore& Application::identities() {
    return *parts_->identities;
}
auth::Authenticator& Application::authenticator() {
    return *parts_->authenticator;
}
const std::optional<std::string>& Application::bootstrap_key_file() const {
    return parts_->bootstrap_key_file;
}

std::vector<std::pair<std::string, std::string>> Application::routes() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [method, pattern] : parts_->router->routes())
        out.emplace_back(std::string(server::http::to_string(method)), pattern);
    return out;
}

void Application::start() {
    parts_->server->start();
    parts_->work.emplace(parts_->io.get_executor());
    for (int i = 0; i < parts_->config.server.io_threads; ++i)
        parts_->threads.emplace_back([this] { parts_->io.run(); });
    const bool tls = parts_->config.server.tls.enabled();
    spdlog::info("listening on {}://{}:{} (model '{}')", tls ? "https" : "http", parts_->config.server.host,
                 port(), model_id());
    if (plaintext_port() >= 0)
        spdlog::info("plain HTTP also on http://{}:{} (server.tls.plaintext_port)",
                     parts_->config.server.host, plaintext_port());
}

void Application::run() {
    asio::signal_set hangups(parts_->io);
    if (parts_->config.server.tls.enabled()) {
        hangups.add(SIGHUP);
        reload_on_hangup(hangups, *this, parts_->workers.get());
    }
    asio::signal_set signals(parts_->io, SIGINT, SIGTERM);
    signals.async_wait([this](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        spdlog::info("signal {}: shutting down (grace {}s)", signal, parts_->config.server.shutdown_grace_s);
        parts_->signal_thread = std::thread([this] { shutdown(); });
    });
    start();
    parts_->stopped_future.wait();
    for (auto& t : parts_->threads)
        if (t.joinable()) t.join();
}

void Application::shutdown() {
    std::call_once(parts_->shutdown_once, [this] {
        if (parts_->threads.empty()) { // never started
            parts_->registry->stop();
            parts_->fleet.fleet->stop();
            parts_->stopped.set_value();
            return;
        }
        parts_->api->ready = false;
        std::promise<void> drained;
        parts_->server->shutdown(std::chrono::seconds(parts_->config.server.shutdown_grace_s),
                                 [&drained] { drained.set_value(); });
        drained.get_future().wait();
        if (!parts_->audit->flush()) // a clean shutdown loses no audit record
            spdlog::error("audit: records still queued at shutdown: the store is unavailable");
        parts_->registry->stop(); // outcomes written; draining models cancelled
        parts_->fleet.fleet->stop();
        parts_->work.reset();
        parts_->io.stop();
        parts_->stopped.set_value();
    });
    parts_->stopped_future.wait();
}

} // namespace codepilot::app
