// `codepilot audit verify` and `audit export`: walking the chain.
#include "audit/audit.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace codepilot::audit {

namespace {

std::string short_hash(const std::string& hash) {
    return hash.substr(0, 16) + (hash.size() > 16 ? "…" : "");
}

std::string anchor_mismatch(const Anchor& a, const std::string& chain_hash) {
    return "anchor " + a.where + " says record " + std::to_string(a.seq) + " has hash " + short_hash(a.hash) +
           ", the chain has " + short_hash(chain_hash) + " (history was rewritten)";
}

} // namespace

Result<VerifyReport> verify(store::Database& db, const VerifyOptions& options) {
    store::AuditStore audit(db);
    VerifyReport report;
    int64_t expected_seq = 1;
    std::string prev = store::kAuditGenesis;
    bool keyed_seen = false;
    // Anchors in seq order, so that the first problem reported is the earliest in the chain.
    std::vector<const Anchor*> anchors;
    for (const auto& a : options.anchors) anchors.push_back(&a);
    std::stable_sort(anchors.begin(), anchors.end(),
                     [](const Anchor* x, const Anchor* y) { return x->seq < y->seq; });
    size_t next_anchor = 0;
    auto bad = [&](int64_t seq, std::string problem) {
        if (!report.first_bad_seq) {
            report.first_bad_seq = seq;
            report.problem = std::move(problem);
        }
        return make_error(ErrorCode::invalid_argument, "stop");
    };
    // Anchors up to `seq`, whose link in the chain is `hash`.
    auto check_anchors = [&](int64_t seq, const std::string& hash) -> bool {
        for (; next_anchor < anchors.size() && anchors[next_anchor]->seq <= seq; ++next_anchor) {
            const Anchor& a = *anchors[next_anchor];
            ++report.anchors_checked;
            if (a.hash != hash) {
                bad(seq, anchor_mismatch(a, hash));
                return false;
            }
        }
        return true;
    };
    check_anchors(0, store::kAuditGenesis);
    if (report.first_bad_seq) return report;
    auto st = audit.scan(0, 0, [&](const store::AuditRow& row) -> Status {
        ++report.rows;
        if (row.seq != expected_seq)
            return bad(expected_seq, row.seq > expected_seq
                                         ? "row " + std::to_string(expected_seq) + " is missing (next is " +
                                               std::to_string(row.seq) + ")"
                                         : "rows out of order");
        if (row.prev_hash != prev)
            return bad(row.seq, "its link to the row before does not match (reordered or removed rows)");
        store::ChainKey key;
        if (row.key_id.empty()) {
            // A plain-SHA row after keyed ones was rewritten by someone without the key.
            if (keyed_seen)
                return bad(row.seq, "it is unkeyed after keyed rows (rewritten without the chain key)");
            ++report.unkeyed_rows;
        } else {
            keyed_seen = true;
            const std::string* secret = nullptr;
            if (const auto* ring = options.chain_keys)
                if (auto found = ring->keys.find(row.key_id); found != ring->keys.end())
                    secret = &found->second;
            if (!secret)
                return bad(row.seq, "it was linked with chain key '" + row.key_id +
                                        "', which is not among the keys given (audit.chain_key_file, $" +
                                        kChainKeysEnv + " or the data dir's " + kChainKeyFileName +
                                        "; keep rotated keys after the current one)");
            key = store::ChainKey{row.key_id, *secret};
        }
        if (store::audit_link(row.prev_hash, row.body, key) != row.hash)
            return bad(row.seq, key.id.empty() ? "its content was changed"
                                               : "its content was changed (or chain key '" + key.id +
                                                     "' is not the key that linked it)");
        auto body = nlohmann::json::parse(row.body, nullptr, false);
        if (body.is_discarded() || body.value("at_ms", int64_t{-1}) != row.at_ms ||
            body.value("kind", "") != row.kind || body.value("tenant", "") != row.tenant)
            return bad(row.seq, "its indexed columns differ from its content");
        if (!check_anchors(row.seq, row.hash)) return make_error(ErrorCode::invalid_argument, "stop");
        prev = row.hash;
        ++expected_seq;
        return Ok{};
    });
    if (!st && !report.first_bad_seq) return st.error();
    if (report.first_bad_seq) return report;
    const int64_t last = expected_seq - 1;
    if (next_anchor < anchors.size()) { // anchors beyond the last row: the end was cut
        const Anchor& a = *anchors[next_anchor];
        bad(last + 1, "anchor " + a.where + " says the chain reached record " + std::to_string(a.seq) +
                          ", but it ends at record " + std::to_string(last) + " (rows were cut off the end)");
        return report;
    }
    auto head = audit.head();
    if (!head) return head.error();
    if (head->first != last || head->second != prev) {
        report.first_bad_seq = expected_seq;
        report.problem = "the chain ends at row " + std::to_string(last) + " but the head says row " +
                         std::to_string(head->first) + " (rows were cut off the end)";
    }
    return report;
}
Result<int64_t> export_jsonl(store::Database& db, int64_t from_ms, int64_t to_ms, std::ostream& out,
                             const PromptKeys* keys) {
    store::AuditStore audit(db);
    int64_t n = 0;
    auto st = audit.scan(from_ms, to_ms, [&](const store::AuditRow& row) -> Status {
        auto body = nlohmann::json::parse(row.body, nullptr, false);
        if (body.is_discarded()) body = nlohmann::json{{"unparsable_body", row.body}};
        if (keys)
            for (const char* field : {"prompt", "completion"})
                if (body.contains(field) && body[field].contains("sealed")) {
                    auto plain = open_sealed(*keys, body[field]["sealed"].get<std::string>());
                    body[field]["text"] = plain ? nlohmann::json(*plain) : nlohmann::json(nullptr);
                    if (!plain) body[field]["error"] = plain.error().message;
                }
        body["seq"] = row.seq;
        body["hash"] = row.hash;
        body["prev_hash"] = row.prev_hash;
        body["key_id"] = row.key_id;
        out << body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
        ++n;
        return Ok{};
    });
    if (!st) return st.error();
    return n;
}

} // namespace codepilot::audit
