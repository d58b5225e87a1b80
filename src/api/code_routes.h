// Internal: handlers shared between API files.
#pragma once

#include <nlohmann/json.hpp>

#include "api/api.h"

namespace codepilot::api {

// Tabby's /v1/completions shape (a body with `segments`); openai.cpp hands it over.
server::asio::awaitable<void> tabby_completion(server::Exchange& exchange, ApiContext& context,
                                               const nlohmann::json& body);

// llama.cpp's /infill, the seed call /complete and its alias.
void register_infill_routes(server::Router& router, std::shared_ptr<ApiContext> context);

}  // namespace codepilot::api
