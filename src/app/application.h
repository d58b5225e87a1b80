// Application: the composition root of `codepilot serve` — config → engine → HTTP server with
// the API routes — and its lifecycle (start, signals, graceful shutdown).
#pragma once

#include "auth/auth.h"
#include "config/config.h"
#include "core/result.h"
#include "engine/engine.h"
#include "inference/inference.h"
#include "store/identity_store.h"

#include <memory>
#include <string>
#include <vector>

namespace codepilot::app {

// The demo model that `codepilot serve` synthesizes when no model is configured.
std::string demo_model_path(const config::Config& config);

class Application {
public:
    // Loads (or synthesizes) the model and binds the listener.
    static Result<std::unique_ptr<Application>> create(const config::Config& config);
    ~Application();

    int port() const;
    int plaintext_port() const; // with TLS and server.tls.plaintext_port: the plain listener's (else -1)
    const std::string& model_id() const;
    // Reads server.tls's certificate, key and client CA again (SIGHUP does this): new connections
    // use them. On an error the old ones stay in use and the error is returned (and logged).
    Status reload_tls();
    engine::Engine& engine(); // the default model's engine (tests; it must be local)
    inference::Fleet& fleet();
    store::IdentityStore& identities();
    auth::Authenticator& authenticator();
    // The file holding the owner key this start created on an empty store, if any.
    const std::optional<std::string>& bootstrap_key_file() const;
    // Every registered route (method, pattern): tests check each has an access rule.
    std::vector<std::pair<std::string, std::string>> routes() const;

    // Serves on background threads (tests); shutdown() stops them.
    void start();
    // Serves on this thread and helpers until SIGINT/SIGTERM, then shuts down gracefully;
    // SIGHUP reloads the TLS certificate.
    void run();
    // Graceful: stop accepting, let in-flight requests finish within the grace period.
    void shutdown();

    struct Parts;

private:
    explicit Application(std::unique_ptr<Parts> parts);
    std::unique_ptr<Parts> parts_;
};

} // namespace codepilot::app
