#include "auth/settings_json.h"

#include "auth/ldap_directory.h"

#include <functional>
#include <map>
#include <spdlog/spdlog.h>

namespace codepilot::auth {
namespace {

using json = nlohmann::json;
using Field = std::function<std::string(const json&)>; // "" or what is wrong

Field text(std::string& target) {
    return [&target](const json& v) -> std::string {
        if (!v.is_string()) return "must be a string";
        target = v.get<std::string>();
        return "";
    };
}
Field flag(bool& target) {
    return [&target](const json& v) -> std::string {
        if (!v.is_boolean()) return "must be true or false";
        target = v.get<bool>();
        return "";
    };
}
Field number(int& target, int min, int max) {
    return [&target, min, max](const json& v) -> std::string {
        if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > max)
            return "must be an integer between " + std::to_string(min) + " and " + std::to_string(max);
        target = v.get<int>();
        return "";
    };
}

Status apply(const json& body, std::map<std::string, Field>& fields, const char* section) {
    if (!body.is_object()) return make_error(ErrorCode::invalid_argument, "the body must be a JSON object");
    for (const auto& [key, value] : body.items()) {
        auto it = fields.find(key);
        if (it == fields.end())
            return make_error(ErrorCode::invalid_argument,
                              std::string("unknown ") + section + " setting '" + key + "'", key);
        if (auto err = it->second(value); !err.empty())
            return make_error(ErrorCode::invalid_argument, "'" + key + "' " + err, key);
    }
    return Ok{};
}

// The transport opt-outs are the operator's, in the config file: a settings change through the
// API cannot downgrade a connection that carries passwords or signing keys.
Field config_file_only(const char* section) {
    return [section](const json&) -> std::string {
        return std::string("is set only in the config file ([") + section +
               "] allow_insecure), not through the API";
    };
}

} // namespace

json ldap_to_json(const config::LdapConfig& l) {
    json groups = json::array();
    for (const auto& m : l.group_map)
        groups.push_back(json{{"group", m.group}, {"tenant", m.tenant}, {"role", m.role}});
    return json{{"enabled", l.enabled},
                {"url", l.url},
                {"bind_dn", l.bind_dn},
                {"bind_password_file", l.bind_password_file},
                {"bind_password_env", l.bind_password_env},
                {"base_dn", l.base_dn},
                {"user_filter", l.user_filter},
                {"display_name_attribute", l.display_name_attribute},
                {"email_attribute", l.email_attribute},
                {"group_attribute", l.group_attribute},
                {"group_base_dn", l.group_base_dn},
                {"group_filter", l.group_filter},
                {"start_tls", l.start_tls},
                {"ca_file", l.ca_file},
                {"tls_verify", l.tls_verify},
                {"timeout_ms", l.timeout_ms},
                {"group_map", groups}};
}

json oidc_to_json(const config::OidcConfig& o) {
    return json{{"enabled", o.enabled},
                {"issuer", o.issuer},
                {"audience", o.audience},
                {"jwks_file", o.jwks_file},
                {"jwks_url", o.jwks_url},
                {"ca_file", o.ca_file},
                {"algorithms", o.algorithms},
                {"leeway_s", o.leeway_s},
                {"username_claim", o.username_claim},
                {"tenant_claim", o.tenant_claim},
                {"role_claim", o.role_claim},
                {"default_role", o.default_role},
                {"jwks_refresh_min_interval_s", o.jwks_refresh_min_interval_s}};
}

Result<config::LdapConfig> ldap_from_json(const json& body, const config::LdapConfig& base) {
    config::LdapConfig l = base;
    std::map<std::string, Field> fields = {
        {"enabled", flag(l.enabled)},
        {"url", text(l.url)},
        {"bind_dn", text(l.bind_dn)},
        {"bind_password",
         [](const json&) -> std::string {
             return "is not accepted: the settings table would hold it in clear; set "
                    "bind_password_file (a file only codepilot may read) or bind_password_env (the name of "
                    "an environment variable)";
         }},
        {"bind_password_file", text(l.bind_password_file)},
        {"bind_password_env", text(l.bind_password_env)},
        {"base_dn", text(l.base_dn)},
        {"user_filter", text(l.user_filter)},
        {"display_name_attribute", text(l.display_name_attribute)},
        {"email_attribute", text(l.email_attribute)},
        {"group_attribute", text(l.group_attribute)},
        {"group_base_dn", text(l.group_base_dn)},
        {"group_filter", text(l.group_filter)},
        {"start_tls", flag(l.start_tls)},
        {"ca_file", text(l.ca_file)},
        {"tls_verify", flag(l.tls_verify)},
        {"allow_insecure", config_file_only("auth.ldap")},
        {"timeout_ms", number(l.timeout_ms, 100, 120000)},
        {"group_map",
         [&l](const json& v) -> std::string {
             if (!v.is_array()) return "must be an array of {group, tenant, role}";
             std::vector<config::LdapGroupMapping> out;
             for (const auto& item : v) {
                 if (!item.is_object() || item.size() != 3 || !item.contains("group") ||
                     !item.contains("tenant") || !item.contains("role") || !item["group"].is_string() ||
                     !item["tenant"].is_string() || !item["role"].is_string())
                     return "entries must be objects with exactly the strings group, tenant and role";
                 out.push_back({item["group"], item["tenant"], item["role"]});
             }
             l.group_map = std::move(out);
             return "";
         }},
    };
    if (auto st = apply(body, fields, "LDAP"); !st) return st.error();
    if (auto st = config::validate_ldap(l); !st) return st.error();
    return l;
}

Result<config::OidcConfig> oidc_from_json(const json& body, const config::OidcConfig& base) {
    config::OidcConfig o = base;
    std::map<std::string, Field> fields = {
        {"enabled", flag(o.enabled)},
        {"issuer", text(o.issuer)},
        {"audience", text(o.audience)},
        {"jwks_file", text(o.jwks_file)},
        {"jwks_url", text(o.jwks_url)},
        {"ca_file", text(o.ca_file)},
        {"allow_insecure", config_file_only("auth.oidc")},
        {"algorithms",
         [&o](const json& v) -> std::string {
             if (!v.is_array()) return "must be an array of strings";
             std::vector<std::string> out;
             for (const auto& a : v) {
                 if (!a.is_string()) return "must be an array of strings";
                 out.push_back(a);
             }
             o.algorithms = std::move(out);
             return "";
         }},
        {"leeway_s", number(o.leeway_s, 0, 600)},
        {"username_claim", text(o.username_claim)},
        {"tenant_claim", text(o.tenant_claim)},
        {"role_claim", text(o.role_claim)},
        {"default_role", text(o.default_role)},
        {"jwks_refresh_min_interval_s", number(o.jwks_refresh_min_interval_s, 0, 86400)},
    };
    if (auto st = apply(body, fields, "OIDC"); !st) return st.error();
    if (auto st = config::validate_oidc(o); !st) return st.error();
    return o;
}

Status check_bind_password(const config::LdapConfig& c) {
    if (!c.enabled) return Ok{};
    if (!c.bind_dn.empty() && c.bind_password_file.empty() && c.bind_password_env.empty())
        return make_error(
            ErrorCode::invalid_argument,
            "bind_dn needs the service account's password: set bind_password_file or bind_password_env",
            "bind_password_file");
    auto password = read_bind_password(c);
    if (!password)
        return make_error(ErrorCode::invalid_argument, password.error().message,
                          c.bind_password_env.empty() ? "bind_password_file" : "bind_password_env");
    return Ok{};
}

Status scrub_saved_secrets(store::IdentityStore& store) {
    auto saved = store.get_setting("ldap");
    if (!saved) return saved.error();
    if (!*saved) return Ok{};
    auto row = json::parse(**saved, nullptr, false);
    if (!row.is_object() || !row.contains("bind_password")) return Ok{};
    const bool had_secret =
        row["bind_password"].is_string() && !row["bind_password"].get<std::string>().empty();
    row.erase("bind_password");
    if (auto st = store.put_setting("ldap", row.dump(), "codepilot"); !st) return st.error();
    if (had_secret)
        spdlog::warn(
            "auth.ldap: the saved LDAP settings held the service account's password in clear (written "
            "by an older version); it is now removed from the database. Set bind_password_file or "
            "bind_password_env (PUT /admin/v1/settings/ldap) so that LDAP sign-in works again");
    return Ok{};
}

} // namespace codepilot::auth
