// Config: the one typed, validated configuration of a Codepilot process.
// Sources, later ones winning: embedded defaults < TOML file < command-line flags.
#pragma once

#include "core/result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace codepilot::config {

// TLS on server.port (on when cert_file is set): plain HTTP is then refused there.
struct TlsConfig {
    std::string cert_file;            // PEM chain, leaf first
    std::string key_file;             // PEM private key (readable only by codepilot)
    std::string min_version = "1.3";  // 1.2 | 1.3
    std::string client_ca_file;       // CA bundle that issues client certificates
    std::string client_auth = "none"; // none | optional | required
    int plaintext_port = 0;           // a second listener that speaks plain HTTP (0: none)
    int hsts_max_age_s = 31536000;    // Strict-Transport-Security (0: not sent)
    bool enabled() const { return !cert_file.empty(); }
};

// Cross-origin calls from browsers: off unless origins are listed ("*": any origin).
struct CorsConfig {
    std::vector<std::string> allowed_origins;
    int max_age_s = 600; // how long a browser may cache a preflight's answer
};

struct ServerConfig {
    std::string host = "127.0.0.1";
    int port = 8080;
    int io_threads = 2;
    int64_t max_body_bytes = 32 * 1024 * 1024; // IDE clients send whole files
    int max_header_bytes = 16 * 1024;
    int read_timeout_s = 30;       // a request (headers and body) must arrive within this
    int keep_alive_timeout_s = 60; // an idle keep-alive connection is closed after this
    int shutdown_grace_s = 15;     // SIGTERM: in-flight requests may finish within this
    int max_connections = 1024;
    int max_connections_per_ip = 256; // one address cannot take every connection
    int header_timeout_s = 10;        // a new connection's request headers must arrive within this
    int worker_threads = 8;           // blocking work (store misses, Redis, JWKS, admin handlers)
    int sign_in_threads = 2; // sign-ins (Argon2, LDAP): a lane of their own, so they cannot starve the rest
    int worker_queue = 4096; // jobs waiting for a worker before requests get 503
    TlsConfig tls;
    CorsConfig cors;
};

struct ModelConfig {
    std::string path;          // empty: a synthesized demo model in data_dir
    std::string name;          // id shown by /v1/models; default: the file name without .gguf
    int threads = 0;           // 0: all cores
    int parallel = 4;          // sequences decoded together
    int ctx = 8192;            // KV cache cells in all; each request may use ctx / parallel
    int batch = 512;           // tokens per decode step
    int max_tokens_cap = 4096; // upper bound for a request's max_tokens
    int queue_size = 64;       // requests waiting for a free sequence before 503
    bool embeddings = true;    // serve /v1/embeddings
    int gpu_layers = -1;       // with a GPU build: layers to offload (-1 all)
    bool deterministic = true; // same tokens alone or batched (CPU reference attention kernel)
    bool kv_unified = false;   // one KV pool for all sequences (less memory, batch-dependent rounding)
    int speculative_draft = 8; // greedy requests: tokens drafted by n-gram lookup per step (0: off)
    int kv_shift_min_chunk =
        64; // code completion: reuse cached runs of >= this many tokens at shifted positions (0: exact only)
    int max_generations = 16; // per request: prompts × n
};

// One [[models]] entry: a local GGUF or a pool of upstream OpenAI-compatible servers
// (docs/models.md). Without any, [model] is the one local model.
struct FleetModelConfig {
    std::string id;
    std::string version = "1";
    std::string backend = "local";                           // local | upstream | lora
    std::vector<std::string> roles = {"completion", "chat"}; // completion | chat | embedding
    std::vector<std::string> aliases;                        // other names requests may use
    std::vector<std::string> tenants;                        // visible only to these tenants (empty: all)
    std::vector<std::string> fallback;                       // models tried in order when this one is down
    std::string canary_of; // a new version of that model: takes canary_share % of its traffic
    int canary_share = 0;  // 0-100, sticky per caller
    std::vector<std::string> canary_tenants; // only these tenants' traffic (empty: everyone's)
    ModelConfig local;                       // backend = local: path and engine settings
    // backend = lora: a GGUF LoRA adapter (local.path) applied on top of local model `base`.
    std::string base;
    float lora_scale = 1.0f;
    std::vector<std::string> attach_tenants; // these tenants' requests routed to `base` get the adapter
    // backend = upstream:
    std::vector<std::string> urls; // replicas: http[s]://host:port
    std::string upstream_model;    // `model` sent upstream (default: id)
    std::string api_key_file;      // Bearer key, by reference only (never in TOML) ...
    std::string api_key_env;       // ... or the name of an environment variable
    std::string ca_file;           // https: trust this bundle
    std::string fim;               // the remote model's FIM family (starcoder, qwen_coder, ...); "": no FIM
    int context = 4096;            // tokens per request the remote model takes
    int connect_timeout_ms = 2000;
    int first_byte_timeout_ms = 30000;
    int idle_timeout_ms = 30000;
    int max_attempts = 3; // replicas tried before the first byte of an answer
    int health_interval_ms = 5000;
    int breaker_failures = 3;
    int breaker_cooldown_ms = 5000;
};

struct RoutingRuleConfig {
    std::string task;          // completion | chat | embedding ("": any)
    std::string tenant;        // tenant name ("": any)
    std::string tier;          // x-codepilot-tier header value ("": any)
    int min_prompt_tokens = 0; // prompts at least this long
    std::string model;         // where matching requests go
};

struct RoutingConfig {
    std::string completion, chat, embedding; // default model per task ("": the first with the role)
    std::vector<RoutingRuleConfig> rules;    // first match wins
};

struct CompletionConfig {
    std::string fim_template = "auto";     // auto | psm | spm | family | "...{prefix}...{suffix}..."
    int max_prompt_tokens = 1536;          // prompt budget: nearest code, then context snippets
    int max_tokens = 64;                   // default completion length
    int deadline_ms = 30000;               // server-side limit; the text so far is returned on expiry
    std::string repo_name = "repo";        // after <repo_name> for models with repo-level tokens
    bool current_line_after_middle = true; // typing on a line re-evaluates only that line
    bool stable_windows = true; // with shifted reuse: a window's dropped first line leaves the rest reusable
};

// The exact-response cache (api/response_cache.h): greedy generations answered again from memory.
struct CacheConfig {
    int responses = 0;    // generations kept at most (0: off)
    int response_mb = 64; // and at most this many MiB of them
};

struct StoreConfig {
    std::string url;   // sqlite:///path | postgresql://user:pw@host:port/db; empty: sqlite under data_dir
    int pool_size = 4; // connections per process
};

// A directory group that grants a role in a tenant (created on first use).
struct LdapGroupMapping {
    std::string group;  // group DN (memberOf value or group-search result), compared case-insensitively
    std::string tenant; // tenant name
    std::string role;   // owner | admin | developer | auditor | viewer
};

struct LdapConfig {
    bool enabled = false;
    std::string url;     // ldaps://host:636, or ldap://host:389 with start_tls
    std::string bind_dn; // service account used to find users
    // Its password only by reference, read at each service bind (never stored, never in TOML):
    std::string bind_password_file;               // a file readable only by codepilot (first line) ...
    std::string bind_password_env;                // ... or the name of an environment variable
    std::string base_dn;                          // where users are searched
    std::string user_filter = "(uid={username})"; // {username} is escaped (RFC 4515)
    std::string display_name_attribute = "cn";
    std::string email_attribute = "mail";
    std::string group_attribute = "memberOf"; // on the user entry; empty: none
    std::string group_base_dn;                // POSIX groups: search here ...
    std::string group_filter; // ... with e.g. (&(objectClass=posixGroup)(memberUid={username}))
    bool start_tls = false;
    std::string ca_file;
    bool tls_verify = true;
    // ldap:// without StartTLS, or tls_verify = false, is refused unless this is set (in the
    // config file only: the admin API cannot turn it on); a warning is logged while it is used.
    bool allow_insecure = false;
    int timeout_ms = 5000;
    std::vector<LdapGroupMapping> group_map;
};

struct OidcConfig {
    bool enabled = false;
    std::string issuer;          // required `iss`
    std::string audience;        // required in `aud`
    std::string jwks_file;       // keys from a file ...
    std::string jwks_url;        // ... or from an https URL (cached; refreshed on an unknown kid)
    std::string ca_file;         // https jwks_url: trust this CA bundle (default: the system's)
    bool allow_insecure = false; // an http:// jwks_url; config file only, as for auth.ldap
    std::vector<std::string> algorithms = {"RS256", "ES256"};
    int leeway_s = 60;
    std::string username_claim = "preferred_username"; // falls back to `sub`
    std::string tenant_claim = "tenant";
    std::string role_claim = "role";
    std::string default_role = "developer"; // when the token names a tenant but no role
    int jwks_refresh_min_interval_s = 30;   // at most one fetch per interval on unknown kids
};

struct AuthConfig {
    bool enabled = true; // `serve --auth off` only on loopback
    int session_ttl_s = 12 * 3600;
    bool metrics_public = true;     // /metrics without credentials (it carries no user data)
    int max_body_bytes = 16 * 1024; // /auth/* request bodies
    // Failed sign-ins per address and per account: free, then doubling waits, then a lock.
    int sign_in_free_failures = 5;
    int sign_in_max_delay_s = 60;
    int sign_in_lock_failures = 20;
    int sign_in_lock_s = 900;
    int bootstrap_key_ttl_s = 7 * 86400; // the first start's owner key lapses after this
    LdapConfig ldap;
    OidcConfig oidc;
};

// The guard (docs/guard.md): what becomes of a secret found in a prompt part.
struct GuardPolicyConfig {
    std::string prompts = "redact"; // redact (typed placeholders) | block (400) | log (count only) | off
    std::string output = "mask";    // model output: mask | end (stop the answer) | log | off
    bool pii = false;               // also e-mail, phone, IBAN, card numbers
    std::vector<std::string> deny;  // output denylist: RE2 patterns (case-insensitive) treated as secrets
};
struct GuardTenantConfig {
    std::string name; // tenant name
    GuardPolicyConfig policy;
};
struct GuardConfig {
    GuardPolicyConfig policy;               // everyone's, and callers without a tenant
    std::vector<GuardTenantConfig> tenants; // [[guard.tenants]]: a tenant's own
    std::string rules_file;                 // replaces the built-in rules (rules.toml form)
};

struct AuditConfig {
    std::string durability = "batched"; // sync: a response waits for its record's commit | batched | off
    int flush_ms = 100;                 // batched: the longest a record waits for its group commit
    int capacity = 65536;               // records waiting; beyond it requests get 503
    std::string store_prompts = "none"; // none | redacted (secrets masked) | encrypted (AES-256-GCM)
    std::string
        key_file; // encrypted: "id:base64url(32 bytes)" lines, newest first; else $CODEPILOT_AUDIT_KEYS
    std::string chain_key_file; // HMAC chain keys, same form; else $CODEPILOT_AUDIT_CHAIN_KEYS, else
                                // data_dir/audit-chain.key
    std::string anchor_file;    // the head appended as JSON lines; "": data_dir/audit-anchors.jsonl
    int anchor_interval_s = 60; // 0: no anchors
    bool anchor_syslog = false; // each anchor also to syslog(3)
};

struct QuotaConfig {
    // redis://host:6379[/db] or rediss://host:6379[/db] (TLS): counters shared by replicas; empty:
    // in process. Plain redis:// to a host that is not loopback needs redis_allow_insecure.
    std::string redis_url;
    std::string redis_failure = "open"; // Redis unreachable: open (admit without limits) | closed (503)
    int redis_timeout_ms = 200;         // each of: connecting (TCP and TLS), one command
    std::string redis_username;         // AUTH as this ACL user (Redis 6+); empty: the default user
    // The AUTH password only by reference, read at each connect (never in TOML, never logged):
    std::string redis_password_file; // a file readable only by codepilot (first line) ...
    std::string redis_password_env;  // ... or the name of an environment variable
    std::string redis_ca_file;       // rediss://: trust this CA bundle (default: the system's)
    std::string redis_cert_file;     // rediss:// to a Redis with tls-auth-clients: this client certificate
    std::string redis_key_file;      // ... and its key
    bool redis_allow_insecure = false;
    int default_key_concurrency = 8; // generations at once per API key without a limit of its own (0: none)
};

// A parsed quota.redis_url.
struct RedisAddress {
    bool tls = false; // rediss://
    std::string host; // without the brackets of an IPv6 literal
    int port = 6379;
    int db = 0;
};
// redis[s]://host[:port][/db]; a user or password in the URL is refused (they are settings).
Result<RedisAddress> parse_redis_url(const std::string& url);

struct Config {
    std::string data_dir = "./data";
    ServerConfig server;
    ModelConfig model;
    std::vector<FleetModelConfig> models;
    RoutingConfig routing;
    CompletionConfig completion;
    CacheConfig cache;
    StoreConfig store;
    AuthConfig auth;
    AuditConfig audit;
    GuardConfig guard;
    QuotaConfig quota;
};

// The store URL in effect: store.url, or SQLite under data_dir.
std::string store_url(const Config& config);
// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host);
const std::vector<std::string>& role_names();

// Parses TOML text; unknown keys and wrong types are errors naming the key.
Result<Config> parse_config(const std::string& toml_text, const std::string& source_name = "config");
// Reads and parses a file.
Result<Config> load_config_file(const std::string& path);
// Checks ranges and relations between values.
Status validate(const Config& config);
Status validate_tls(const ServerConfig& server);
Status validate_ldap(const LdapConfig& ldap);
Status validate_oidc(const OidcConfig& oidc);
Status validate_quota(const QuotaConfig& quota);
Status validate_models(const std::vector<FleetModelConfig>& models, const RoutingConfig& routing);
// One [[models]] entry as TOML keys (the registry's form: `codepilot model register`, the
// admin API), checked like an entry of the file; references to other models are the fleet's to check.
Result<FleetModelConfig> parse_model_entry(const std::string& toml_text);

} // namespace codepilot::config
