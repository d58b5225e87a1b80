#include "store/audit_store.h"

#include "core/base64.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

namespace codepilot::store {

std::string audit_link(const std::string& prev_hash, const std::string& body, const ChainKey& key) {
    if (!key.id.empty()) {
        static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        char digest_name[] = "SHA256";
        const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                                     OSSL_PARAM_construct_end()};
        EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac);
        EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.secret.data()), key.secret.size(),
                     params);
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(prev_hash.data()), prev_hash.size());
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>("\n"), 1);
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(body.data()), body.size());
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t len = 0;
        EVP_MAC_final(ctx, mac, &len, sizeof mac);
        EVP_MAC_CTX_free(ctx);
        return hex_encode(mac, len);
    }
    static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, sha256, nullptr);
    EVP_DigestUpdate(ctx, prev_hash.data(), prev_hash.size());
    EVP_DigestUpdate(ctx, "\n", 1);
    EVP_DigestUpdate(ctx, body.data(), body.size());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, digest, &len);
    EVP_MD_CTX_free(ctx);
    return hex_encode(digest, len);
}

Result<int64_t> AuditStore::append(const std::vector<AuditEntry>& entries) {
    int64_t last = 0;
    auto st = db_.transaction([&](Connection& c) -> Status {
        // The head row is the lock: one appender at a time across replicas.
        const char* read_head = db_.dialect() == Dialect::postgresql
                                    ? "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
                                    : "SELECT seq, hash FROM audit_head WHERE id = 1";
        auto head = c.query(read_head);
        if (!head) return head.error();
        if (head->empty()) return make_error(ErrorCode::internal, "audit_head is missing");
        int64_t seq = head->front().integer(0);
        std::string prev = head->front().text(1);
        // Many rows per statement: one round trip per 100 records, not per record.
        constexpr size_t kRowsPerInsert = 100;
        for (size_t first = 0; first < entries.size(); first += kRowsPerInsert) {
            const size_t last_row = std::min(entries.size(), first + kRowsPerInsert);
            std::string sql =
                "INSERT INTO audit_log (seq, at_ms, kind, tenant, body, prev_hash, hash, key_id) VALUES ";
            std::vector<Value> params;
            params.reserve((last_row - first) * 8);
            for (size_t i = first; i < last_row; ++i) {
                const auto& e = entries[i];
                ++seq;
                std::string hash = audit_link(prev, e.body, key_);
                sql += i == first ? "(?, ?, ?, ?, ?, ?, ?, ?)" : ", (?, ?, ?, ?, ?, ?, ?, ?)";
                params.insert(params.end(), {seq, e.at_ms, e.kind, e.tenant, e.body, prev, hash, key_.id});
                prev = std::move(hash);
            }
            if (auto r = c.query(sql, params); !r) return r.error();
        }
        auto r = c.query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", {seq, prev});
        if (!r) return r.error();
        last = seq;
        return Ok{};
    });
    if (!st) return st.error();
    return last;
}

Status AuditStore::scan(int64_t from_ms, int64_t to_ms, const std::function<Status(const AuditRow&)>& visit) {
    constexpr int64_t kPage = 1000;
    int64_t after = 0;
    const bool all = from_ms == 0 && to_ms == 0;
    for (;;) {
        auto rows =
            all ? db_.query("SELECT seq, at_ms, kind, tenant, body, prev_hash, hash, key_id FROM audit_log "
                            "WHERE seq > ? "
                            "ORDER BY seq LIMIT ?",
                            {after, kPage})
                : db_.query("SELECT seq, at_ms, kind, tenant, body, prev_hash, hash, key_id FROM audit_log "
                            "WHERE seq > ? "
                            "AND at_ms >= ? AND at_ms < ? ORDER BY seq LIMIT ?",
                            {after, from_ms, to_ms, kPage});
        if (!rows) return rows.error();
        for (const auto& r : *rows) {
            AuditRow row{r.integer(0), r.integer(1), r.text(2), r.text(3),
                         r.text(4),    r.text(5),    r.text(6), r.text(7)};
            if (auto st = visit(row); !st) return st;
            after = row.seq;
        }
        if (static_cast<int64_t>(rows->size()) < kPage) return Ok{};
    }
}

Result<std::pair<int64_t, std::string>> AuditStore::head() {
    auto rows = db_.query("SELECT seq, hash FROM audit_head WHERE id = 1");
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(ErrorCode::internal, "audit_head is missing");
    return std::make_pair(rows->front().integer(0), rows->front().text(1));
}

} // namespace codepilot::store
