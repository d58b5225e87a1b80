#include "api/errors.h"

#include "store/database.h"

#include <spdlog/spdlog.h>

namespace codepilot::api {

using server::http::status;

status status_for(ErrorCode code) {
    switch (code) {
    case ErrorCode::invalid_argument:
    case ErrorCode::context_overflow:
    case ErrorCode::unsupported:
        return status::bad_request;
    case ErrorCode::not_found:
        return status::not_found;
    case ErrorCode::unauthenticated:
        return status::unauthorized;
    case ErrorCode::permission_denied:
        return status::forbidden;
    case ErrorCode::too_large:
        return status::payload_too_large;
    case ErrorCode::rate_limited:
        return status::too_many_requests;
    case ErrorCode::overloaded:
    case ErrorCode::unavailable:
        return status::service_unavailable;
    case ErrorCode::internal:
        return status::internal_server_error;
    case ErrorCode::bad_gateway:
        return status::bad_gateway;
    case ErrorCode::conflict:
        return status::conflict;
    }
    return status::internal_server_error;
}

Error public_error(const Error& error) {
    auto starts = [&](std::string_view prefix) { return error.message.rfind(prefix, 0) == 0; };
    if (error.code == ErrorCode::internal && !starts("generation failed")) {
        spdlog::error("internal error: {}", error.message);
        return make_error(ErrorCode::internal, "internal error");
    }
    if (starts("database unavailable") || starts("cannot open SQLite") || starts("cannot connect")) {
        spdlog::warn("store unavailable: {}", error.message);
        return make_error(error.code, "the store is unavailable; try again shortly");
    }
    if (starts(store::kConstraintError)) {
        spdlog::info("store constraint: {}", error.message);
        return make_error(error.code, "the change conflicts with existing data", error.param);
    }
    return error;
}

server::asio::awaitable<void> respond_error(server::Exchange& exchange, const Error& raw) {
    const Error error = public_error(raw);
    server::Headers extra;
    if (error.code == ErrorCode::overloaded || error.code == ErrorCode::unavailable ||
        error.code == ErrorCode::rate_limited)
        extra.emplace_back("Retry-After", "1");
    std::string code = error.code == ErrorCode::context_overflow ? "context_length_exceeded" : "";
    auto st = status_for(error.code);
    co_await exchange.respond(st, server::error_body(st, error.message, error.param, code),
                              "application/json", extra);
}

std::string error_event(const Error& error) {
    return server::error_body(status_for(error.code), error.message, error.param);
}

} // namespace codepilot::api
