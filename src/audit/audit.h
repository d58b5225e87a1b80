// The audit trail: one record per API call and per admin change, written by a writer thread
// in group commits and hash-chained in the store. `sync` durability answers a request only
// after its record is committed; `batched` commits at least every flush interval.
#pragma once

#include "core/result.h"
#include "metrics/metrics.h"
#include "store/audit_store.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace codepilot::audit {

struct Record {
    std::string kind = "call"; // call | admin
    int64_t at_ms = 0;
    std::string request_id, tenant, username, key_prefix, auth_method;
    std::string client_ip, user_agent;
    // calls
    std::string method, route, model;
    int status = 0;
    int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0, latency_ms = 0;
    std::string prompt, completion;  // raw; stored only as the prompt policy says (never by default)
    // admin changes (secrets masked by the caller)
    std::string action, object;
    nlohmann::json before, after;
};

// What becomes of prompts and completions: nothing (default), kept with secrets masked, or
// kept encrypted with AES-256-GCM under a key from a file or the environment.
enum class PromptStorage { none, redacted, encrypted };
std::optional<PromptStorage> parse_prompt_storage(std::string_view text);

// Encryption keys: "id:base64(32 bytes)" one per line (or ';'-separated in the environment);
// the first seals new records, all of them open old ones (rotation: put the new key first).
struct PromptKeys {
    std::string current;
    std::map<std::string, std::string> keys;  // id → 32 raw bytes
};
Result<PromptKeys> parse_prompt_keys(const std::string& text);
Result<PromptKeys> load_prompt_keys(const std::string& file, const char* env_var = "CODEPILOT_AUDIT_KEYS");
// "aes256gcm:<key id>:<base64url(nonce | ciphertext | tag)>"
std::string seal(const PromptKeys& keys, std::string_view plain);
Result<std::string> open_sealed(const PromptKeys& keys, std::string_view sealed);

struct PromptPolicy {
    PromptStorage storage = PromptStorage::none;
    PromptKeys keys;                 // encrypted
    size_t max_bytes = 64 * 1024;    // longer texts are cut (and marked) before redaction or sealing
};

// Canonical JSON (sorted keys, no whitespace): what is stored and hashed.
std::string canonical_body(const Record& r, const PromptPolicy& policy = {});

enum class Durability { off, sync, batched };
std::optional<Durability> parse_durability(std::string_view text);

struct Options {
    PromptPolicy prompts;
    Durability durability = Durability::batched;
    int flush_ms = 100;      // batched: the longest a record waits for its commit
    size_t capacity = 65536; // records waiting; beyond it new requests are refused (503)
};

class AuditLog {
public:
    AuditLog(store::Database& db, Options options, metrics::Registry* metrics);
    ~AuditLog(); // commits everything still queued

    Durability durability() const { return options_.durability; }
    PromptStorage prompt_storage() const { return options_.prompts.storage; }
    // Whether a new record would fit (callers answer 503 before doing work when not).
    bool accepting() const;
    // Queues a record. `committed` (optional) is called from the writer thread once the
    // record is durable, or with the error that kept it from being so. Returns false when
    // the buffer is full (the record is not taken).
    bool append(Record record, std::function<void(Status)> committed = {});
    // Blocks until everything queued so far is committed; false when `limit` passed first
    // (the store is unavailable).
    bool flush(std::chrono::milliseconds limit = std::chrono::seconds(10));

private:
    void run();
    struct Pending {
        Record record;  // the body is built on the writer thread, off the request path
        std::function<void(Status)> committed;
    };
    store::AuditStore store_;
    Options options_;
    metrics::Registry* metrics_;
    metrics::Histogram* write_seconds_ = nullptr;
    metrics::Counter* write_failures_ = nullptr;
    metrics::Counter* records_ = nullptr;
    mutable std::mutex mu_;
    std::condition_variable wake_, drained_;
    std::vector<Pending> queue_;
    size_t in_flight_ = 0;
    bool urgent_ = false, stopping_ = false;
    std::thread writer_;
};

struct VerifyReport {
    int64_t rows = 0;
    std::optional<int64_t> first_bad_seq; // none: the chain is intact
    std::string problem;
};
// Walks the whole chain: every row's link, its sequence number, and the head.
Result<VerifyReport> verify(store::Database& db);
// JSON lines (the record plus seq and hash) with from_ms <= time < to_ms; with `keys`,
// encrypted prompts and completions are opened.
Result<int64_t> export_jsonl(store::Database& db, int64_t from_ms, int64_t to_ms, std::ostream& out,
                             const PromptKeys* keys = nullptr);

} // namespace codepilot::audit
