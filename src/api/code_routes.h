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

// The model a call goes to (model_routes.cpp).
struct Routed {
    std::shared_ptr<const inference::FleetEntry> hold; // keeps the model loaded until the call ends
    inference::Backend* backend = nullptr;
    const inference::ModelSpec* model = nullptr;
    CompletionService* completions = nullptr; // completion tasks: the model's service
};
// Routes a call by task, requested name, tenant, x-codepilot-tier and prompt size; records
// the decision in the x-codepilot-route header and the call's usage (audit, metrics).
// Errors: 404 naming the models the caller may use, 503 when the model and its fallbacks are down.
Result<Routed> route_call(server::Exchange& exchange, ApiContext& context, inference::Task task,
                          const std::string& requested, const std::string* prompt_text = nullptr);
// The request body's `model` when it is a string ("" otherwise).
std::string requested_model(const nlohmann::json& body);
// IDE endpoints (Tabby, /infill): the body's `model` if it names one of ours, else "" (the
// default): their clients send whatever name their settings hold.
std::string known_model(const ApiContext& context, const nlohmann::json& body);
// Code completion from an IDE endpoint: the model (known_model) and its completion service.
Result<Routed> route_code_completion(server::Exchange& exchange, ApiContext& context,
                                     const nlohmann::json& body, const std::string& prefix);

} // namespace codepilot::api
