// `codepilot model register|list|load|unload|remove|promote|rollback|compare`: the model
// registry on the store shared with the running servers, which apply each change within a
// second (they poll it). Every change leaves an audit record.
#include "cli/cli_store.h"
#include "inference/registry.h"
#include "store/model_store.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace codepilot::cli {
namespace {

struct Known {
    config::FleetModelConfig model;
    std::string source;  // config | registry
    std::string desired; // registry rows: loaded | unloaded
};

// The models the config file names and the registry holds.
Result<std::vector<Known>> known_models(OpenStore& s) {
    std::vector<Known> out;
    for (const auto& m : s.config.models) out.push_back({m, "config", "loaded"});
    if (s.config.models.empty() && (!s.config.model.name.empty() || !s.config.model.path.empty())) {
        config::FleetModelConfig legacy; // the single [model] section
        legacy.id = s.config.model.name.empty() ? std::filesystem::path(s.config.model.path).stem().string()
                                                : s.config.model.name;
        out.push_back({legacy, "config", "loaded"});
    }
    store::ModelStore models(*s.db);
    auto rows = models.registered();
    if (!rows) return rows.error();
    for (const auto& r : *rows) {
        auto m = config::parse_model_entry(r.spec);
        if (!m) continue; // a row that no longer parses is shown by `list` with its id only
        out.push_back({*m, "registry", r.desired});
    }
    return out;
}

const Known* find_known(const std::vector<Known>& all, const std::string& id) {
    for (const auto& k : all)
        if (k.model.id == id) return &k;
    return nullptr;
}

// A model the command was not told about (a base in a config file it was not given): every version.
Known unknown_model(const std::string& id) {
    Known k;
    k.model.id = id;
    k.model.version = "";
    k.source = "server";
    return k;
}

// The canary ID names, or the one canary of the base ID names: {base, canary}.
Result<std::pair<Known, Known>> canary_pair(const std::vector<Known>& all, const std::string& id) {
    const Known* named = find_known(all, id);
    if (named && !named->model.canary_of.empty()) {
        const Known* base = find_known(all, named->model.canary_of);
        return std::make_pair(base ? *base : unknown_model(named->model.canary_of), *named);
    }
    const Known* canary = nullptr;
    for (const auto& k : all)
        if (k.model.canary_of == id) {
            if (canary)
                return make_error(ErrorCode::invalid_argument,
                                  "model '" + id + "' has several canaries; name the canary (" +
                                      canary->model.id + ", " + k.model.id + ")");
            canary = &k;
        }
    if (!canary && !named)
        return make_error(ErrorCode::not_found,
                          "model '" + id + "' is not in the configuration or the registry");
    if (!canary)
        return make_error(ErrorCode::invalid_argument, "model '" + id + "' is not a canary and has none");
    return std::make_pair(named ? *named : unknown_model(id), *canary);
}

// The store, and the base and canary `id` names: what promote, rollback and compare start from.
struct Rollout {
    OpenStore store;
    Known base, canary;
};
Result<Rollout> open_rollout(const StoreFlags& flags, const std::string& id) {
    auto s = open_store(flags);
    if (!s) return s.error();
    auto all = known_models(*s);
    if (!all) return all.error();
    auto pair = canary_pair(*all, id);
    if (!pair) return pair.error();
    return Rollout{std::move(*s), std::move(pair->first), std::move(pair->second)};
}

int set_share(const StoreFlags& flags, const std::string& id, int share, const char* action) {
    auto r = open_rollout(flags, id);
    if (!r) return fail(r.error().message);
    auto* s = &r->store;
    const auto* canary = &r->canary;
    store::ModelStore models(*s->db);
    int before = canary->model.canary_share;
    if (auto rows = models.rollouts(); rows)
        for (const auto& r : *rows)
            if (r.model == canary->model.id) before = r.share;
    if (auto st = models.set_rollout(canary->model.id, share, cli_actor()); !st)
        return fail(st.error().message);
    if (auto st = s->record(action, canary->model.id, {{"canary_share", before}}, {{"canary_share", share}});
        !st)
        return fail("share set, but its audit record failed: " + st.error().message);
    std::cout << canary->model.id << " (canary of " << canary->model.canary_of << "): " << before << "% -> "
              << share << "% of its traffic (running servers apply it within a second)\n";
    return 0;
}

int compare(const StoreFlags& flags, const std::string& id, int days, bool as_json) {
    auto r = open_rollout(flags, id);
    if (!r) return fail(r.error().message);
    const auto& base = r->base.model;
    const auto& canary = r->canary.model;
    auto result =
        inference::compare_models(*r->store.db, base.id, base.version, canary.id, canary.version, days);
    if (!result) return fail(result.error().message);
    if (as_json) {
        std::cout << result->dump(2) << "\n";
        return 0;
    }
    const auto& j = *result;
    auto cell = [](const nlohmann::json& v) {
        if (v.is_null()) return std::string("-");
        if (v.is_number_float()) {
            std::ostringstream out;
            out << std::fixed << std::setprecision(1) << v.get<double>() * 100 << "%";
            return out.str();
        }
        return v.dump();
    };
    std::cout << "last " << days << " day(s)\t" << base.id << "@" << base.version << " (base)\t" << canary.id
              << "@" << canary.version << " (canary)\n";
    for (const char* key :
         {"requests", "errors", "error_rate", "views", "selects", "acceptance_rate", "completion_tokens"})
        std::cout << key << "\t" << cell(j["base"][key]) << "\t" << cell(j["canary"][key]) << "\n";
    for (const char* key : {"mean_ms", "p50_ms_at_most", "p95_ms_at_most"})
        std::cout << "latency " << key << "\t" << cell(j["base"]["latency"][key]) << "\t"
                  << cell(j["canary"]["latency"][key]) << "\n";
    for (const auto& note : j["notes"]) std::cout << "note: " << note.get<std::string>() << "\n";
    return 0;
}

} // namespace

void add_model_commands(CLI::App* model_cmd,
                        std::vector<std::pair<CLI::App*, std::function<int()>>>& commands) {
    auto flags = std::make_shared<StoreFlags>();
    struct Args {
        std::string id, file;
        int days = 7;
        bool json = false;
    };
    auto a = std::make_shared<Args>();

    auto* reg = model_cmd->add_subcommand("register", "Register a model from a TOML file of [[models]] keys; "
                                                      "running servers load it in the background");
    reg->add_option("file", a->file, "TOML file: id, path or urls, roles, ... (docs/models.md)")
        ->required()
        ->check(CLI::ExistingFile);
    add_store_flags(reg, *flags);
    commands.emplace_back(reg, [flags, a] {
        std::ifstream in(a->file);
        std::stringstream text;
        text << in.rdbuf();
        auto model = config::parse_model_entry(text.str());
        if (!model) return fail(model.error().message, 2);
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto all = known_models(*s);
        if (!all) return fail(all.error().message);
        std::vector<std::string> names = model->aliases;
        names.push_back(model->id);
        for (const auto& k : *all) {
            if (k.model.id == model->id && k.source == "registry" && k.desired == "unloaded")
                continue; // replaced
            std::vector<std::string> theirs = k.model.aliases;
            theirs.push_back(k.model.id);
            for (const auto& n : names)
                if (std::find(theirs.begin(), theirs.end(), n) != theirs.end())
                    return fail("the name '" + n + "' is taken by model '" + k.model.id + "' (" + k.source +
                                ")");
        }
        if (!model->canary_of.empty() && !find_known(*all, model->canary_of))
            return fail("canary_of '" + model->canary_of + "' is not a model");
        store::ModelStore models(*s->db);
        store::RegisteredModel row{model->id, model->version, text.str(), "loaded", 0, 0, cli_actor()};
        if (auto existing = models.registered(model->id); existing && *existing)
            row.created_at = (*existing)->created_at;
        if (auto st = models.put_registered(row); !st) return fail(st.error().message);
        if (auto st = s->record("model.register", model->id, nullptr,
                                {{"version", model->version}, {"backend", model->backend}});
            !st)
            return fail("registered, but its audit record failed: " + st.error().message);
        std::cout << "registered " << model->id << "@" << model->version
                  << ": running servers load it within a second (state: GET /admin/v1/models)\n";
        return 0;
    });

    auto* list = model_cmd->add_subcommand("list", "List configured and registered models");
    add_store_flags(list, *flags);
    commands.emplace_back(list, [flags] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        auto all = known_models(*s);
        if (!all) return fail(all.error().message);
        store::ModelStore models(*s->db);
        std::map<std::string, int> shares;
        if (auto rows = models.rollouts(); rows)
            for (const auto& r : *rows) shares[r.model] = r.share;
        std::cout << "ID\tVERSION\tBACKEND\tSOURCE\tDESIRED\tCANARY_OF\tSHARE\n";
        for (const auto& k : *all) {
            const auto& m = k.model;
            int share = shares.count(m.id) ? shares[m.id] : m.canary_share;
            std::cout << m.id << "\t" << m.version << "\t" << m.backend << "\t" << k.source << "\t"
                      << k.desired << "\t" << (m.canary_of.empty() ? "-" : m.canary_of) << "\t"
                      << (m.canary_of.empty() ? "-" : std::to_string(share) + "%") << "\n";
        }
        return 0;
    });

    for (auto [name, loaded] : {std::pair{"load", true}, std::pair{"unload", false}}) {
        auto* cmd = model_cmd->add_subcommand(name, loaded ? "Load a registered model on every server"
                                                           : "Drain and unload a registered model");
        cmd->add_option("id", a->id, "model id")->required();
        add_store_flags(cmd, *flags);
        commands.emplace_back(cmd, [flags, a, loaded = loaded] {
            auto s = open_store(*flags);
            if (!s) return fail(s.error().message);
            for (const auto& m : s->config.models)
                if (m.id == a->id) return fail("model '" + a->id + "' is defined in the configuration file");
            store::ModelStore models(*s->db);
            auto before = models.registered(a->id);
            if (!before) return fail(before.error().message);
            if (auto st = models.set_desired(a->id, loaded ? "loaded" : "unloaded", cli_actor()); !st)
                return fail(st.error().message);
            if (auto st = s->record(loaded ? "model.load" : "model.unload", a->id,
                                    {{"desired", *before ? (*before)->desired : ""}},
                                    {{"desired", loaded ? "loaded" : "unloaded"}});
                !st)
                return fail("changed, but its audit record failed: " + st.error().message);
            std::cout << a->id << ": " << (loaded ? "loading" : "unloading once its requests finish")
                      << " on running servers within a second\n";
            return 0;
        });
    }

    auto* remove = model_cmd->add_subcommand("remove", "Delete an unloaded model's registration");
    remove->add_option("id", a->id, "model id")->required();
    add_store_flags(remove, *flags);
    commands.emplace_back(remove, [flags, a] {
        auto s = open_store(*flags);
        if (!s) return fail(s.error().message);
        store::ModelStore models(*s->db);
        auto before = models.registered(a->id);
        if (!before) return fail(before.error().message);
        if (!*before) return fail("model '" + a->id + "' is not registered");
        if ((*before)->desired == "loaded") return fail("model '" + a->id + "' is loaded; unload it first");
        if (auto st = models.remove_registered(a->id); !st) return fail(st.error().message);
        if (auto st = s->record("model.delete", a->id, {{"registered", true}}, {{"registered", false}}); !st)
            return fail("removed, but its audit record failed: " + st.error().message);
        std::cout << "removed " << a->id << "\n";
        return 0;
    });

    auto* promote =
        model_cmd->add_subcommand("promote", "Send all of the base model's traffic to its canary");
    promote->add_option("id", a->id, "the canary (or its base model)")->required();
    add_store_flags(promote, *flags);
    commands.emplace_back(promote, [flags, a] { return set_share(*flags, a->id, 100, "model.promote"); });
    auto* rollback = model_cmd->add_subcommand("rollback", "Send all traffic back to the base model");
    rollback->add_option("id", a->id, "the canary (or its base model)")->required();
    add_store_flags(rollback, *flags);
    commands.emplace_back(rollback, [flags, a] { return set_share(*flags, a->id, 0, "model.rollback"); });

    auto* cmp =
        model_cmd->add_subcommand("compare", "A canary and its base side by side, with significance notes");
    cmp->add_option("id", a->id, "the canary (or its base model)")->required();
    cmp->add_option("--days", a->days, "UTC days back, today included (default 7)")
        ->check(CLI::Range(1, 366));
    cmp->add_flag("--json", a->json, "print JSON");
    add_store_flags(cmp, *flags);
    commands.emplace_back(cmp, [flags, a] { return compare(*flags, a->id, a->days, a->json); });
}

} // namespace codepilot::cli
