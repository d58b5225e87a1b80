// TOML → Config, rejecting unknown keys so that a typo never silently falls back to a default.
#include "config/config.h"

#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <toml++/toml.h>

namespace codepilot::config {
namespace {

using Setter = std::function<std::string(const toml::node&)>;  // returns an error or ""

template <typename T>
Setter integer(T& target, int64_t min, int64_t max) {
    return [&target, min, max](const toml::node& node) -> std::string {
        auto value = node.value<int64_t>();
        if (!node.is_integer() || !value) return "must be an integer";
        if (*value < min || *value > max)
            return "must be between " + std::to_string(min) + " and " + std::to_string(max);
        target = static_cast<T>(*value);
        return "";
    };
}

Setter string(std::string& target) {
    return [&target](const toml::node& node) -> std::string {
        if (!node.is_string()) return "must be a string";
        target = *node.value<std::string>();
        return "";
    };
}

Setter boolean(bool& target) {
    return [&target](const toml::node& node) -> std::string {
        if (!node.is_boolean()) return "must be true or false";
        target = *node.value<bool>();
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
        {"completion.fim_template", string(c.completion.fim_template)},
        {"completion.max_prompt_tokens", integer(c.completion.max_prompt_tokens, 64, 1 << 20)},
        {"completion.max_tokens", integer(c.completion.max_tokens, 1, 1 << 16)},
        {"completion.deadline_ms", integer(c.completion.deadline_ms, 100, 3600000)},
        {"completion.repo_name", string(c.completion.repo_name)},
        {"completion.current_line_after_middle", boolean(c.completion.current_line_after_middle)},
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

}  // namespace

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
    return Ok{};
}

}  // namespace codepilot::config
