#include "auth/ldap_directory.h"

#include "auth/access_rules.h"
#include "core/private_files.h"
#include "core/secret_reference.h"

#include <algorithm>
#include <ldap.h>
#include <map>
#include <memory>
#include <spdlog/spdlog.h>

namespace codepilot::auth {

std::string escape_ldap_filter_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        switch (c) {
        case '*':
            out += "\\2a";
            break;
        case '(':
            out += "\\28";
            break;
        case ')':
            out += "\\29";
            break;
        case '\\':
            out += "\\5c";
            break;
        case '\0':
            out += "\\00";
            break;
        default:
            out += c;
        }
    }
    return out;
}

namespace {

std::string substitute(std::string text, const std::string& key, const std::string& value) {
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + value.size()))
        text.replace(at, key.size(), value);
    return text;
}

std::string normalize_dn(std::string dn) {
    std::string out;
    bool after_comma = false;
    for (char c : dn) {
        if (after_comma && c == ' ') continue;
        after_comma = c == ',';
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

Error unavailable(const std::string& what, int rc) {
    return make_error(ErrorCode::unavailable, "LDAP " + what + ": " + ldap_err2string(rc));
}
Error invalid() {
    return make_error(ErrorCode::invalid_argument, "invalid credentials");
}

constexpr const char* kTlsHint =
    "is the directory's certificate issued by a CA in auth.ldap.ca_file (or the system's) and for the "
    "host name in auth.ldap.url?";

using Handle = std::unique_ptr<LDAP, void (*)(LDAP*)>;
void unbind(LDAP* ld) {
    if (ld) ldap_unbind_ext_s(ld, nullptr, nullptr);
}
using Message = std::unique_ptr<LDAPMessage, int (*)(LDAPMessage*)>;

Result<Handle> connect(const config::LdapConfig& c) {
    LDAP* raw = nullptr;
    int rc = ldap_initialize(&raw, c.url.c_str());
    Handle ld(raw, unbind);
    if (rc != LDAP_SUCCESS) return unavailable("initialize", rc);
    int version = LDAP_VERSION3;
    ldap_set_option(ld.get(), LDAP_OPT_PROTOCOL_VERSION, &version);
    ldap_set_option(ld.get(), LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    timeval tv{c.timeout_ms / 1000, (c.timeout_ms % 1000) * 1000};
    ldap_set_option(ld.get(), LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld.get(), LDAP_OPT_TIMEOUT, &tv);
    if (c.start_tls || c.url.rfind("ldaps://", 0) == 0) {
        int require = c.tls_verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
        ldap_set_option(ld.get(), LDAP_OPT_X_TLS_REQUIRE_CERT, &require);
        if (!c.ca_file.empty()) ldap_set_option(ld.get(), LDAP_OPT_X_TLS_CACERTFILE, c.ca_file.c_str());
        int is_server = 0;
        ldap_set_option(ld.get(), LDAP_OPT_X_TLS_NEWCTX, &is_server);
    }
    if (c.start_tls) {
        // libldap (GnuTLS) says no more than "Connect error": name what is worth checking.
        if (int r = ldap_start_tls_s(ld.get(), nullptr, nullptr); r != LDAP_SUCCESS)
            return make_error(ErrorCode::unavailable, "LDAP StartTLS with " + c.url + ": " +
                                                          ldap_err2string(r) + " (" + kTlsHint +
                                                          ", or the directory does not offer StartTLS)");
    }
    return ld;
}

// An ldaps:// handshake that fails reads as an unreachable server: say that it may be TLS.
Error unavailable_at(const config::LdapConfig& c, const std::string& what, int rc) {
    auto error = unavailable(what, rc);
    if (rc == LDAP_SERVER_DOWN && c.url.rfind("ldaps://", 0) == 0)
        error.message += " (" + c.url + " is unreachable, or the TLS handshake failed: " + kTlsHint + ")";
    return error;
}

int simple_bind(LDAP* ld, const std::string& dn, const std::string& password) {
    berval cred{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
    return ldap_sasl_bind_s(ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
}

bool is_down(int rc) {
    return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT;
}

std::vector<std::string> values(LDAP* ld, LDAPMessage* entry, const std::string& attribute) {
    std::vector<std::string> out;
    if (attribute.empty()) return out;
    berval** vals = ldap_get_values_len(ld, entry, attribute.c_str());
    if (!vals) return out;
    for (int i = 0; vals[i]; ++i) out.emplace_back(vals[i]->bv_val, vals[i]->bv_len);
    ldap_value_free_len(vals);
    return out;
}

} // namespace

Result<std::string> read_bind_password(const config::LdapConfig& c) {
    return read_secret(
        {c.bind_password_file, c.bind_password_env, "bind_password_file", "bind_password_env"});
}

LdapDirectory::LdapDirectory(config::LdapConfig config) : config_(std::move(config)) {
    if (!config_.bind_password_file.empty()) {
        if (auto loose = looser_mode_warning(config_.bind_password_file, kPrivateFileMode))
            spdlog::warn("auth.ldap.bind_password_file: {}", *loose);
    }
    if (!config_.bind_dn.empty() && config_.bind_password_file.empty() && config_.bind_password_env.empty())
        spdlog::warn("auth.ldap: bind_dn is set but neither bind_password_file nor bind_password_env: "
                     "sign-ins fail until one is set");
    else if (auto password = read_bind_password(config_); !password)
        spdlog::warn("auth.ldap: {}", password.error().message);
    // Validation let these through only with the opt-out; say so at every start.
    if (config_.url.rfind("ldap://", 0) == 0 && !config_.start_tls)
        spdlog::warn("auth.ldap: allow_insecure: {} without StartTLS: the service account's and users' "
                     "passwords cross the network in clear",
                     config_.url);
    if (!config_.tls_verify)
        spdlog::warn("auth.ldap: allow_insecure: tls_verify = false: the directory's certificate is not "
                     "checked, so anyone on the path can read the passwords");
}

Result<DirectoryUser> LdapDirectory::authenticate(const std::string& username,
                                                  const std::string& password) const {
    // An empty password would make the bind "unauthenticated" and succeed (RFC 4513 §5.1.2).
    if (username.empty() || password.empty() || username.size() > 256) return invalid();
    auto service = connect(config_);
    if (!service) return service.error();
    LDAP* ld = service->get();
    if (!config_.bind_dn.empty()) {
        auto secret = read_bind_password(config_);
        if (!secret)
            return make_error(ErrorCode::unavailable,
                              "LDAP service bind as " + config_.bind_dn + ": " + secret.error().message);
        // An empty password would be an unauthenticated bind (RFC 4513 §5.1.2), never meant here.
        if (secret->empty())
            return make_error(ErrorCode::unavailable, "LDAP service bind as " + config_.bind_dn +
                                                          ": no password (set bind_password_file or "
                                                          "bind_password_env)");
        int rc = simple_bind(ld, config_.bind_dn, *secret);
        if (rc != LDAP_SUCCESS) return unavailable_at(config_, "service bind as " + config_.bind_dn, rc);
    }

    const std::string escaped = escape_ldap_filter_value(username);
    const std::string filter = substitute(config_.user_filter, "{username}", escaped);
    std::vector<std::string> attr_names = {config_.display_name_attribute, config_.email_attribute};
    if (!config_.group_attribute.empty()) attr_names.push_back(config_.group_attribute);
    attr_names.push_back("entryUUID"); // operational (RFC 4530): returned only when asked for
    std::vector<char*> attrs;
    for (auto& a : attr_names) attrs.push_back(a.data());
    attrs.push_back(nullptr);
    timeval tv{config_.timeout_ms / 1000, (config_.timeout_ms % 1000) * 1000};
    LDAPMessage* raw = nullptr;
    int rc = ldap_search_ext_s(ld, config_.base_dn.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attrs.data(),
                               0, nullptr, nullptr, &tv, 2, &raw);
    Message result(raw, ldap_msgfree);
    if (is_down(rc)) return unavailable_at(config_, "search", rc);
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) return unavailable("search", rc);
    if (ldap_count_entries(ld, result.get()) != 1) return invalid(); // none, or ambiguous

    LDAPMessage* entry = ldap_first_entry(ld, result.get());
    DirectoryUser user;
    char* dn = ldap_get_dn(ld, entry);
    user.dn = dn ? dn : "";
    ldap_memfree(dn);
    auto names = values(ld, entry, config_.display_name_attribute);
    if (!names.empty()) user.display_name = names.front();
    auto mails = values(ld, entry, config_.email_attribute);
    if (!mails.empty()) user.email = mails.front();
    user.groups = values(ld, entry, config_.group_attribute);
    auto uuids = values(ld, entry, "entryUUID");
    if (!uuids.empty()) user.entry_uuid = uuids.front();

    // The user's own bind proves the password; a fresh connection keeps the service bind clean.
    auto own = connect(config_);
    if (!own) return own.error();
    rc = simple_bind(own->get(), user.dn, password);
    if (is_down(rc)) return unavailable("bind", rc);
    if (rc != LDAP_SUCCESS) return invalid();

    if (!config_.group_filter.empty()) {
        std::string group_filter = substitute(substitute(config_.group_filter, "{username}", escaped), "{dn}",
                                              escape_ldap_filter_value(user.dn));
        char no_attrs[] = "1.1";
        char* group_attrs[] = {no_attrs, nullptr};
        LDAPMessage* graw = nullptr;
        rc = ldap_search_ext_s(ld, config_.group_base_dn.c_str(), LDAP_SCOPE_SUBTREE, group_filter.c_str(),
                               group_attrs, 0, nullptr, nullptr, &tv, 1000, &graw);
        Message groups(graw, ldap_msgfree);
        if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) return unavailable("group search", rc);
        for (auto* g = ldap_first_entry(ld, groups.get()); g; g = ldap_next_entry(ld, g)) {
            char* gdn = ldap_get_dn(ld, g);
            if (gdn) user.groups.emplace_back(gdn);
            ldap_memfree(gdn);
        }
    }
    return user;
}

std::vector<std::pair<std::string, std::string>>
LdapDirectory::map_groups(const std::vector<std::string>& groups) const {
    std::map<std::string, Role> best;
    for (const auto& g : groups) {
        const std::string dn = normalize_dn(g);
        for (const auto& m : config_.group_map) {
            if (normalize_dn(m.group) != dn) continue;
            auto role = parse_role(m.role);
            if (!role) continue;
            auto it = best.find(m.tenant);
            if (it == best.end() || role_rank(*role) > role_rank(it->second)) best[m.tenant] = *role;
        }
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [tenant, role] : best) out.emplace_back(tenant, std::string(to_string(role)));
    return out;
}

} // namespace codepilot::auth
