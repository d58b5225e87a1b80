// Mapping module errors to HTTP responses (the error body itself is built in server/).
#pragma once

#include "core/result.h"
#include "server/server.h"

namespace codepilot::api {

server::http::status status_for(ErrorCode code);
// What a client may read of an error: store and internal details (SQL, hosts, constraint
// names) are logged and replaced by a plain sentence; errors meant for clients pass as they are.
Error public_error(const Error& error);
server::asio::awaitable<void> respond_error(server::Exchange& exchange, const Error& error);
// The JSON text of an error, for an SSE event after the stream has begun.
std::string error_event(const Error& error);

} // namespace codepilot::api
