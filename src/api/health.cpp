// Liveness (/health) and readiness (/ready) for load balancers and Kubernetes probes.
#include "api/api.h"

#include <nlohmann/json.hpp>

namespace codepilot::api {
namespace {
std::string ready_body(const std::string& model) {
    return nlohmann::json{{"status", "ready"}, {"model", model}}.dump();
}
} // namespace

void add_route(server::Router& router, server::http::verb method, const char* path,
               std::shared_ptr<ApiContext> context, ContextHandler handler) {
    router.add(method, path, [context, handler](server::Exchange& ex) -> server::asio::awaitable<void> {
        co_await handler(ex, *context);
    });
}

void register_health_routes(server::Router& router, std::shared_ptr<ApiContext> context) {
    router.add(server::http::verb::get, "/health", [](server::Exchange& ex) -> server::asio::awaitable<void> {
        co_await ex.respond(server::http::status::ok, R"({"status":"ok"})");
    });
    router.add(server::http::verb::get, "/ready",
               [context](server::Exchange& ex) -> server::asio::awaitable<void> {
                   // Ready: listening, and every default model (completion, chat, embedding) is serving.
                   if (!context->ready.load())
                       co_return co_await ex.respond_error(server::http::status::service_unavailable,
                                                           "the model is not loaded yet");
                   if (context->fleet && !context->fleet->ready())
                       co_return co_await ex.respond_error(
                           server::http::status::service_unavailable,
                           "a default model is not serving (GET /admin/v1/models says which)");
                   co_await ex.respond(server::http::status::ok, ready_body(context->model_id));
               });
}

} // namespace codepilot::api
