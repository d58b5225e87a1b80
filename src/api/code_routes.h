// Internal: handlers shared between API files.
#pragma once

#include "api/api.h"

#include <nlohmann/json.hpp>

namespace codepilot::api {

// Tabby's /v1/completions shape (a body with `segments`); openai.cpp hands it over.
server::asio::awaitable<void> tabby_completion(server::Exchange& exchange, ApiContext& context,
                                               const nlohmann::json& body);

// Who is typing, for supersession: the credential's tenant, user and key or session (never the
// client address, which a proxy shares among tenants), refined by a client-sent hint.
std::string typist_key(const server::Exchange& exchange, std::string_view client_hint = {});

// llama.cpp's /infill, the seed call /complete and its alias.
void register_infill_routes(server::Router& router, std::shared_ptr<ApiContext> context);

} // namespace codepilot::api
