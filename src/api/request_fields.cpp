#include "api/request_fields.h"

#include <cmath>

namespace codepilot::api {

Error field_error(const std::string& field, const std::string& message) {
    return make_error(ErrorCode::invalid_argument, "'" + field + "' " + message, field);
}

std::optional<size_t> nesting_deeper_than(std::string_view text, size_t limit) {
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i; // the escaped character cannot end the string
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > limit) return i;
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return std::nullopt;
}

std::optional<Error> nesting_error(std::string_view body) {
    auto at = nesting_deeper_than(body, kMaxJsonDepth);
    if (!at) return std::nullopt;
    return make_error(ErrorCode::invalid_argument, "the request body nests arrays and objects deeper than " +
                                                       std::to_string(kMaxJsonDepth) + " levels (at byte " +
                                                       std::to_string(*at) + ")");
}

Result<json> parse_object(const std::string& body) {
    if (body.empty())
        return make_error(ErrorCode::invalid_argument,
                          "the request body is empty; a JSON object is expected");
    // Checked before parsing: every later step (copies, dumps, destruction) may recurse per level.
    if (auto deep = nesting_error(body)) return *deep;
    json parsed;
    try {
        parsed = json::parse(body);
    } catch (const json::exception& e) {
        // e.what() reads "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
        // or "[json.exception.out_of_range.406] number overflow parsing '1e999'".
        std::string what = e.what();
        auto pos = what.find("] ");
        return make_error(ErrorCode::invalid_argument,
                          "the request body is not valid JSON: " +
                              (pos == std::string::npos ? what : what.substr(pos + 2)));
    }
    if (!parsed.is_object())
        return make_error(ErrorCode::invalid_argument, "the request body must be a JSON object");
    return parsed;
}

Result<std::optional<std::string>> opt_string(const json& body, const char* field) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) return std::optional<std::string>{};
    if (!it->is_string()) return field_error(field, "must be a string");
    return std::optional<std::string>{it->get<std::string>()};
}

Result<std::string> required_string(const json& body, const char* field) {
    auto v = opt_string(body, field);
    if (!v) return v.error();
    if (!v->has_value()) return field_error(field, "is required");
    return **v;
}

Result<std::optional<int64_t>> opt_int(const json& body, const char* field, int64_t min, int64_t max) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) return std::optional<int64_t>{};
    int64_t value;
    auto out_of_range = [&] {
        return field_error(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                      " (got " + it->dump() + ")");
    };
    if (it->is_number_unsigned()) { // above INT64_MAX it would wrap to a negative value
        if (it->get<uint64_t>() > static_cast<uint64_t>(max)) return out_of_range();
        value = static_cast<int64_t>(it->get<uint64_t>());
    } else if (it->is_number_integer()) {
        value = it->get<int64_t>();
    } else if (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>() &&
               std::abs(it->get<double>()) < 9e15) {
        value = static_cast<int64_t>(it->get<double>());
    } else {
        return field_error(field, "must be an integer");
    }
    if (value < min || value > max) return out_of_range();
    return std::optional<int64_t>{value};
}

Result<std::optional<double>> opt_number(const json& body, const char* field, double min, double max) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) return std::optional<double>{};
    if (!it->is_number()) return field_error(field, "must be a number");
    double value = it->get<double>();
    if (!(value >= min && value <= max)) {
        char buf[128];
        std::snprintf(buf, sizeof(buf), "must be between %g and %g", min, max);
        return field_error(field, buf);
    }
    return std::optional<double>{value};
}

Result<std::optional<bool>> opt_bool(const json& body, const char* field) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) return std::optional<bool>{};
    if (!it->is_boolean()) return field_error(field, "must be true or false");
    return std::optional<bool>{it->get<bool>()};
}

Result<std::vector<std::string>> string_or_strings(const json& body, const char* field, size_t max_items) {
    std::vector<std::string> out;
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) return out;
    if (it->is_string()) {
        out.push_back(it->get<std::string>());
        return out;
    }
    if (!it->is_array()) return field_error(field, "must be a string or an array of strings");
    if (it->size() > max_items)
        return field_error(field, "may hold at most " + std::to_string(max_items) + " items");
    for (const auto& item : *it) {
        if (!item.is_string()) return field_error(field, "must be a string or an array of strings");
        out.push_back(item.get<std::string>());
    }
    return out;
}

} // namespace codepilot::api
