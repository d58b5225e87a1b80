#include "cli/admin_commands.h"

#include "audit/audit.h"
#include "auth/auth.h"
#include "auth/password.h"
#include "cli/cli_store.h"
#include "config/config.h"
#include "core/clock.h"
#include "store/quota_store.h"
#include "store/store.h"

#include <charconv>
#include <ctime>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

namespace codepilot::cli {
namespace {

std::string when(std::optional<int64_t> t) {
    if (!t) return "-";
    std::time_t tt = static_cast<std::time_t>(*t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::ostringstream out;
    out << std::put_time(&tm, "%Y-%m-%dT%H:%MZ");
    return out.str();
}

// "2026-11-01", "2026-11-01T12:00:00Z" or unix seconds → unix milliseconds (UTC).
std::optional<int64_t> parse_instant_ms(const std::string& text) {
    if (!text.empty() && text.size() <= 12 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::stoll(text) * 1000;
    std::tm tm{};
    std::istringstream in(text);
    if (text.size() == 10)
        in >> std::get_time(&tm, "%Y-%m-%d");
    else
        in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
    if (in.fail()) return std::nullopt;
    return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// The SHA-256 of a PEM certificate's DER encoding, as the server computes it for a client.
Result<std::string> certificate_file_fingerprint(const std::string& path) {
    FILE* file = std::fopen(path.c_str(), "r");
    if (!file) return make_error(ErrorCode::not_found, "cannot read " + path);
    X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
    std::fclose(file);
    if (!cert) return make_error(ErrorCode::invalid_argument, path + " holds no PEM certificate");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    const bool ok = X509_digest(cert, EVP_sha256(), digest, &n) == 1;
    X509_free(cert);
    if (!ok) return make_error(ErrorCode::internal, "cannot hash " + path);
    std::string hex;
    for (unsigned i = 0; i < n; ++i) {
        static const char* digits = "0123456789abcdef";
        hex += digits[digest[i] >> 4];
        hex += digits[digest[i] & 15];
    }
    return hex;
}

} // namespace

std::function<int()> add_admin_commands(CLI::App& app) {
    auto flags = std::make_shared<StoreFlags>();
    std::vector<std::pair<CLI::App*, std::function<int()>>> commands;

    auto* migrate = app.add_subcommand("migrate", "Apply the store's schema migrations and exit");
    add_store_flags(migrate, *flags);
    commands.emplace_back(migrate, [flags] {
        config::Config cfg;
        if (!flags->config_path.empty()) {
            auto loaded = config::load_config_file(flags->config_path);
            if (!loaded) return fail(loaded.error().message, 2);
            cfg = *loaded;
        }
        if (!flags->data_dir.empty()) cfg.data_dir = flags->data_dir;
        if (!flags->store_url.empty()) cfg.store.url = flags->store_url;
        auto db = store::open_database(config::store_url(cfg), 1);
        if (!db) return fail(db.error().message);
        auto applied = store::migrate(**db);
        if (!applied) return fail(applied.error().message);
        for (const auto& name : *applied) std::cout << "applied " << name << "\n";
        auto version = store::schema_version(**db);
        std::cout << "schema version " << (version ? *version : -1)
                  << (applied->empty() ? " (up to date)" : "") << "\n";
        return 0;
    });

    auto* tenant = app.add_subcommand("tenant", "Tenants (teams)");
    tenant->require_subcommand(1);
    auto tenant_name = std::make_shared<std::string>();
    auto* tenant_create = tenant->add_subcommand("create", "Create a tenant");
    tenant_create->add_option("name", *tenant_name, "tenant name (a-z, 0-9, . _ -)")->required();
    add_store_flags(tenant_create, *flags);
    commands.emplace_back(tenant_create, [flags, tenant_name] {
        if (!auth::valid_tenant_name(*tenant_name))
            return fail("tenant names are 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a "
                        "letter or digit",
                        2);
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->create_tenant(*tenant_name);
        if (!t) return fail(t.error().message);
        if (auto st = s->record("tenant.create", t->name, nullptr, {{"name", t->name}}); !st)
            return fail("tenant created, but its audit record failed: " + st.error().message);
        std::cout << "created tenant " << t->name << "\n";
        return 0;
    });
    auto* tenant_list = tenant->add_subcommand("list", "List tenants");
    add_store_flags(tenant_list, *flags);
    commands.emplace_back(tenant_list, [flags] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto tenants = s->identities->list_tenants();
        if (!tenants) return fail(tenants.error().message);
        for (const auto& t : *tenants) std::cout << t.name << "\t" << when(t.created_at) << "\n";
        return 0;
    });

    struct UserArgs {
        std::string name, tenant, role = "developer";
        bool password_stdin = false, service = false, server_owner = false;
    };
    auto ua = std::make_shared<UserArgs>();
    auto* user = app.add_subcommand("user", "Users and service accounts");
    user->require_subcommand(1);
    auto* user_create =
        user->add_subcommand("create", "Create a local user (or add an existing one to a tenant)");
    user_create->add_option("name", ua->name, "user name")->required();
    user_create->add_option("--tenant", ua->tenant, "tenant to join")->required();
    user_create->add_option("--role", ua->role, "owner | admin | developer | auditor | viewer")
        ->check(CLI::IsMember(config::role_names()));
    user_create->add_flag("--password-stdin", ua->password_stdin,
                          "read a password from the first line of stdin");
    user_create->add_flag("--service", ua->service, "a service account (API keys only, no password)");
    add_store_flags(user_create, *flags);
    commands.emplace_back(user_create, [flags, ua] {
        if (!auth::valid_username(ua->name))
            return fail("user names are 1-128 printable characters without spaces or '/'", 2);
        if (ua->service && ua->password_stdin) return fail("service accounts have no password", 2);
        std::optional<std::string> hash;
        if (ua->password_stdin) {
            std::string password;
            std::getline(std::cin, password);
            if (auto problem = auth::password_problem(password); !problem.empty()) return fail(problem, 2);
            auto h = auth::hash_password(password);
            if (!h) return fail(h.error().message);
            hash = *h;
        }
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->find_tenant(ua->tenant);
        if (!t) return fail(t.error().message);
        if (!*t)
            return fail("tenant '" + ua->tenant + "' not found (create it with `codepilot tenant create`)");
        auto existing = s->identities->find_user(ua->name);
        if (!existing) return fail(existing.error().message);
        store::User u;
        if (*existing) {
            if (hash)
                return fail("user '" + ua->name +
                            "' already exists; its password is changed with the admin API");
            u = **existing;
        } else {
            u.username = ua->name;
            u.kind = ua->service ? "service" : "person";
            u.password_hash = hash;
            auto created = s->identities->create_user(u);
            if (!created) return fail(created.error().message);
            u = *created;
        }
        if (auto st = s->identities->set_membership((*t)->id, u.id, ua->role); !st)
            return fail(st.error().message);
        nlohmann::json after = {{"role", ua->role}, {"kind", u.kind}, {"created_user", !*existing}};
        if (auto st = s->record("member.add", ua->tenant + "/" + u.username, nullptr, after); !st)
            return fail("member added, but its audit record failed: " + st.error().message);
        std::cout << (*existing ? "added " : "created ")
                  << (u.kind == "service" ? "service account " : "user ") << u.username << " to "
                  << ua->tenant << " as " << ua->role << "\n";
        return 0;
    });

    struct KeyArgs {
        std::string tenant, user, scopes = "completion,chat", expires, name, prefix;
    };
    auto ka = std::make_shared<KeyArgs>();
    auto* key = app.add_subcommand("key", "API keys");
    key->require_subcommand(1);
    auto* key_create = key->add_subcommand("create", "Create an API key; prints it alone on the last line");
    key_create->add_option("--tenant", ka->tenant, "tenant the key acts in")->required();
    key_create->add_option("--user", ka->user, "user or service account that owns the key")->required();
    key_create->add_option("--scopes", ka->scopes,
                           "completion,chat,embeddings,admin (default completion,chat)");
    key_create->add_option("--expires", ka->expires, "lifetime, e.g. 30d, 12h (default: none)");
    key_create->add_option("--name", ka->name, "a label for listings");
    add_store_flags(key_create, *flags);
    commands.emplace_back(key_create, [flags, ka] {
        std::string bad;
        auto scopes = auth::parse_scopes(ka->scopes, &bad);
        if (!scopes) return fail("unknown scope '" + bad + "' (completion, chat, embeddings, admin)", 2);
        std::optional<int64_t> ttl;
        if (!ka->expires.empty()) {
            ttl = auth::parse_duration_seconds(ka->expires);
            if (!ttl) return fail("--expires must be a positive duration like 30d, 12h, 90m or seconds", 2);
        }
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto issued =
            auth::issue_api_key(*s->identities, ka->tenant, ka->user, *scopes, ttl, ka->name, "cli");
        if (!issued) return fail(issued.error().message);
        nlohmann::json after = {{"prefix", issued->record.prefix},
                                {"user", ka->user},
                                {"tenant", ka->tenant},
                                {"scopes", issued->record.scopes}};
        if (auto st = s->record("key.create", issued->record.prefix, nullptr, after); !st)
            return fail("key created, but its audit record failed: " + st.error().message);
        std::cout << "created key " << issued->record.prefix << " for " << ka->user << " in " << ka->tenant
                  << " (scopes " << issued->record.scopes << ", expires " << when(issued->record.expires_at)
                  << "); it is shown only now:\n"
                  << issued->plaintext << "\n";
        return 0;
    });
    auto* key_revoke =
        key->add_subcommand("revoke", "Revoke a key by its prefix (effective on its next request)");
    key_revoke->add_option("prefix", ka->prefix, "the key's prefix, e.g. cpk_AbCd1234")->required();
    add_store_flags(key_revoke, *flags);
    commands.emplace_back(key_revoke, [flags, ka] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto k = s->identities->find_key_by_prefix(ka->prefix);
        if (!k) return fail(k.error().message);
        if (!*k) return fail("no key with prefix '" + ka->prefix + "'");
        auto revoked = s->identities->revoke_key((*k)->id);
        if (!revoked) return fail(revoked.error().message);
        if (*revoked)
            if (auto st = s->record("key.revoke", ka->prefix, {{"state", "active"}}, {{"state", "revoked"}});
                !st)
                return fail("key revoked, but its audit record failed: " + st.error().message);
        std::cout << (*revoked ? "revoked " : "already revoked: ") << ka->prefix << "\n";
        return 0;
    });
    auto* key_list = key->add_subcommand("list", "List a tenant's keys (never their secrets)");
    key_list->add_option("--tenant", ka->tenant, "tenant")->required();
    add_store_flags(key_list, *flags);
    commands.emplace_back(key_list, [flags, ka] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->find_tenant(ka->tenant);
        if (!t) return fail(t.error().message);
        if (!*t) return fail("tenant '" + ka->tenant + "' not found");
        auto keys = s->identities->list_keys((*t)->id);
        if (!keys) return fail(keys.error().message);
        std::cout << "PREFIX\tUSER\tSCOPES\tSTATE\tCREATED\tEXPIRES\tLAST USED\tNAME\n";
        const int64_t now = s->identities->now();
        for (const auto& k : *keys) {
            std::string state = k.revoked_at                             ? "revoked"
                                : (k.expires_at && *k.expires_at <= now) ? "expired"
                                                                         : "active";
            std::cout << k.prefix << "\t" << k.username << "\t" << k.scopes << "\t" << state << "\t"
                      << when(k.created_at) << "\t" << when(k.expires_at) << "\t" << when(k.last_used_at)
                      << "\t" << k.name << "\n";
        }
        return 0;
    });

    struct QuotaArgs {
        std::string tenant, user, key;
        std::map<std::string, std::string> values; // flag → "N" or "none"
    };
    auto qa = std::make_shared<QuotaArgs>();
    auto* quota_cmd = app.add_subcommand("quota", "Rate limits and token budgets of tenants, users and keys");
    quota_cmd->require_subcommand(1);
    auto* quota_set =
        quota_cmd->add_subcommand("set", "Set limits (others keep their value; 'none' removes one)");
    quota_set->add_option("--tenant", qa->tenant, "tenant")->required();
    auto* for_user =
        quota_set->add_option("--user", qa->user, "a member of the tenant (default: the whole tenant)");
    quota_set->add_option("--key", qa->key, "a key prefix of the tenant")->excludes(for_user);
    for (const char* flag : {"rpm", "tpm", "daily-tokens", "monthly-tokens", "concurrency"})
        quota_set->add_option(std::string("--") + flag, qa->values[flag], "a whole number from 1, or none");
    add_store_flags(quota_set, *flags);
    commands.emplace_back(quota_set, [flags, qa] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->find_tenant(qa->tenant);
        if (!t) return fail(t.error().message);
        if (!*t) return fail("tenant '" + qa->tenant + "' not found");
        store::QuotaRow row{(*t)->id, "tenant", "", {}, 0};
        std::string label = "tenant " + qa->tenant;
        if (!qa->user.empty()) {
            auto members = s->identities->members_of_tenant((*t)->id);
            if (!members) return fail(members.error().message);
            for (const auto& m : *members)
                if (m.username == qa->user) row.subject = m.user_id;
            if (row.subject.empty()) return fail("'" + qa->user + "' is not a member of " + qa->tenant);
            row.scope = "user";
            label = qa->tenant + "/" + qa->user;
        } else if (!qa->key.empty()) {
            auto k = s->identities->find_key_by_prefix(qa->key);
            if (!k) return fail(k.error().message);
            if (!*k || (*k)->tenant_id != (*t)->id) return fail("no key " + qa->key + " in " + qa->tenant);
            row.scope = "key";
            row.subject = qa->key;
            label = qa->key;
        }
        store::QuotaStore qs(*s->db);
        auto existing = qs.quotas((*t)->id);
        if (!existing) return fail(existing.error().message);
        for (const auto& q : *existing)
            if (q.scope == row.scope && q.subject == row.subject) row.limits = q.limits;
        const auto before = row.limits;
        auto& l = row.limits;
        for (auto [flag, field] :
             {std::pair{"rpm", &l.rpm}, std::pair{"tpm", &l.tpm}, std::pair{"daily-tokens", &l.daily_tokens},
              std::pair{"monthly-tokens", &l.monthly_tokens}, std::pair{"concurrency", &l.concurrency}}) {
            const auto& text = qa->values[flag];
            if (text.empty()) continue;
            if (text == "none") {
                field->reset();
                continue;
            }
            int64_t n = 0;
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
            if (ec != std::errc() || end != text.data() + text.size() || n < 1 || n > (int64_t{1} << 40))
                return fail(std::string("--") + flag +
                                " must be a whole number from 1 to 1099511627776, or none (got '" + text +
                                "')",
                            2);
            *field = n;
        }
        if (auto st = qs.set_quota(row); !st) return fail(st.error().message);
        auto as_json = [](const store::QuotaLimits& x) {
            auto v = [](const std::optional<int64_t>& o) {
                return o ? nlohmann::json(*o) : nlohmann::json(nullptr);
            };
            return nlohmann::json{{"rpm", v(x.rpm)},
                                  {"tpm", v(x.tpm)},
                                  {"daily_tokens", v(x.daily_tokens)},
                                  {"monthly_tokens", v(x.monthly_tokens)},
                                  {"concurrency", v(x.concurrency)}};
        };
        if (auto st = s->record("quota.set", label, as_json(before), as_json(row.limits)); !st)
            return fail("quota set, but its audit record failed: " + st.error().message);
        std::cout << label << ": " << as_json(row.limits).dump()
                  << " (running servers apply it within a second)\n";
        return 0;
    });
    auto* quota_show = quota_cmd->add_subcommand("show", "Show a tenant's limits");
    quota_show->add_option("--tenant", qa->tenant, "tenant")->required();
    add_store_flags(quota_show, *flags);
    commands.emplace_back(quota_show, [flags, qa] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->find_tenant(qa->tenant);
        if (!t) return fail(t.error().message);
        if (!*t) return fail("tenant '" + qa->tenant + "' not found");
        store::QuotaStore qs(*s->db);
        auto rows = qs.quotas((*t)->id);
        if (!rows) return fail(rows.error().message);
        auto cell = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string("-"); };
        std::cout << "SCOPE\tSUBJECT\tRPM\tTPM\tDAILY\tMONTHLY\tCONCURRENCY\n";
        for (const auto& q : *rows) {
            std::string subject = q.subject;
            if (q.scope == "user")
                if (auto u = s->identities->find_user_by_id(q.subject); u && *u) subject = (*u)->username;
            std::cout << q.scope << "\t" << (subject.empty() ? "-" : subject) << "\t" << cell(q.limits.rpm)
                      << "\t" << cell(q.limits.tpm) << "\t" << cell(q.limits.daily_tokens) << "\t"
                      << cell(q.limits.monthly_tokens) << "\t" << cell(q.limits.concurrency) << "\n";
        }
        return 0;
    });

    struct AuditArgs {
        std::string from, to, output, key_file, chain_key_file;
        std::vector<std::string> anchors;
        bool decrypt = false;
    };
    auto aa = std::make_shared<AuditArgs>();
    auto* audit_cmd = app.add_subcommand("audit", "The hash-chained audit trail");
    audit_cmd->require_subcommand(1);
    auto* verify =
        audit_cmd->add_subcommand("verify", "Check every record's link; exit 1 naming the first bad one");
    verify
        ->add_option("--anchors", aa->anchors,
                     "anchor files (audit.anchor_file): each anchored head must be in the chain")
        ->check(CLI::ExistingFile);
    verify->add_option("--chain-key-file", aa->chain_key_file,
                       "chain keys (default: audit.chain_key_file, $CODEPILOT_AUDIT_CHAIN_KEYS, <data "
                       "dir>/audit-chain.key)");
    add_store_flags(verify, *flags);
    commands.emplace_back(verify, [flags, aa] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        const std::string& key_file =
            aa->chain_key_file.empty() ? s->config.audit.chain_key_file : aa->chain_key_file;
        auto keys = audit::load_chain_keys(key_file, s->config.data_dir, false);
        if (!keys) return fail(keys.error().message, 2);
        audit::VerifyOptions options;
        options.chain_keys = &*keys;
        for (const auto& file : aa->anchors) {
            auto read = audit::read_anchors(file);
            if (!read) return fail(read.error().message, 2);
            options.anchors.insert(options.anchors.end(), read->begin(), read->end());
        }
        auto report = audit::verify(*s->db, options);
        if (!report) return fail(report.error().message);
        if (report->first_bad_seq) {
            std::cout << "audit chain BROKEN at record " << *report->first_bad_seq << ": " << report->problem
                      << "\n";
            return 1;
        }
        if (report->unkeyed_rows > 0)
            std::cout << "note: " << report->unkeyed_rows
                      << " record(s) predate chain keys (plain SHA-256 links): only anchors protect them\n";
        std::cout << "audit chain intact: " << report->rows << " records";
        if (!aa->anchors.empty()) std::cout << ", " << report->anchors_checked << " anchors match";
        std::cout << "\n";
        return 0;
    });
    auto* export_cmd = audit_cmd->add_subcommand("export", "Write records as JSON lines (for a SIEM)");
    export_cmd->add_option("--from", aa->from,
                           "first day or instant: 2026-11-01, 2026-11-01T12:00:00Z or unix seconds");
    export_cmd->add_option("--to", aa->to, "end (exclusive), same forms; default: now");
    export_cmd->add_option("--output", aa->output, "file (default: stdout)");
    export_cmd->add_flag("--decrypt", aa->decrypt,
                         "open encrypted prompts (keys from --key-file or $CODEPILOT_AUDIT_KEYS)");
    export_cmd->add_option("--key-file", aa->key_file, "audit keys for --decrypt");
    add_store_flags(export_cmd, *flags);
    commands.emplace_back(export_cmd, [flags, aa] {
        const int64_t now_ms = unix_millis();
        auto from = aa->from.empty() ? std::optional<int64_t>(0) : parse_instant_ms(aa->from);
        auto to = aa->to.empty() ? std::optional<int64_t>(now_ms + 1) : parse_instant_ms(aa->to);
        if (!from || !to)
            return fail(
                "--from/--to must be a date (2026-11-01), a UTC time (2026-11-01T12:00:00Z) or unix seconds",
                2);
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        std::ofstream file;
        if (!aa->output.empty()) {
            file.open(aa->output);
            if (!file) return fail("cannot write " + aa->output);
        }
        std::optional<audit::PromptKeys> keys;
        if (aa->decrypt) {
            auto loaded = audit::load_prompt_keys(aa->key_file);
            if (!loaded) return fail(loaded.error().message, 2);
            keys = std::move(*loaded);
        }
        auto n = audit::export_jsonl(*s->db, *from, *to, aa->output.empty() ? std::cout : file,
                                     keys ? &*keys : nullptr);
        if (!n) return fail(n.error().message);
        std::cerr << "exported " << *n << " records\n";
        return 0;
    });

    struct CertArgs {
        std::string tenant, user, fingerprint, subject, san, cert_file, scopes = "completion,chat", name, id;
    };
    auto ca = std::make_shared<CertArgs>();
    auto* cert = app.add_subcommand("cert", "Client certificates (mTLS) bound to users");
    cert->require_subcommand(1);
    auto* cert_bind = cert->add_subcommand("bind", "Bind a client certificate to a user in a tenant");
    cert_bind->add_option("--tenant", ca->tenant, "tenant the certificate acts in")->required();
    cert_bind->add_option("--user", ca->user, "user or service account it stands for")->required();
    auto* by_file =
        cert_bind->add_option("--cert-file", ca->cert_file, "PEM certificate: binds its SHA-256 fingerprint");
    cert_bind->add_option("--fingerprint", ca->fingerprint, "SHA-256 fingerprint (hex, colons allowed)")
        ->excludes(by_file);
    cert_bind->add_option("--subject", ca->subject,
                          "subject DN, RFC 2253 (any certificate the client CA issues with it)");
    cert_bind->add_option("--san", ca->san,
                          "a subject alternative name: DNS:host, URI:spiffe://..., email:..., IP:...");
    cert_bind->add_option("--scopes", ca->scopes,
                          "completion,chat,embeddings,admin (default completion,chat)");
    cert_bind->add_option("--name", ca->name, "a label for listings");
    add_store_flags(cert_bind, *flags);
    commands.emplace_back(cert_bind, [flags, ca] {
        std::vector<std::pair<std::string, std::string>> given;
        if (!ca->cert_file.empty()) {
            auto fingerprint = certificate_file_fingerprint(ca->cert_file);
            if (!fingerprint) return fail(fingerprint.error().message, 2);
            given.emplace_back("fingerprint", *fingerprint);
        }
        for (auto [kind, value] : {std::pair{"fingerprint", &ca->fingerprint},
                                   std::pair{"subject", &ca->subject}, std::pair{"san", &ca->san}})
            if (!value->empty()) given.emplace_back(kind, *value);
        if (given.size() != 1)
            return fail("give exactly one of --cert-file, --fingerprint, --subject and --san", 2);
        auto value = auth::canonical_certificate_value(given[0].first, given[0].second);
        if (!value) return fail(value.error().message, 2);
        std::string bad;
        auto scopes = auth::parse_scopes(ca->scopes, &bad);
        if (!scopes) return fail("unknown scope '" + bad + "' (completion, chat, embeddings, admin)", 2);
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->find_tenant(ca->tenant);
        if (!t || !*t) return fail(t ? "tenant '" + ca->tenant + "' not found" : t.error().message);
        const std::string username = auth::canonical_username(ca->user);
        auto members = s->identities->members_of_tenant((*t)->id);
        if (!members) return fail(members.error().message);
        const store::Membership* member = nullptr;
        for (const auto& m : *members)
            if (m.username == username) member = &m;
        if (!member) return fail("'" + username + "' is not a member of tenant '" + ca->tenant + "'");
        store::CertificateBinding b;
        b.id = store::IdentityStore::new_id();
        b.tenant_id = (*t)->id;
        b.user_id = member->user_id;
        b.match = given[0].first;
        b.value = *value;
        b.name = ca->name;
        b.scopes = auth::scopes_to_string(*scopes);
        b.created_by = "cli";
        b.created_at = s->identities->now();
        if (auto st = s->identities->create_certificate_binding(b); !st) return fail(st.error().message);
        nlohmann::json after = {{"user", username},
                                {"tenant", ca->tenant},
                                {"match", b.match},
                                {"value", b.value},
                                {"scopes", b.scopes}};
        if (auto st = s->record("certificate.bind", b.id, nullptr, after); !st)
            return fail("certificate bound, but its audit record failed: " + st.error().message);
        std::cout << "bound " << b.match << " " << b.value << " to " << username << " in " << ca->tenant
                  << " (scopes " << b.scopes << "): binding " << b.id << "\n";
        return 0;
    });
    auto* cert_list = cert->add_subcommand("list", "List a tenant's certificate bindings");
    cert_list->add_option("--tenant", ca->tenant, "tenant")->required();
    add_store_flags(cert_list, *flags);
    commands.emplace_back(cert_list, [flags, ca] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto t = s->identities->find_tenant(ca->tenant);
        if (!t || !*t) return fail(t ? "tenant '" + ca->tenant + "' not found" : t.error().message);
        auto bindings = s->identities->list_certificate_bindings((*t)->id);
        if (!bindings) return fail(bindings.error().message);
        std::cout << "ID\tUSER\tMATCH\tVALUE\tSCOPES\tCREATED\tNAME\n";
        for (const auto& b : *bindings)
            std::cout << b.id << "\t" << b.username << "\t" << b.match << "\t" << b.value << "\t" << b.scopes
                      << "\t" << when(b.created_at) << "\t" << b.name << "\n";
        return 0;
    });
    auto* cert_unbind = cert->add_subcommand("unbind", "Remove a binding (effective on the next request)");
    cert_unbind->add_option("id", ca->id, "the binding's id (cert list)")->required();
    add_store_flags(cert_unbind, *flags);
    commands.emplace_back(cert_unbind, [flags, ca] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto b = s->identities->find_certificate_binding(ca->id);
        if (!b) return fail(b.error().message);
        if (!*b) return fail("no certificate binding '" + ca->id + "'");
        auto removed = s->identities->delete_certificate_binding(ca->id);
        if (!removed) return fail(removed.error().message);
        nlohmann::json before = {{"user", (*b)->username},
                                 {"tenant", (*b)->tenant_name},
                                 {"match", (*b)->match},
                                 {"value", (*b)->value}};
        if (auto st = s->record("certificate.unbind", ca->id, before, nullptr); !st)
            return fail("binding removed, but its audit record failed: " + st.error().message);
        std::cout << "unbound " << ca->id << "\n";
        return 0;
    });

    add_model_commands(app.get_subcommand("model"), commands); // main() adds `model` (synth, vocabs) first
    add_guard_commands(app, commands);

    return [commands] {
        for (const auto& [cmd, run] : commands)
            if (cmd->parsed()) return run();
        return -1;
    };
}

} // namespace codepilot::cli
