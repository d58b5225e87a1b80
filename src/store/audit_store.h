// AuditStore: the hash-chained audit table. Appends link each row to the one before inside
// one transaction (replicas serialize on the head row), keyed with a chain key that lives
// outside the database; scans feed verify and export.
#pragma once

#include "store/database.h"

#include <functional>
#include <string>
#include <vector>

namespace codepilot::store {

struct AuditEntry {
    int64_t at_ms = 0;
    std::string kind;   // call | admin
    std::string tenant; // "" when none
    std::string body;   // canonical JSON
};

struct AuditRow {
    int64_t seq = 0, at_ms = 0;
    std::string kind, tenant, body, prev_hash, hash;
    std::string key_id; // the chain key that linked it; "" for rows linked before keys (legacy)
};

// A chain key: its id is stored with each row it links; the secret never is.
struct ChainKey {
    std::string id;     // "": no key, the legacy plain SHA-256 link
    std::string secret; // raw bytes
};

inline constexpr const char* kAuditGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";
// The link, hex: HMAC-SHA256(key.secret, prev_hash + "\n" + body); without a key (legacy rows)
// sha256 of the same text, which anyone able to write the table can recompute.
std::string audit_link(const std::string& prev_hash, const std::string& body, const ChainKey& key = {});

class AuditStore {
public:
    explicit AuditStore(Database& db, ChainKey key = {}) : db_(db), key_(std::move(key)) {}
    // Appends in order, in one transaction, linked with this store's key; returns the seq of
    // the last row.
    Result<int64_t> append(const std::vector<AuditEntry>& entries);
    // Rows with from_ms <= at_ms < to_ms (all when both are 0), in seq order, `page` at a time.
    Status scan(int64_t from_ms, int64_t to_ms, const std::function<Status(const AuditRow&)>& visit);
    // The newest link as recorded in audit_head.
    Result<std::pair<int64_t, std::string>> head();

private:
    Database& db_;
    ChainKey key_;
};

} // namespace codepilot::store
