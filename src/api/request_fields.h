// Reading typed fields from a JSON request body, with errors that name the field.
#pragma once

#include "core/result.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace codepilot::api {

using json = nlohmann::json;

// The deepest nesting of arrays and objects a request body may have (every route).
inline constexpr size_t kMaxJsonDepth = 64;
// Where `text` first nests deeper than `limit` (a byte offset), by a linear scan that knows
// strings; nullopt when it never does.
std::optional<size_t> nesting_deeper_than(std::string_view text, size_t limit);
// The error for a body nested deeper than kMaxJsonDepth (nullopt: it is not).
std::optional<Error> nesting_error(std::string_view body);
// Parses a body that must be a JSON object: malformed JSON, numbers out of range and nesting
// beyond kMaxJsonDepth are invalid_argument errors that say what was wrong.
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

} // namespace codepilot::api
