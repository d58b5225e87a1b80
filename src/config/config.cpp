// TOML → Config, rejecting unknown keys so that a typo never silently falls back to a default.
#include "config/config.h"

#include "config/setters.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <toml++/toml.h>

namespace codepilot::config {
namespace {

Setter group_map(std::vector<LdapGroupMapping>& target) {
    return [&target](const toml::node& node) -> std::string {
        const auto* array = node.as_array();
        if (!array) return "must be an array of tables ([[auth.ldap.group_map]])";
        std::vector<LdapGroupMapping> out;
        for (const auto& item : *array) {
            const auto* table = item.as_table();
            if (!table) return "must be an array of tables ([[auth.ldap.group_map]])";
            LdapGroupMapping m;
            for (const auto& [key, value] : *table) {
                std::string k(key.str());
                std::string* field = k == "group"    ? &m.group
                                     : k == "tenant" ? &m.tenant
                                     : k == "role"   ? &m.role
                                                     : nullptr;
                if (!field) return "has an unknown key '" + k + "' (group, tenant, role)";
                if (!value.is_string()) return "'" + k + "' must be a string";
                *field = *value.value<std::string>();
            }
            if (m.group.empty() || m.tenant.empty() || m.role.empty())
                return "entries need group, tenant and role";
            out.push_back(std::move(m));
        }
        target = std::move(out);
        return "";
    };
}

Setter guard_tenants(std::vector<GuardTenantConfig>& target) {
    return [&target](const toml::node& node) -> std::string {
        const auto* array = node.as_array();
        if (!array) return "must be an array of tables ([[guard.tenants]])";
        std::vector<GuardTenantConfig> out;
        for (const auto& item : *array) {
            const auto* table = item.as_table();
            if (!table) return "must be an array of tables ([[guard.tenants]])";
            GuardTenantConfig t;
            for (const auto& [key, value] : *table) {
                std::string k(key.str());
                if (k == "pii") {
                    if (!value.is_boolean()) return "'pii' must be true or false";
                    t.policy.pii = *value.value<bool>();
                    continue;
                }
                if (k == "deny") {
                    if (auto err = strings(t.policy.deny)(value); !err.empty()) return "'deny' " + err;
                    continue;
                }
                std::string* field = k == "name"      ? &t.name
                                     : k == "prompts" ? &t.policy.prompts
                                     : k == "output"  ? &t.policy.output
                                                      : nullptr;
                if (!field) return "has an unknown key '" + k + "' (name, prompts, output, pii, deny)";
                if (!value.is_string()) return "'" + k + "' must be a string";
                *field = *value.value<std::string>();
            }
            if (t.name.empty()) return "entries need a tenant name";
            out.push_back(std::move(t));
        }
        target = std::move(out);
        return "";
    };
}

std::map<std::string, Setter> setters(Config& c) {
    constexpr int64_t kBig = int64_t{1} << 40;
    return {
        {"data_dir", string(c.data_dir)},
        {"server.host", string(c.server.host)},
        {"server.port", integer(c.server.port, 0, 65535)},
        {"server.io_threads", integer(c.server.io_threads, 1, 256)},
        {"server.max_body_bytes", integer(c.server.max_body_bytes, 1024, kBig)},
        {"server.max_header_bytes", integer(c.server.max_header_bytes, 1024, 1 << 20)},
        {"server.read_timeout_s", integer(c.server.read_timeout_s, 1, 3600)},
        {"server.keep_alive_timeout_s", integer(c.server.keep_alive_timeout_s, 1, 3600)},
        {"server.shutdown_grace_s", integer(c.server.shutdown_grace_s, 0, 3600)},
        {"server.max_connections", integer(c.server.max_connections, 1, 1000000)},
        {"server.max_connections_per_ip", integer(c.server.max_connections_per_ip, 1, 1000000)},
        {"server.header_timeout_s", integer(c.server.header_timeout_s, 1, 3600)},
        {"server.worker_threads", integer(c.server.worker_threads, 0, 1024)},
        {"server.sign_in_threads", integer(c.server.sign_in_threads, 0, 256)},
        {"server.worker_queue", integer(c.server.worker_queue, 1, 1 << 20)},
        {"server.tls.cert_file", string(c.server.tls.cert_file)},
        {"server.tls.key_file", string(c.server.tls.key_file)},
        {"server.tls.min_version", string(c.server.tls.min_version)},
        {"server.tls.client_ca_file", string(c.server.tls.client_ca_file)},
        {"server.tls.client_auth", string(c.server.tls.client_auth)},
        {"server.tls.plaintext_port", integer(c.server.tls.plaintext_port, 0, 65535)},
        {"server.tls.hsts_max_age_s", integer(c.server.tls.hsts_max_age_s, 0, 2 * 31536000)},
        {"server.cors.allowed_origins", strings(c.server.cors.allowed_origins)},
        {"server.cors.max_age_s", integer(c.server.cors.max_age_s, 0, 86400)},
        {"model.path", string(c.model.path)},
        {"model.name", string(c.model.name)},
        {"model.threads", integer(c.model.threads, 0, 1024)},
        {"model.parallel", integer(c.model.parallel, 1, 256)},
        {"model.ctx", integer(c.model.ctx, 64, 1 << 22)},
        {"model.batch", integer(c.model.batch, 16, 1 << 16)},
        {"model.max_tokens_cap", integer(c.model.max_tokens_cap, 1, 1 << 22)},
        {"model.queue_size", integer(c.model.queue_size, 0, 1 << 20)},
        {"model.embeddings", boolean(c.model.embeddings)},
        {"model.gpu_layers", integer(c.model.gpu_layers, -1, 100000)},
        {"model.deterministic", boolean(c.model.deterministic)},
        {"model.kv_unified", boolean(c.model.kv_unified)},
        {"model.speculative_draft", integer(c.model.speculative_draft, 0, 64)},
        {"model.kv_shift_min_chunk", integer(c.model.kv_shift_min_chunk, 0, 1 << 20)},
        {"model.max_generations", integer(c.model.max_generations, 1, 4096)},
        {"models", [&c](const toml::node& n) { return parse_models(n, c.models); }},
        {"routing.completion", string(c.routing.completion)},
        {"routing.chat", string(c.routing.chat)},
        {"routing.embedding", string(c.routing.embedding)},
        {"routing.rules", [&c](const toml::node& n) { return parse_routing_rules(n, c.routing.rules); }},
        {"completion.fim_template", string(c.completion.fim_template)},
        {"completion.max_prompt_tokens", integer(c.completion.max_prompt_tokens, 64, 1 << 20)},
        {"completion.max_tokens", integer(c.completion.max_tokens, 1, 1 << 16)},
        {"completion.deadline_ms", integer(c.completion.deadline_ms, 100, 3600000)},
        {"completion.repo_name", string(c.completion.repo_name)},
        {"completion.current_line_after_middle", boolean(c.completion.current_line_after_middle)},
        {"completion.stable_windows", boolean(c.completion.stable_windows)},
        {"cache.responses", integer(c.cache.responses, 0, 10000000)},
        {"cache.response_mb", integer(c.cache.response_mb, 1, 1 << 20)},
        {"store.url", string(c.store.url)},
        {"audit.durability", string(c.audit.durability)},
        {"quota.redis_url", string(c.quota.redis_url)},
        {"quota.redis_failure", string(c.quota.redis_failure)},
        {"quota.redis_timeout_ms", integer(c.quota.redis_timeout_ms, 10, 10000)},
        {"quota.default_key_concurrency", integer(c.quota.default_key_concurrency, 0, 1 << 20)},
        {"quota.redis_username", string(c.quota.redis_username)},
        {"quota.redis_password",
         refused(
             "is not accepted: a password must not sit in the config file; set redis_password_file (a "
             "file only codepilot may read) or redis_password_env (the name of an environment variable)")},
        {"quota.redis_password_file", string(c.quota.redis_password_file)},
        {"quota.redis_password_env", string(c.quota.redis_password_env)},
        {"quota.redis_ca_file", string(c.quota.redis_ca_file)},
        {"quota.redis_cert_file", string(c.quota.redis_cert_file)},
        {"quota.redis_key_file", string(c.quota.redis_key_file)},
        {"quota.redis_allow_insecure", boolean(c.quota.redis_allow_insecure)},
        {"audit.flush_ms", integer(c.audit.flush_ms, 1, 10000)},
        {"audit.store_prompts", string(c.audit.store_prompts)},
        {"audit.key_file", string(c.audit.key_file)},
        {"audit.capacity", integer(c.audit.capacity, 16, 10000000)},
        {"audit.chain_key_file", string(c.audit.chain_key_file)},
        {"audit.anchor_file", string(c.audit.anchor_file)},
        {"audit.anchor_interval_s", integer(c.audit.anchor_interval_s, 0, 86400)},
        {"audit.anchor_syslog", boolean(c.audit.anchor_syslog)},
        {"guard.prompts", string(c.guard.policy.prompts)},
        {"guard.pii", boolean(c.guard.policy.pii)},
        {"guard.output", string(c.guard.policy.output)},
        {"guard.deny", strings(c.guard.policy.deny)},
        {"guard.rules_file", string(c.guard.rules_file)},
        {"guard.tenants", guard_tenants(c.guard.tenants)},
        {"store.pool_size", integer(c.store.pool_size, 1, 256)},
        {"auth.enabled", boolean(c.auth.enabled)},
        {"auth.session_ttl_s", integer(c.auth.session_ttl_s, 60, 90 * 86400)},
        {"auth.metrics_public", boolean(c.auth.metrics_public)},
        {"auth.max_body_bytes", integer(c.auth.max_body_bytes, 1024, 1 << 20)},
        {"auth.sign_in_free_failures", integer(c.auth.sign_in_free_failures, 1, 1000)},
        {"auth.sign_in_max_delay_s", integer(c.auth.sign_in_max_delay_s, 1, 86400)},
        {"auth.sign_in_lock_failures", integer(c.auth.sign_in_lock_failures, 1, 100000)},
        {"auth.sign_in_lock_s", integer(c.auth.sign_in_lock_s, 1, 30 * 86400)},
        {"auth.bootstrap_key_ttl_s", integer(c.auth.bootstrap_key_ttl_s, 60, 366 * 86400)},
        {"auth.ldap.enabled", boolean(c.auth.ldap.enabled)},
        {"auth.ldap.url", string(c.auth.ldap.url)},
        {"auth.ldap.bind_dn", string(c.auth.ldap.bind_dn)},
        {"auth.ldap.bind_password",
         refused(
             "is not accepted: a password must not sit in the config file; set bind_password_file (a file "
             "only codepilot may read) or bind_password_env (the name of an environment variable)")},
        {"auth.ldap.bind_password_file", string(c.auth.ldap.bind_password_file)},
        {"auth.ldap.bind_password_env", string(c.auth.ldap.bind_password_env)},
        {"auth.ldap.base_dn", string(c.auth.ldap.base_dn)},
        {"auth.ldap.user_filter", string(c.auth.ldap.user_filter)},
        {"auth.ldap.display_name_attribute", string(c.auth.ldap.display_name_attribute)},
        {"auth.ldap.email_attribute", string(c.auth.ldap.email_attribute)},
        {"auth.ldap.group_attribute", string(c.auth.ldap.group_attribute)},
        {"auth.ldap.group_base_dn", string(c.auth.ldap.group_base_dn)},
        {"auth.ldap.group_filter", string(c.auth.ldap.group_filter)},
        {"auth.ldap.start_tls", boolean(c.auth.ldap.start_tls)},
        {"auth.ldap.ca_file", string(c.auth.ldap.ca_file)},
        {"auth.ldap.tls_verify", boolean(c.auth.ldap.tls_verify)},
        {"auth.ldap.allow_insecure", boolean(c.auth.ldap.allow_insecure)},
        {"auth.ldap.timeout_ms", integer(c.auth.ldap.timeout_ms, 100, 120000)},
        {"auth.ldap.group_map", group_map(c.auth.ldap.group_map)},
        {"auth.oidc.enabled", boolean(c.auth.oidc.enabled)},
        {"auth.oidc.issuer", string(c.auth.oidc.issuer)},
        {"auth.oidc.audience", string(c.auth.oidc.audience)},
        {"auth.oidc.jwks_file", string(c.auth.oidc.jwks_file)},
        {"auth.oidc.jwks_url", string(c.auth.oidc.jwks_url)},
        {"auth.oidc.ca_file", string(c.auth.oidc.ca_file)},
        {"auth.oidc.allow_insecure", boolean(c.auth.oidc.allow_insecure)},
        {"auth.oidc.algorithms", strings(c.auth.oidc.algorithms)},
        {"auth.oidc.leeway_s", integer(c.auth.oidc.leeway_s, 0, 600)},
        {"auth.oidc.username_claim", string(c.auth.oidc.username_claim)},
        {"auth.oidc.tenant_claim", string(c.auth.oidc.tenant_claim)},
        {"auth.oidc.role_claim", string(c.auth.oidc.role_claim)},
        {"auth.oidc.default_role", string(c.auth.oidc.default_role)},
        {"auth.oidc.jwks_refresh_min_interval_s", integer(c.auth.oidc.jwks_refresh_min_interval_s, 0, 86400)},
    };
}

std::string walk(const toml::table& table, const std::string& prefix, std::map<std::string, Setter>& known,
                 const std::string& source) {
    for (const auto& [key, node] : table) {
        std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
        if (const auto* sub = node.as_table()) {
            bool is_section = false;
            for (const auto& [k, _] : known) is_section |= k.rfind(name + ".", 0) == 0;
            if (!is_section) return source + ": unknown section [" + name + "]";
            if (auto err = walk(*sub, name, known, source); !err.empty()) return err;
            continue;
        }
        auto it = known.find(name);
        if (it == known.end()) return source + ": unknown key '" + name + "'";
        if (auto err = it->second(node); !err.empty()) return source + ": '" + name + "' " + err;
    }
    return "";
}

} // namespace

Result<Config> parse_config(const std::string& toml_text, const std::string& source_name) {
    Config config;
    toml::table table;
    try {
        table = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        std::ostringstream msg;
        msg << source_name << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
            << e.description();
        return make_error(ErrorCode::invalid_argument, msg.str());
    }
    auto known = setters(config);
    if (auto err = walk(table, "", known, source_name); !err.empty())
        return make_error(ErrorCode::invalid_argument, err);
    if (auto status = validate(config); !status) return status.error();
    return config;
}

Result<Config> load_config_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorCode::not_found, "cannot read config file " + path);
    std::stringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path);
}

Status validate(const Config& c) {
    auto bad = [](std::string msg) { return make_error(ErrorCode::invalid_argument, std::move(msg)); };
    if (c.data_dir.empty()) return bad("data_dir must not be empty");
    if (c.server.host.empty()) return bad("server.host must not be empty");
    if (c.model.ctx < c.model.parallel * 16)
        return bad("model.ctx (" + std::to_string(c.model.ctx) + ") is too small for model.parallel (" +
                   std::to_string(c.model.parallel) + "): each sequence needs at least 16 cells");
    auto prompt_action = [](const std::string& a) {
        return a == "redact" || a == "block" || a == "log" || a == "off";
    };
    if (!prompt_action(c.guard.policy.prompts))
        return bad("guard.prompts must be redact, block, log or off (got '" + c.guard.policy.prompts + "')");
    auto output_action = [](const std::string& a) {
        return a == "mask" || a == "end" || a == "log" || a == "off";
    };
    if (!output_action(c.guard.policy.output))
        return bad("guard.output must be mask, end, log or off (got '" + c.guard.policy.output + "')");
    for (const auto& t : c.guard.tenants) {
        if (!prompt_action(t.policy.prompts))
            return bad("guard.tenants ('" + t.name + "'): prompts must be redact, block, log or off (got '" +
                       t.policy.prompts + "')");
        if (!output_action(t.policy.output))
            return bad("guard.tenants ('" + t.name + "'): output must be mask, end, log or off (got '" +
                       t.policy.output + "')");
    }
    if (c.audit.durability != "sync" && c.audit.durability != "batched" && c.audit.durability != "off")
        return bad("audit.durability must be sync, batched or off (got '" + c.audit.durability + "')");
    if (c.audit.store_prompts != "none" && c.audit.store_prompts != "redacted" &&
        c.audit.store_prompts != "encrypted")
        return bad("audit.store_prompts must be none, redacted or encrypted (got '" + c.audit.store_prompts +
                   "')");
    if (auto st = validate_tls(c.server); !st) return st;
    if (auto st = validate_quota(c.quota); !st) return st;
    if (auto st = validate_ldap(c.auth.ldap); !st) return st;
    if (auto st = validate_oidc(c.auth.oidc); !st) return st;
    if (auto st = validate_models(c.models, c.routing); !st) return st;
    return Ok{};
}

const std::vector<std::string>& role_names() {
    static const std::vector<std::string> names = {"owner", "admin", "developer", "auditor", "viewer"};
    return names;
}

Status validate_tls(const ServerConfig& server) {
    const TlsConfig& t = server.tls;
    auto bad = [](std::string msg) {
        return make_error(ErrorCode::invalid_argument, "server.tls." + std::move(msg));
    };
    for (const auto& origin : server.cors.allowed_origins)
        if (origin != "*" && origin.rfind("https://", 0) != 0 && origin.rfind("http://", 0) != 0)
            return make_error(ErrorCode::invalid_argument,
                              "server.cors.allowed_origins: '" + origin +
                                  "' is not an origin (https://host[:port] or *)");
    if (t.client_auth != "none" && t.client_auth != "optional" && t.client_auth != "required")
        return bad("client_auth must be none, optional or required (got '" + t.client_auth + "')");
    if (t.min_version != "1.2" && t.min_version != "1.3")
        return bad("min_version must be 1.2 or 1.3 (got '" + t.min_version + "')");
    if (!t.enabled()) {
        if (!t.key_file.empty()) return bad("key_file is set but cert_file is not");
        if (t.client_auth != "none") return bad("client_auth needs TLS: set cert_file and key_file");
        if (t.plaintext_port)
            return bad("plaintext_port is only for a TLS server (set cert_file and key_file)");
        return Ok{};
    }
    if (t.key_file.empty()) return bad("cert_file is set but key_file is not");
    if (t.client_auth != "none" && t.client_ca_file.empty())
        return bad("client_auth = " + t.client_auth +
                   " needs client_ca_file (the CA that issues client certificates)");
    if (t.plaintext_port && t.plaintext_port == server.port)
        return bad("plaintext_port must differ from server.port");
    return Ok{};
}

Status validate_ldap(const LdapConfig& l) {
    auto bad = [](std::string msg) {
        return make_error(ErrorCode::invalid_argument, "auth.ldap: " + std::move(msg));
    };
    if (!l.enabled) return Ok{};
    const bool ldaps = l.url.rfind("ldaps://", 0) == 0;
    if (l.url.rfind("ldap://", 0) != 0 && !ldaps) return bad("url must start with ldap:// or ldaps://");
    if (ldaps && l.start_tls) return bad("start_tls is for ldap:// URLs; ldaps:// is TLS from the start");
    // Sign-ins carry passwords (the service account's and every user's): only over verified TLS.
    if (!ldaps && !l.start_tls && !l.allow_insecure)
        return make_error(ErrorCode::invalid_argument,
                          "auth.ldap.url '" + l.url +
                              "' has no TLS, so passwords would cross the network in clear: use "
                              "ldaps://, or set auth.ldap.start_tls = true, or accept plain LDAP with "
                              "auth.ldap.allow_insecure = true");
    if (!l.tls_verify && !l.allow_insecure)
        return make_error(ErrorCode::invalid_argument,
                          "auth.ldap.tls_verify = false accepts any certificate, so whoever is on the path "
                          "reads the passwords: trust the directory's CA with auth.ldap.ca_file instead, or "
                          "accept it with auth.ldap.allow_insecure = true");
    if (l.base_dn.empty()) return bad("base_dn is required");
    if (l.user_filter.find("{username}") == std::string::npos)
        return bad("user_filter must contain {username}");
    if (!l.group_filter.empty() && l.group_base_dn.empty()) return bad("group_filter needs group_base_dn");
    if (!l.bind_password_file.empty() && !l.bind_password_env.empty())
        return bad("set at most one of bind_password_file and bind_password_env");
    for (const auto& m : l.group_map) {
        const auto& roles = role_names();
        if (std::find(roles.begin(), roles.end(), m.role) == roles.end())
            return bad("group_map role '" + m.role +
                       "' is not one of owner, admin, developer, auditor, viewer");
    }
    return Ok{};
}

Status validate_oidc(const OidcConfig& o) {
    auto bad = [](std::string msg) {
        return make_error(ErrorCode::invalid_argument, "auth.oidc: " + std::move(msg));
    };
    if (!o.enabled) return Ok{};
    if (o.issuer.empty()) return bad("issuer is required");
    if (o.audience.empty()) return bad("audience is required");
    if (o.jwks_file.empty() == o.jwks_url.empty()) return bad("set exactly one of jwks_file and jwks_url");
    const bool plain = o.jwks_url.rfind("http://", 0) == 0;
    if (!o.jwks_url.empty() && !plain && o.jwks_url.rfind("https://", 0) != 0)
        return bad("jwks_url must be an https:// URL");
    // Whoever can change the keys in transit can sign any token.
    if (plain && !o.allow_insecure)
        return make_error(ErrorCode::invalid_argument,
                          "auth.oidc.jwks_url '" + o.jwks_url +
                              "' is plain http, so whoever is on the path could substitute signing keys "
                              "and mint tokens: serve it over https:// (auth.oidc.ca_file for an internal "
                              "CA), or accept it with auth.oidc.allow_insecure = true");
    if (o.algorithms.empty()) return bad("algorithms must not be empty");
    for (const auto& a : o.algorithms)
        if (a != "RS256" && a != "ES256") return bad("algorithm '" + a + "' is not allowed (RS256, ES256)");
    const auto& roles = role_names();
    if (std::find(roles.begin(), roles.end(), o.default_role) == roles.end())
        return bad("default_role '" + o.default_role + "' is not a role");
    return Ok{};
}

Result<RedisAddress> parse_redis_url(const std::string& url) {
    auto bad = [&url](const std::string& why) {
        return make_error(ErrorCode::invalid_argument, "quota.redis_url " + why + " (got '" + url + "')");
    };
    static const std::regex pattern(
        R"(^(rediss?)://([^/:@\[\]]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?(?:/(\d{1,4}))?/?$)");
    std::smatch m;
    if (url.find('@') != std::string::npos)
        return bad("must not hold a user or password: set quota.redis_username and quota.redis_password_file "
                   "or quota.redis_password_env");
    if (!std::regex_match(url, m, pattern)) return bad("must look like redis[s]://host[:6379][/db]");
    RedisAddress a;
    a.tls = m[1] == "rediss";
    a.host = m[2];
    if (a.host.front() == '[') a.host = a.host.substr(1, a.host.size() - 2);
    if (m[3].matched) a.port = std::stoi(m[3]);
    if (a.port < 1 || a.port > 65535) return bad("has a port outside 1-65535");
    if (m[4].matched) a.db = std::stoi(m[4]);
    return a;
}

Status validate_quota(const QuotaConfig& q) {
    auto bad = [](std::string msg) { return make_error(ErrorCode::invalid_argument, std::move(msg)); };
    if (q.redis_failure != "open" && q.redis_failure != "closed")
        return bad("quota.redis_failure must be open or closed (got '" + q.redis_failure + "')");
    if (q.redis_url.empty()) return Ok{};
    auto address = parse_redis_url(q.redis_url);
    if (!address) return address.error();
    // Loopback stays open for development; anywhere else the counters (and AUTH) need TLS.
    if (!address->tls && !is_loopback_host(address->host) && !q.redis_allow_insecure)
        return bad("quota.redis_url '" + q.redis_url +
                   "' is plain redis:// to another host, so the counters and the AUTH password would cross "
                   "the network in clear: use rediss:// (with quota.redis_ca_file for an internal CA), or "
                   "accept it with quota.redis_allow_insecure = true");
    if (!address->tls &&
        (!q.redis_ca_file.empty() || !q.redis_cert_file.empty() || !q.redis_key_file.empty()))
        return bad("quota.redis_ca_file, redis_cert_file and redis_key_file are for rediss:// URLs; "
                   "quota.redis_url is plain redis://");
    if (q.redis_cert_file.empty() != q.redis_key_file.empty())
        return bad("quota.redis_cert_file and quota.redis_key_file go together");
    if (!q.redis_password_file.empty() && !q.redis_password_env.empty())
        return bad("quota: set at most one of redis_password_file and redis_password_env");
    if (!q.redis_username.empty() && q.redis_password_file.empty() && q.redis_password_env.empty())
        return bad("quota.redis_username needs its password: set quota.redis_password_file or "
                   "quota.redis_password_env");
    return Ok{};
}

std::string store_url(const Config& c) {
    if (!c.store.url.empty()) return c.store.url;
    return "sqlite://" + (std::filesystem::absolute(c.data_dir) / "codepilot.db").lexically_normal().string();
}

bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "::1" || host == "[::1]") return true;
    return host.rfind("127.", 0) == 0;
}

} // namespace codepilot::config
