// `codepilot guard scan PATH...|-`: the server's secret rules over files, for customers' CI and
// pre-commit hooks. Findings name the file, line, byte range and rule, never the value; the
// exit status is 1 when something is found, 2 when a path cannot be read.
// `codepilot guard policy show|set|clear --tenant T`: a tenant's own policy in the store, as
// PUT /admin/v1/tenants/{tenant}/guard sets it (validated the same way, audited).
#include "api/guard_policies.h"
#include "cli/cli_store.h"
#include "guard/guard.h"
#include "store/guard_store.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <toml++/toml.h>
#include <variant>

namespace codepilot::cli {
namespace {

namespace fs = std::filesystem;

struct ScanArgs {
    std::vector<std::string> paths;
    std::string tenant;      // scan with this tenant's policy in force (its own rules and denylist)
    std::string config_file; // [guard] of the server's config: its rules_file and pii
    std::string rules_file;
    bool json = false;
    bool pii = false;
    int64_t max_file_bytes = 10 << 20;
};

// Directories that hold no source of the project's own (VCS data, dependencies installed).
bool skipped_directory(const fs::path& p) {
    const std::string name = p.filename().string();
    return name == ".git" || name == ".hg" || name == ".svn" || name == "node_modules";
}

class Scan {
public:
    Scan(const guard::RuleSet& rules, const ScanArgs& args) : rules_(rules), args_(args) {}

    void text(const std::string& name, const std::string& content) {
        guard::ScanOptions o;
        o.pii = args_.pii;
        for (const auto& f : rules_.scan(content, o)) {
            ++findings_;
            size_t line_start = content.rfind('\n', f.begin == 0 ? 0 : f.begin - 1);
            line_start = line_start == std::string::npos || f.begin == 0 ? 0 : line_start + 1;
            const size_t column = f.begin - line_start + 1;
            if (args_.json) {
                nlohmann::json j = {{"file", name},     {"line", f.line}, {"column", column},
                                    {"start", f.begin}, {"end", f.end},   {"rule", f.rule}};
                std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            } else {
                std::cout << name << ":" << f.line << ":" << column << ": " << f.rule << " (bytes " << f.begin
                          << "-" << f.end << ")\n";
            }
        }
    }

    void file(const fs::path& path) {
        std::error_code ec;
        const auto size = fs::file_size(path, ec);
        if (ec) return unreadable(path.string(), ec.message());
        if (static_cast<int64_t>(size) > args_.max_file_bytes) {
            std::cerr << "guard: skipped " << path.string() << " (" << size
                      << " bytes, over --max-file-bytes)\n";
            return;
        }
        std::ifstream in(path, std::ios::binary);
        if (!in) return unreadable(path.string(), "cannot open");
        std::string content(static_cast<size_t>(size), '\0'); // one read, not a byte at a time
        in.read(content.data(), static_cast<std::streamsize>(size));
        content.resize(static_cast<size_t>(in.gcount()));
        text(path.string(), content);
    }

    void path(const std::string& p) {
        if (p == "-") {
            std::ostringstream all;
            all << std::cin.rdbuf();
            return text("-", all.str());
        }
        std::error_code ec;
        const auto status = fs::status(p, ec);
        if (ec || !fs::exists(status)) return unreadable(p, "no such file or directory");
        if (!fs::is_directory(status)) return file(p);
        fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
        if (ec) return unreadable(p, ec.message());
        for (; it != end; it.increment(ec)) {
            if (ec) return unreadable(p, ec.message());
            if (it->is_directory(ec) && skipped_directory(it->path())) {
                it.disable_recursion_pending();
                continue;
            }
            if (it->is_regular_file(ec)) file(it->path());
        }
    }

    int exit_code() const { return errors_ > 0 ? 2 : findings_ > 0 ? 1 : 0; }
    int findings() const { return findings_; }

private:
    void unreadable(const std::string& p, const std::string& why) {
        ++errors_;
        std::cerr << "guard: cannot read " << p << ": " << why << "\n";
    }

    const guard::RuleSet& rules_;
    const ScanArgs& args_;
    int findings_ = 0, errors_ = 0;
};

// A rules file ([[rule]] tables, an [allowlist]) as the API's "rules" and "allow" fields.
Result<nlohmann::json> rules_file_json(const std::string& path) {
    toml::table doc;
    try {
        doc = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        return make_error(ErrorCode::invalid_argument,
                          path + ": not valid TOML: " + std::string(e.description()));
    }
    nlohmann::json rules = nlohmann::json::array(), allow = nlohmann::json::array();
    auto value_json = [](const toml::node& n) -> nlohmann::json {
        if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
        if (n.is_boolean()) return *n.value<bool>();
        if (n.is_integer()) return *n.value<int64_t>();
        if (n.is_floating_point()) return *n.value<double>();
        if (const auto* a = n.as_array()) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& item : *a)
                out.push_back(item.is_string() ? nlohmann::json(*item.value<std::string>())
                                               : nlohmann::json(nullptr));
            return out;
        }
        return nullptr; // refused by the policy's validation, with the key's name
    };
    if (const auto* list = doc["rule"].as_array())
        for (const auto& item : *list) {
            nlohmann::json rule = nlohmann::json::object();
            if (const auto* t = item.as_table())
                for (const auto& [key, value] : *t) rule[std::string(key.str())] = value_json(value);
            rules.push_back(rule);
        }
    if (const auto* values = doc["allowlist"]["values"].as_array())
        for (const auto& v : *values)
            if (v.is_string()) allow.push_back(*v.value<std::string>());
    return nlohmann::json{{"rules", rules}, {"allow", allow}};
}

Result<std::unique_ptr<api::GuardPolicies>> configured_guard(const config::Config& config);

// What every `guard policy` command starts from: the store, the tenant, its stored policy row
// and the configuration's guard. Errors say why; a configuration that does not load is exit 2.
struct TenantPolicy {
    OpenStore store;
    std::string tenant_id;
    std::optional<store::GuardPolicyRow> row;
    std::unique_ptr<api::GuardPolicies> guard;
};

std::variant<TenantPolicy, int> open_tenant_policy(const StoreFlags& flags, const std::string& tenant) {
    auto s = open_store(flags);
    if (!s) return fail(s.error().message);
    auto t = s->identities->find_tenant(tenant);
    if (!t) return fail(t.error().message);
    if (!*t) return fail("tenant '" + tenant + "' not found");
    auto guard = configured_guard(s->config);
    if (!guard) return fail(guard.error().message, 2);
    auto row = store::GuardStore(*s->db).policy_of((*t)->id);
    if (!row) return fail(row.error().message);
    return TenantPolicy{std::move(*s), (*t)->id, std::move(*row), std::move(*guard)};
}

// The tenant's policy in force: its own stored one, or else the configuration's.
Result<api::GuardPolicy> policy_in_force(const TenantPolicy& tp, const std::string& tenant) {
    if (!tp.row) return tp.guard->configured().policy_for(tenant);
    auto spec = api::parse_guard_spec(nlohmann::json::parse(tp.row->spec, nullptr, false));
    if (!spec) return spec.error();
    return tp.guard->compile(tenant, *spec);
}

int scan_as_tenant(ScanArgs& a, const StoreFlags& flags) {
    auto opened = open_tenant_policy(flags, a.tenant);
    if (std::holds_alternative<int>(opened)) return 2; // 1 would read as "a secret was found"
    auto policy = policy_in_force(std::get<TenantPolicy>(opened), a.tenant);
    if (!policy) return fail(policy.error().message, 2);
    a.pii = a.pii || policy->settings.pii;
    // The output rules hold the prompt rules and the denylist: everything the policy looks for.
    const auto& rules = policy->output ? policy->output->rules : policy->rules;
    Scan run(*rules, a);
    for (const auto& p : a.paths) run.path(p);
    if (!a.json) std::cerr << "guard: " << run.findings() << " finding(s)\n";
    return run.exit_code();
}

struct PolicyArgs {
    std::string tenant, prompts, output, pii, rules_file, json_file;
    std::vector<std::string> deny;
    bool no_deny = false;
};

// The configuration's guard, as the server builds it.
Result<std::unique_ptr<api::GuardPolicies>> configured_guard(const config::Config& config) {
    auto configured = api::configure_guard(config.guard, nullptr);
    if (!configured) return configured.error();
    return std::make_unique<api::GuardPolicies>(std::move(*configured), nullptr);
}

} // namespace

void add_guard_commands(CLI::App& app, std::vector<std::pair<CLI::App*, std::function<int()>>>& commands) {
    auto* guard_cmd = app.add_subcommand("guard", "Secret detection (docs/guard.md)");
    guard_cmd->require_subcommand(1);
    auto a = std::make_shared<ScanArgs>();
    auto* scan = guard_cmd->add_subcommand(
        "scan",
        "Print the secrets in files, directories (recursively) or - (stdin); exit 1 when any is found");
    scan->add_option("paths", a->paths, "files, directories or - for stdin")->required();
    scan->add_option("--config", a->config_file,
                     "the server's config file: scan with its [guard] rules_file and pii, as the server does")
        ->check(CLI::ExistingFile);
    scan->add_option("--rules", a->rules_file,
                     "a rules file in the rules.toml form instead of the built-in rules")
        ->check(CLI::ExistingFile);
    auto scan_store = std::make_shared<StoreFlags>();
    scan->add_option(
        "--tenant", a->tenant,
        "scan with this tenant's guard policy (its own rules, denylist and pii; from the store)");
    scan->add_option("--data-dir", scan_store->data_dir, "with --tenant: data directory (as for serve)");
    scan->add_option("--store", scan_store->store_url, "with --tenant: store URL (overrides store.url)");
    scan->add_flag("--json", a->json, "one JSON object per finding: file, line, column, start, end, rule");
    scan->add_flag("--pii", a->pii, "also e-mail addresses, phone, IBAN and card numbers");
    scan->add_option("--max-file-bytes", a->max_file_bytes, "skip larger files (said on stderr)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    commands.emplace_back(scan, [a, scan_store] {
        scan_store->config_path = a->config_file;
        if (!a->tenant.empty()) return scan_as_tenant(*a, *scan_store);
        if (!a->config_file.empty()) {
            auto config = config::load_config_file(a->config_file);
            if (!config) return fail(config.error().message, 2);
            if (a->rules_file.empty()) a->rules_file = config->guard.rules_file;
            a->pii = a->pii || config->guard.policy.pii;
        }
        std::shared_ptr<const guard::RuleSet> rules = guard::RuleSet::builtin();
        if (!a->rules_file.empty()) {
            std::ifstream in(a->rules_file, std::ios::binary);
            if (!in) return fail("cannot read " + a->rules_file, 2);
            std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            auto parsed = guard::RuleSet::parse(text, a->rules_file);
            if (!parsed) return fail(parsed.error().message, 2);
            rules = *parsed;
        }
        Scan run(*rules, *a);
        for (const auto& p : a->paths) run.path(p);
        if (!a->json) std::cerr << "guard: " << run.findings() << " finding(s)\n";
        return run.exit_code();
    });

    auto flags = std::make_shared<StoreFlags>();
    auto pa = std::make_shared<PolicyArgs>();
    auto* policy =
        guard_cmd->add_subcommand("policy", "A tenant's own guard policy and rules (in the store)");
    policy->require_subcommand(1);

    auto* show = policy->add_subcommand("show", "The tenant's stored policy and the policy in force");
    show->add_option("--tenant", pa->tenant, "tenant")->required();
    add_store_flags(show, *flags);
    commands.emplace_back(show, [flags, pa] {
        auto opened = open_tenant_policy(*flags, pa->tenant);
        if (auto* code = std::get_if<int>(&opened)) return *code;
        auto& tp = std::get<TenantPolicy>(opened);
        const auto& row = tp.row;
        nlohmann::json stored =
            row ? nlohmann::json::parse(row->spec, nullptr, false) : nlohmann::json(nullptr);
        api::GuardPolicy effective = tp.guard->configured().policy_for(pa->tenant);
        std::string error;
        if (row) {
            auto compiled = policy_in_force(tp, pa->tenant);
            if (compiled)
                effective = std::move(*compiled);
            else
                error = compiled.error().message;
        }
        nlohmann::json out{{"tenant", pa->tenant},
                           {"stored", stored},
                           {"effective", api::describe(effective, *tp.guard->configured().rules)}};
        if (row) {
            out["updated_at"] = row->updated_at;
            out["updated_by"] = row->updated_by;
        }
        if (!error.empty()) out["error"] = error;
        std::cout << out.dump(2) << "\n";
        return 0;
    });

    auto* set = policy->add_subcommand(
        "set", "Set fields of the tenant's policy (the others keep their value); validated as the API does");
    set->add_option("--tenant", pa->tenant, "tenant")->required();
    set->add_option("--prompts", pa->prompts, "redact, block, log or off");
    set->add_option("--output", pa->output, "mask, end, log or off");
    set->add_option("--pii", pa->pii, "true or false: also personal data (e-mail, phone, IBAN, cards)");
    set->add_option("--deny", pa->deny,
                    "an output denylist pattern (RE2, case-insensitive); repeat for more");
    set->add_flag("--no-deny", pa->no_deny, "an empty output denylist (none of the configuration's)");
    set->add_option("--rules", pa->rules_file, "the tenant's own rules: a file in the rules.toml form")
        ->check(CLI::ExistingFile);
    set->add_option("--json", pa->json_file, "the whole policy as a JSON document (as the API takes it)")
        ->check(CLI::ExistingFile);
    add_store_flags(set, *flags);
    commands.emplace_back(set, [flags, pa] {
        auto opened = open_tenant_policy(*flags, pa->tenant);
        if (auto* code = std::get_if<int>(&opened)) return *code;
        auto& tp = std::get<TenantPolicy>(opened);
        const nlohmann::json before =
            tp.row ? nlohmann::json::parse(tp.row->spec, nullptr, false) : nlohmann::json(nullptr);
        nlohmann::json doc = before.is_object() ? before : nlohmann::json::object();
        if (!pa->json_file.empty()) {
            std::ifstream in(pa->json_file, std::ios::binary);
            doc = nlohmann::json::parse(in, nullptr, false);
            if (doc.is_discarded()) return fail(pa->json_file + " is not valid JSON", 2);
        }
        if (!pa->prompts.empty()) doc["prompts"] = pa->prompts;
        if (!pa->output.empty()) doc["output"] = pa->output;
        if (!pa->pii.empty()) {
            if (pa->pii != "true" && pa->pii != "false") return fail("--pii must be true or false", 2);
            doc["pii"] = pa->pii == "true";
        }
        if (!pa->deny.empty() || pa->no_deny) doc["deny"] = pa->deny;
        if (!pa->rules_file.empty()) {
            auto rules = rules_file_json(pa->rules_file);
            if (!rules) return fail(rules.error().message, 2);
            doc["rules"] = (*rules)["rules"];
            doc["allow"] = (*rules)["allow"];
        }
        auto spec = api::parse_guard_spec(doc);
        if (!spec) return fail(spec.error().message, 2);
        if (auto compiled = tp.guard->compile(pa->tenant, *spec); !compiled)
            return fail(compiled.error().message, 2);
        const nlohmann::json stored = api::to_json(*spec);
        if (stored.empty()) return fail("the policy sets nothing; use 'guard policy clear' instead", 2);
        store::GuardPolicyRow next{tp.tenant_id, pa->tenant, stored.dump(), 0, cli_actor()};
        if (auto st = store::GuardStore(*tp.store.db).set_policy(next); !st) return fail(st.error().message);
        if (auto st = tp.store.record("guard.set", "tenant " + pa->tenant, before, stored); !st)
            return fail("policy set, but its audit record failed: " + st.error().message);
        std::cout << pa->tenant << ": " << stored.dump() << " (running servers apply it within a second)\n";
        return 0;
    });

    auto* clear =
        policy->add_subcommand("clear", "Remove the tenant's own policy: the configuration's applies");
    clear->add_option("--tenant", pa->tenant, "tenant")->required();
    add_store_flags(clear, *flags);
    commands.emplace_back(clear, [flags, pa] {
        auto opened = open_tenant_policy(*flags, pa->tenant);
        if (auto* code = std::get_if<int>(&opened)) return *code;
        auto& tp = std::get<TenantPolicy>(opened);
        if (!tp.row) return fail("tenant '" + pa->tenant + "' has no guard policy of its own");
        if (auto removed = store::GuardStore(*tp.store.db).remove_policy(tp.tenant_id); !removed)
            return fail(removed.error().message);
        if (auto st = tp.store.record("guard.clear", "tenant " + pa->tenant,
                                      nlohmann::json::parse(tp.row->spec, nullptr, false), nullptr);
            !st)
            return fail("policy removed, but its audit record failed: " + st.error().message);
        std::cout << pa->tenant << ": the configuration's guard policy applies (within a second)\n";
        return 0;
    });
}

} // namespace codepilot::cli
