// API-key issuance, the first-start bootstrap and the name/duration rules shared by the
// admin API and the CLI.
#include "auth/auth.h"
#include "auth/credentials.h"
#include "core/private_files.h"

#include <charconv>
#include <filesystem>
#include <spdlog/spdlog.h>

namespace codepilot::auth {

std::optional<int64_t> parse_duration_seconds(std::string_view text) {
    if (text.empty()) return std::nullopt;
    int64_t unit = 1;
    switch (text.back()) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    default:
        unit = 0;
    }
    if (unit)
        text.remove_suffix(1);
    else
        unit = 1;
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n <= 0 ||
        n > int64_t{10} * 366 * 86400 / unit)
        return std::nullopt;
    return n * unit;
}

bool valid_tenant_name(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    for (size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.'))) return false;
    }
    return true;
}

bool valid_username(std::string_view name) {
    if (name.empty() || name.size() > 128) return false;
    for (unsigned char c : name)
        if (c <= ' ' || c == '/' || c == 0x7f) return false;
    return true;
}

std::string canonical_username(std::string_view name) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!name.empty() && space(name.front())) name.remove_prefix(1);
    while (!name.empty() && space(name.back())) name.remove_suffix(1);
    std::string out(name);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

Result<IssuedKey> issue_api_key(store::IdentityStore& store, const std::string& tenant_name,
                                const std::string& username, ScopeSet scopes,
                                std::optional<int64_t> ttl_seconds, const std::string& name,
                                const std::string& actor) {
    if (scopes == 0)
        return make_error(ErrorCode::invalid_argument, "a key needs at least one scope", "scopes");
    auto tenant = store.find_tenant(tenant_name);
    if (!tenant) return tenant.error();
    if (!*tenant) return make_error(ErrorCode::not_found, "tenant '" + tenant_name + "' not found", "tenant");
    auto user = store.find_user(username);
    if (!user) return user.error();
    if (!*user) return make_error(ErrorCode::not_found, "user '" + username + "' not found", "user");
    auto members = store.memberships_of_user((*user)->id);
    if (!members) return members.error();
    bool member = false;
    for (const auto& m : *members) member |= m.tenant_id == (*tenant)->id;
    if (!member && !(*user)->server_owner)
        return make_error(ErrorCode::invalid_argument,
                          "user '" + username + "' is not a member of tenant '" + tenant_name + "'", "user");
    auto fresh = generate_api_key();
    store::ApiKey k;
    k.id = store::IdentityStore::new_id();
    k.prefix = fresh.prefix;
    k.secret_hash = fresh.secret_hash;
    k.tenant_id = (*tenant)->id;
    k.tenant_name = tenant_name;
    k.user_id = (*user)->id;
    k.username = username;
    k.name = name;
    k.scopes = scopes_to_string(scopes);
    k.created_at = store.now();
    k.created_by = actor;
    if (ttl_seconds) k.expires_at = k.created_at + *ttl_seconds;
    if (auto st = store.create_api_key(k); !st) return st.error();
    return IssuedKey{fresh.plaintext, k};
}

Result<std::optional<Bootstrap>> bootstrap_owner(store::IdentityStore& store, const std::string& key_file,
                                                 int64_t key_ttl_seconds) {
    auto users = store.count_users();
    if (!users) return users.error();
    if (*users > 0) return std::optional<Bootstrap>{};
    if (!key_file.empty()) {
        // The store is empty, so a key file left from an earlier one opens nothing: replace it.
        // remove() takes a planted symlink away, not its target; the new file is O_EXCL.
        std::error_code ec;
        if (std::filesystem::symlink_status(key_file, ec).type() != std::filesystem::file_type::not_found) {
            spdlog::info("bootstrap: removing {} left from an earlier store", key_file);
            std::filesystem::remove(key_file, ec);
        }
        if (auto st = make_private_dir(std::filesystem::path(key_file).parent_path().string()); !st)
            return st.error();
    }
    auto tenant = store.find_tenant("default");
    if (!tenant) return tenant.error();
    std::string tenant_id;
    if (*tenant) {
        tenant_id = (*tenant)->id;
    } else {
        auto created = store.create_tenant("default");
        if (!created) return created.error();
        tenant_id = created->id;
    }
    store::User owner;
    owner.username = "owner";
    owner.display_name = "Server owner";
    owner.server_owner = true;
    auto user = store.create_user(owner);
    if (!user) return user.error(); // another replica won the race: it writes the key
    if (auto st = store.set_membership(tenant_id, user->id, "owner"); !st) return st.error();
    if (key_file.empty()) return std::optional<Bootstrap>(Bootstrap{});
    auto key =
        issue_api_key(store, "default", "owner", kAllScopes, key_ttl_seconds, "bootstrap", "bootstrap");
    if (!key) return key.error();
    if (auto st = write_private_file(key_file, key->plaintext + "\n"); !st) {
        (void)store.revoke_key(key->record.id); // a key nobody holds
        return make_error(st.error().code, st.error().message +
                                               " (the owner exists; create a key with `codepilot key create "
                                               "--tenant default --user owner`)");
    }
    return std::optional<Bootstrap>(Bootstrap{key_file});
}

} // namespace codepilot::auth
