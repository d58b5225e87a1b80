// `codepilot guard scan PATH...|-`: the server's secret rules over files, for customers' CI and
// pre-commit hooks. Findings name the file, line, byte range and rule, never the value; the
// exit status is 1 when something is found, 2 when a path cannot be read.
#include "cli/cli_store.h"
#include "guard/guard.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

namespace codepilot::cli {
namespace {

namespace fs = std::filesystem;

struct ScanArgs {
    std::vector<std::string> paths;
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
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
    scan->add_flag("--json", a->json, "one JSON object per finding: file, line, column, start, end, rule");
    scan->add_flag("--pii", a->pii, "also e-mail addresses, phone, IBAN and card numbers");
    scan->add_option("--max-file-bytes", a->max_file_bytes, "skip larger files (said on stderr)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    commands.emplace_back(scan, [a] {
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
}

} // namespace codepilot::cli
