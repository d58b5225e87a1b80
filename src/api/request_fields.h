// Reading typed fields from a JSON request body, with errors that name the field.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace codepilot::api {

using json = nlohmann::json;

// Parses a body that must be a JSON object.
Result<json> parse_object(const std::string& body);

// Each returns nullopt when the field is absent or null, an Error when it has the wrong type
// or is out of range.
Result<std::optional<std::string>> opt_string(const json& body, const char* field);
Result<std::optional<int64_t>> opt_int(const json& body, const char* field, int64_t min, int64_t max);
Result<std::optional<double>> opt_number(const json& body, const char* field, double min, double max);
Result<std::optional<bool>> opt_bool(const json& body, const char* field);
// A string field that must be present ("'x' is required" otherwise).
Result<std::string> required_string(const json& body, const char* field);
// A string or an array of strings (e.g. `stop`).
Result<std::vector<std::string>> string_or_strings(const json& body, const char* field, size_t max_items);

Error field_error(const std::string& field, const std::string& message);

}  // namespace codepilot::api
