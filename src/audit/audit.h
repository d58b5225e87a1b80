// The audit trail: one record per API call and per admin change, prepared (redacted, sealed)
// by a few threads, written by one writer thread in group commits and chained in the store
// with HMAC-SHA256 under a key kept outside the database; the head is anchored outside it
// too. `sync` durability answers a request only after its record is committed; `batched`
// commits at least every flush interval.
#pragma once

#include "core/clock.h"
#include "core/result.h"
#include "metrics/metrics.h"
#include "store/audit_store.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace codepilot::guard {
class RuleSet;
}

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
    std::string prompt, completion;       // raw; stored only as the prompt policy says (never by default)
    std::vector<std::string> guard_rules; // the guard's findings in the request: rule ids, never values
    // admin changes (secrets masked by the caller)
    std::string action, object;
    nlohmann::json before, after;
};

// What becomes of prompts and completions: nothing (default), kept with secrets masked, or
// kept encrypted with AES-256-GCM under a key from a file or the environment.
enum class PromptStorage { none, redacted, encrypted };
std::optional<PromptStorage> parse_prompt_storage(std::string_view text);

// Keys by id, "id:base64url(32 bytes)" one per line (or ';'-separated in the environment): the
// first seals or links new records, all of them open or verify old ones (rotation: put the new
// key first). Prompt encryption keys and chain keys use the same form.
struct KeyRing {
    std::string current;
    std::map<std::string, std::string> keys; // id → 32 raw bytes
};
using PromptKeys = KeyRing;
Result<KeyRing> parse_key_ring(const std::string& text, const std::string& what = "audit keys");
Result<PromptKeys> parse_prompt_keys(const std::string& text);
Result<PromptKeys> load_prompt_keys(const std::string& file, const char* env_var = "CODEPILOT_AUDIT_KEYS");
// "aes256gcm:<key id>:<base64url(nonce | ciphertext | tag)>"
std::string seal(const PromptKeys& keys, std::string_view plain);
Result<std::string> open_sealed(const PromptKeys& keys, std::string_view sealed);

// Chain keys (HMAC-SHA256 links), from audit.chain_key_file, else the environment, else
// <data_dir>/audit-chain.key. With `create` a missing data-dir file is made (0600, one random
// key, its path logged); without, none found is an empty ring (verify then names the key
// each keyed row needs).
inline constexpr const char* kChainKeysEnv = "CODEPILOT_AUDIT_CHAIN_KEYS";
inline constexpr const char* kChainKeyFileName = "audit-chain.key";
Result<KeyRing> load_chain_keys(const std::string& file, const std::string& data_dir, bool create,
                                const char* env_var = kChainKeysEnv);
// The key new rows are linked with; none (legacy plain SHA-256) for an empty ring.
store::ChainKey current_chain_key(const KeyRing& ring);

// Anchors: the chain's head (seq, hash, time) written outside the database, as JSON lines
// appended to a file (O_APPEND, fsync) and/or syslog(3). A history rewritten later, even with
// every hash recomputed, no longer contains the anchored (seq, hash).
struct AnchorOptions {
    std::string file;                      // "": no file
    bool syslog = false;                   // also one syslog line per anchor
    std::chrono::milliseconds interval{0}; // 0: no anchors at all
    std::function<int64_t()> now_ms = [] { return unix_millis(); };
};
struct Anchor {
    int64_t seq = 0;
    std::string hash;
    int64_t at_ms = 0;
    std::string where; // read back: "file:line", for messages
};
std::string anchor_line(const Anchor& anchor); // {"at_ms":…,"hash":"…","seq":…}
Status write_anchor(const AnchorOptions& options, const Anchor& anchor);
Result<std::vector<Anchor>> read_anchors(const std::string& path);

struct PromptPolicy {
    PromptStorage storage = PromptStorage::none;
    std::shared_ptr<const guard::RuleSet> rules; // redacted: the server's guard rules (null: built in)
    PromptKeys keys;                             // encrypted
    size_t max_bytes = 64 * 1024; // longer texts are cut (and marked) before redaction or sealing
};

// Canonical JSON (sorted keys, no whitespace): what is stored and hashed.
std::string canonical_body(const Record& r, const PromptPolicy& policy = {});

enum class Durability { off, sync, batched };
std::optional<Durability> parse_durability(std::string_view text);

struct Options {
    PromptPolicy prompts;
    KeyRing chain_keys; // new rows are linked with the current key; empty: unkeyed (legacy)
    AnchorOptions anchors;
    Durability durability = Durability::batched;
    int flush_ms = 100;      // batched: the longest a record waits for its commit
    size_t capacity = 65536; // records waiting; beyond it new requests are refused (503)
    int prepare_threads = 0; // build bodies (redact, seal) off the writer thread; 0: by the cores, 1..4
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
    // Two stages over one queue in append order: preparers turn records into bodies (the
    // redaction or sealing of large prompts runs there, several at a time), and the writer
    // commits the longest prepared prefix, so the chain keeps the order of append.
    struct Pending {
        Record record; // moved out by the preparer that claims it
        store::AuditEntry entry;
        std::function<void(Status)> committed;
        bool prepared = false;
    };
    void prepare_loop();
    void write_loop();
    bool writer_should_wake() const; // under mu_
    void anchor_if_moved();

    store::AuditStore store_;
    Options options_;
    metrics::Registry* metrics_;
    metrics::Histogram* write_seconds_ = nullptr;
    metrics::Counter* write_failures_ = nullptr;
    metrics::Counter* records_ = nullptr;
    mutable std::mutex mu_;
    std::condition_variable wake_writer_, wake_preparers_, drained_;
    std::deque<Pending> queue_;
    uint64_t front_ticket_ = 0, next_unclaimed_ = 0; // queue_[t - front_ticket_] holds ticket t
    size_t prepared_front_ = 0;                      // prepared entries at the front of queue_
    size_t in_flight_ = 0;
    bool urgent_ = false, stopping_ = false, overdue_ = false;
    std::pair<int64_t, std::string> anchored_{-1, ""}; // the writer's last anchor
    std::chrono::steady_clock::time_point next_anchor_;
    std::vector<std::thread> preparers_;
    std::thread writer_;
};

struct VerifyOptions {
    const KeyRing* chain_keys = nullptr; // keyed rows need their key here
    std::vector<Anchor> anchors;         // each must name a (seq, hash) of the chain
};
struct VerifyReport {
    int64_t rows = 0;
    int64_t unkeyed_rows = 0; // legacy plain-SHA rows: only anchors protect them
    size_t anchors_checked = 0;
    std::optional<int64_t> first_bad_seq; // none: the chain is intact
    std::string problem;
};
// Walks the whole chain: every row's link (keyed or legacy), its sequence number, the head,
// and every anchor, stopping at the first problem in seq order.
Result<VerifyReport> verify(store::Database& db, const VerifyOptions& options = {});
// JSON lines (the record plus seq and hash) with from_ms <= time < to_ms; with `keys`,
// encrypted prompts and completions are opened.
Result<int64_t> export_jsonl(store::Database& db, int64_t from_ms, int64_t to_ms, std::ostream& out,
                             const PromptKeys* keys = nullptr);

} // namespace codepilot::audit
