// The API layer: endpoint handlers, one file per API family, registered on a Router.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "metrics/metrics.h"
#include "server/server.h"

namespace codepilot::api {

class CompletionService;

struct ApiContext {
    engine::Engine* engine = nullptr;
    CompletionService* completions = nullptr;
    metrics::Registry* metrics = nullptr;
    std::string version = "0.0.0";
    std::string git_sha = "unknown";
    std::string model_id;
    int max_tokens_cap = 4096;
    int64_t created = 0;            // unix time the model was loaded
    std::atomic<bool> ready{false}; // model loaded and serving
};

// Registers `handler` for `method` `path`, bound to `context`.
using ContextHandler = server::asio::awaitable<void> (*)(server::Exchange&, ApiContext&);
void add_route(server::Router& router, server::http::verb method, const char* path,
               std::shared_ptr<ApiContext> context, ContextHandler handler);

void register_openai_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_health_routes(server::Router& router, std::shared_ptr<ApiContext> context);
void register_code_completion_routes(server::Router& router, std::shared_ptr<ApiContext> context);

}  // namespace codepilot::api
