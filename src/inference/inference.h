// Inference backends behind one interface, and the fleet that routes each request to one.
// A backend is the local llama.cpp engine or a pool of upstream OpenAI-compatible servers
// (llama-server, vLLM, TGI, another Codepilot); the API layer, the completion service and
// the metrics speak only to `Backend` and `Fleet` (docs/models.md).
#pragma once

#include "config/config.h"
#include "core/result.h"
#include "engine/engine.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

namespace codepilot::inference {

using engine::Token;
using Embeddings = engine::Engine::Embeddings;

struct GenerationRequest : engine::GenerationRequest {
    // Chat for a backend that applies its own template (upstream): the messages are sent as
    // they are and `prompt` serves only for counting. Empty: `prompt` is the whole input.
    std::vector<engine::ChatMessage> messages;
    // Upstream: `prompt` holds the client's token ids of the remote model's vocabulary (a
    // token-array prompt), sent as they are rather than decoded as text.
    bool prompt_ids_are_remote = false;
};

// Where a backend stands: loading, serving, or down (with why).
struct Health {
    bool serving = false;
    std::string state = "loading"; // loading | serving | degraded | down | stopped
    int replicas = 1, replicas_up = 0;
    std::string detail; // what failed last (no secrets: no keys, no bodies)
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* kind() const = 0; // local | upstream

    // Queues a generation; events reach request.on_event on a backend thread (must not block).
    virtual Result<std::shared_ptr<engine::Generation>> submit(GenerationRequest request) = 0;
    // Mean-pooled, L2-normalised embeddings; `done` is called on a backend thread unless an
    // error is returned here.
    virtual Status embed(std::vector<std::vector<Token>> inputs,
                         std::function<void(Result<Embeddings>)> done) = 0;

    // Local: the model's own tokens. Upstream: a reversible text encoding of about three bytes
    // per token, so that prompt budgets hold without the remote vocabulary (an estimate).
    virtual std::vector<Token> tokenize(const std::string& text, bool add_special,
                                        bool parse_special) const = 0;
    virtual std::string detokenize(const std::vector<Token>& tokens) const = 0;
    virtual std::string token_text(Token token) const = 0;
    // Local: the GGUF's template. Upstream: the messages go as they are (templates_chat()).
    virtual Result<std::string>
    apply_chat_template(const std::vector<engine::ChatMessage>& messages) const = 0;
    virtual bool templates_chat() const { return false; }
    virtual bool exact_tokens() const { return true; } // false: counts are estimates

    virtual const engine::ModelInfo& info() const = 0;
    virtual const engine::FimTokens& fim_tokens() const = 0;
    virtual engine::EngineStats stats() const = 0;
    virtual Health health() const = 0;
    // Outstanding generations (submitted, not finished): what unloading waits for.
    virtual int in_flight() const = 0;
    virtual void stop() = 0;
    // The local engine, for tests and tools that need it (nullptr for upstream backends).
    virtual engine::Engine* local_engine() { return nullptr; }
};

std::unique_ptr<Backend> local_backend(std::unique_ptr<engine::Engine> engine);

struct FleetEntry;
// A LoRA adapter loaded onto `base`'s engine (a local model): generations carry the adapter,
// everything else is the base's. Holds the base entry; unloading the base waits for it.
Result<std::unique_ptr<Backend>> lora_backend(std::shared_ptr<const FleetEntry> base, const std::string& path,
                                              float scale);

struct UpstreamOptions {
    std::string id;                // for logs and errors
    std::vector<std::string> urls; // replicas of one model: http[s]://host:port[/base]
    std::string model;             // `model` sent upstream ("": the id)
    std::string api_key;           // Authorization: Bearer (never logged)
    std::string ca_file;           // https: trust this bundle (default: the system's)
    std::string fim;               // FIM family of the remote model (starcoder, qwen_coder, ...); "": none
    int context = 4096;            // tokens per request the remote model takes
    bool embeddings = false;       // serves /v1/embeddings
    int connect_timeout_ms = 2000; // TCP (and TLS) connect
    int first_byte_timeout_ms = 30000; // request sent → response headers
    int idle_timeout_ms = 30000;       // between two chunks of a streamed response
    int max_attempts = 3;              // replicas tried before the first byte (1: no retry)
    int max_idle_per_replica = 16;     // keep-alive connections kept per replica
    int health_interval_ms = 5000;     // GET /health on each replica (0: never)
    int breaker_failures = 3;          // consecutive failures that open a replica's circuit
    int breaker_cooldown_ms = 5000;    // open circuit: no requests for this long, then one probe
    int io_threads = 1;
};

// The FIM token texts of a model family (empty prefix for an unknown family).
struct FimTexts {
    std::string prefix, suffix, middle, pad, repo_name, file_sep, eot;
};
FimTexts fim_texts(const std::string& family);

Result<std::unique_ptr<Backend>> upstream_backend(const UpstreamOptions& options);

// --- Fleet: the models and the routing between them ---------------------------------------

enum class Task { completion, chat, embedding };
const char* to_string(Task task);
int canary_bucket(const std::string& caller, const std::string& canary);
std::optional<Task> parse_task(const std::string& name);

struct ModelSpec {
    std::string id, version = "1";
    std::vector<Task> roles;           // what it may serve
    std::vector<std::string> aliases;  // other names a request may use
    std::vector<std::string> tenants;  // visible only to these tenants (empty: to everyone) and to
                                       // callers without a tenant (the server owner)
    std::vector<std::string> fallback; // tried in order when this one is down
    // A canary: takes `canary_share` percent of the traffic routed to model `canary_of` (of the
    // tenants in canary_tenants, or everyone's), sticky per caller. Changed at run time with
    // Fleet::set_canary_share (promote: 100, rollback: 0).
    std::string canary_of;
    int canary_share = 0;
    std::vector<std::string> canary_tenants;
    // A LoRA adapter on local model `base`; the traffic of attach_tenants routed to the base
    // goes here instead (it is also requestable by its own id, by those who can see it).
    std::string base;
    std::vector<std::string> attach_tenants;
    bool serves(Task task) const;
    bool visible_to(const std::string& tenant) const;
};

// What a [[models]] entry describes: its spec, and its backend (the GGUF loaded, or the
// upstream pool connected). Errors name the model (a missing or corrupt file, a bad URL).
class Fleet;
ModelSpec spec_of(const config::FleetModelConfig& model);
// A LoRA adapter (backend = lora) is loaded onto its base model, which must be in `fleet`.
Result<std::unique_ptr<Backend>> make_backend(const config::FleetModelConfig& model, const Fleet& fleet);

// "Requests that match go to `model`": first matching rule wins, before the task default.
struct RoutingRule {
    std::optional<Task> task;
    std::string tenant;        // the caller's tenant name ("": any)
    std::string tier;          // x-codepilot-tier header value ("": any)
    int min_prompt_tokens = 0; // prompts at least this long (0: any)
    std::string model;
};

struct RouteQuery {
    Task task = Task::completion;
    std::string requested; // the request's `model` ("": the default)
    std::string tenant;
    std::string tier;
    const std::string* prompt_text = nullptr; // for size rules (counted by the candidate's tokenizer)
    std::string sticky_key;                   // who is calling (user or key): canary buckets
};

// What the layers above keep with a model and drop with it (the API's completion service).
// Destroyed before the backend it was built on.
struct Companion {
    virtual ~Companion() = default;
};

// One model of the fleet. Shared: a request that was routed to it keeps it (and its backend)
// alive until it ends, so that unloading never pulls a backend from under a request.
struct FleetEntry {
    ModelSpec spec;
    std::string source = "config"; // config | registry (registered at run time)
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Companion> companion; // after `backend`: destroyed first
    std::chrono::system_clock::time_point created;
    std::atomic<int> canary_share{0};
    std::atomic<bool> retired{false}; // unloading: routes no new request here
};

struct Route {
    std::shared_ptr<const FleetEntry> entry; // holds the model for the request's lifetime
    Backend* backend = nullptr;
    const ModelSpec* model = nullptr;
    std::string reason; // requested | alias | rule:N | default | fallback:<id> | canary:<id> | adapter:<id>
    std::string header() const; // x-codepilot-route value
};

// Thread-safe: models are added and removed while requests are routed (docs/models.md).
class Fleet {
public:
    using Entry = FleetEntry;
    using EntryPtr = std::shared_ptr<const Entry>;
    Fleet();
    ~Fleet();
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;

    // Adds a serving model. Errors: an id or alias that is taken, no roles, a canary_of or a
    // fallback that is not a model.
    Status add(ModelSpec spec, std::unique_ptr<Backend> backend,
               std::unique_ptr<Companion> companion = nullptr, std::string source = "config");
    // Default model per task and rules; errors name models that do not exist or cannot serve.
    // A task without a configured default takes the first model with the role (also after
    // models come and go).
    Status configure_routing(std::map<Task, std::string> defaults, std::vector<RoutingRule> rules);

    // The backend for a request. Errors: not_found (listing the ids the caller may use),
    // unsupported (the model does not serve the task), unavailable (it and its fallbacks down).
    Result<Route> route(const RouteQuery& query) const;

    EntryPtr find(const std::string& id_or_alias) const;
    std::vector<EntryPtr> entries() const; // in the order added
    std::vector<EntryPtr> visible_to(const std::string& tenant) const;
    std::optional<std::string> default_for(Task task) const;
    // Why `id` cannot be removed ("" when it can): a configured default, a rule's target, or
    // another model's fallback, canary base or adapter base.
    std::string pinned_by(const std::string& id) const;
    // Stops routing new requests to `id` (in-flight ones finish); false when there is no such model.
    bool retire(const std::string& id);
    // Takes `id` out of the fleet; the caller waits for its holders, then destroys it.
    std::shared_ptr<Entry> remove(const std::string& id);
    // The share (0-100) of its base model's traffic a canary takes; errors: not a canary, out of range.
    Status set_canary_share(const std::string& canary_id, int share);
    int canary_share(const std::string& canary_id) const;
    // Every default model is serving.
    bool ready() const;
    void stop();

private:
    std::shared_ptr<Entry> find_locked(const std::string& name) const;
    void refresh_defaults_locked();

    mutable std::shared_mutex mu_;
    std::vector<std::shared_ptr<Entry>> entries_;
    std::map<Task, std::string> configured_defaults_, defaults_;
    std::vector<RoutingRule> rules_;
    bool configured_ = false; // configure_routing ran: later models must reference existing ones
};

} // namespace codepilot::inference
