// Mapping module errors to HTTP responses (the error body itself is built in server/).
#pragma once

#include "core/result.h"
#include "server/server.h"

namespace codepilot::api {

server::http::status status_for(ErrorCode code);
server::asio::awaitable<void> respond_error(server::Exchange& exchange, const Error& error);
// The JSON text of an error, for an SSE event after the stream has begun.
std::string error_event(const Error& error);

}  // namespace codepilot::api
