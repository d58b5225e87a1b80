// `codepilot audit verify` and `audit export`: walking the chain.
#include "audit/audit.h"

#include <nlohmann/json.hpp>

namespace codepilot::audit {

Result<VerifyReport> verify(store::Database& db) {
    store::AuditStore audit(db);
    VerifyReport report;
    int64_t expected_seq = 1;
    std::string prev = store::kAuditGenesis;
    auto bad = [&](int64_t seq, std::string problem) {
        if (!report.first_bad_seq) {
            report.first_bad_seq = seq;
            report.problem = std::move(problem);
        }
        return make_error(ErrorCode::invalid_argument, "stop");
    };
    auto st = audit.scan(0, 0, [&](const store::AuditRow& row) -> Status {
        ++report.rows;
        if (row.seq != expected_seq)
            return bad(expected_seq, row.seq > expected_seq
                                         ? "row " + std::to_string(expected_seq) + " is missing (next is " +
                                               std::to_string(row.seq) + ")"
                                         : "rows out of order");
        if (row.prev_hash != prev)
            return bad(row.seq, "its link to the row before does not match (reordered or removed rows)");
        if (store::audit_link(row.prev_hash, row.body) != row.hash)
            return bad(row.seq, "its content was changed");
        auto body = nlohmann::json::parse(row.body, nullptr, false);
        if (body.is_discarded() || body.value("at_ms", int64_t{-1}) != row.at_ms ||
            body.value("kind", "") != row.kind || body.value("tenant", "") != row.tenant)
            return bad(row.seq, "its indexed columns differ from its content");
        prev = row.hash;
        ++expected_seq;
        return Ok{};
    });
    if (!st && !report.first_bad_seq) return st.error();
    if (report.first_bad_seq) return report;
    auto head = audit.head();
    if (!head) return head.error();
    if (head->first != expected_seq - 1 || head->second != prev) {
        report.first_bad_seq = expected_seq;
        report.problem = "the chain ends at row " + std::to_string(expected_seq - 1) +
                         " but the head says row " + std::to_string(head->first) +
                         " (rows were cut off the end)";
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
        out << body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
        ++n;
        return Ok{};
    });
    if (!st) return st.error();
    return n;
}

} // namespace codepilot::audit
