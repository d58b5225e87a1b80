// Internal: typed setters for TOML values (each returns an error or ""), shared by the
// config parsers.
#pragma once

#include "config/config.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <toml++/toml.h>
#include <vector>

namespace codepilot::config {

using Setter = std::function<std::string(const toml::node&)>; // returns an error or ""

template <typename T> inline Setter integer(T& target, int64_t min, int64_t max) {
    return [&target, min, max](const toml::node& node) -> std::string {
        // Type first: value<int64_t>() converts a float, and one out of range (1e300) is UB
        // (found by fuzz_config).
        if (!node.is_integer()) return "must be an integer";
        auto value = node.value<int64_t>();
        if (!value) return "must be an integer";
        if (*value < min || *value > max)
            return "must be between " + std::to_string(min) + " and " + std::to_string(max);
        target = static_cast<T>(*value);
        return "";
    };
}

// An integer or a float, finite and within [min, max].
inline Setter real(float& target, double min, double max) {
    return [&target, min, max](const toml::node& node) -> std::string {
        if (!node.is_integer() && !node.is_floating_point()) return "must be a number";
        double value =
            node.is_integer() ? static_cast<double>(*node.value<int64_t>()) : *node.value<double>();
        if (!(value >= min && value <= max)) // also refuses NaN
            return "must be between " + std::to_string(min) + " and " + std::to_string(max);
        target = static_cast<float>(value);
        return "";
    };
}

inline Setter string(std::string& target) {
    return [&target](const toml::node& node) -> std::string {
        if (!node.is_string()) return "must be a string";
        target = *node.value<std::string>();
        return "";
    };
}

inline Setter boolean(bool& target) {
    return [&target](const toml::node& node) -> std::string {
        if (!node.is_boolean()) return "must be true or false";
        target = *node.value<bool>();
        return "";
    };
}

inline Setter strings(std::vector<std::string>& target) {
    return [&target](const toml::node& node) -> std::string {
        const auto* array = node.as_array();
        if (!array) return "must be an array of strings";
        std::vector<std::string> out;
        for (const auto& item : *array) {
            if (!item.is_string()) return "must be an array of strings";
            out.push_back(*item.value<std::string>());
        }
        target = std::move(out);
        return "";
    };
}

// A key that is refused whatever its value, with the reason and what to use instead.
inline Setter refused(std::string why) {
    return [why = std::move(why)](const toml::node&) -> std::string { return why; };
}

// Applies `known` setters to the keys of one table; an unknown key is an error naming it.
std::string apply_table(const toml::table& table, const std::string& where,
                        std::map<std::string, Setter>& known);
// [[models]] and [routing] (fleet_config.cpp).
std::string parse_models(const toml::node& node, std::vector<FleetModelConfig>& out);
std::string parse_routing_rules(const toml::node& node, std::vector<RoutingRuleConfig>& out);

} // namespace codepilot::config
