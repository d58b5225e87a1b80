// Audit writer throughput with `store_prompts = "redacted"`: 64 KiB prompts with a few secrets,
// as fast as they can be appended, until the last one is committed. Before: std::regex on the
// single writer thread (f93a9e3, emulated with that commit's redactor and writer loop). After:
// RE2 in AuditLog's preparation stage, off the writer thread. Not a test: numbers for
// docs/benchmarks.md.
#include "audit/audit.h"
#include "guard/guard.h"
#include "store/store.h"

#include <algorithm>
#include <chrono>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

namespace codepilot::bench {
guard::Redaction redact_secrets_std_regex(std::string_view input);
}

using namespace codepilot;
using Clock = std::chrono::steady_clock;

namespace {

// Code-like text with a secret at the start and every 16 KiB (one of each kind per 64 KiB).
std::string prompt_text(size_t bytes, int salt) {
    const char* secrets[] = {"aws = 'AKIAIOSFODNN7EXAMPLE'\n", "DB_PASSWORD = \"correct-horse-battery\"\n",
                             "url = 'postgresql://app:hunter2secret@db:5432/x'\n",
                             "headers = {'Authorization': 'Bearer abcdefghijklmnop1234'}\n"};
    std::string out;
    int line = 0;
    while (out.size() < bytes) {
        if (out.empty() || out.size() / 16384 != (out.size() + 64) / 16384)
            out += secrets[(out.size() / 16384) % 4];
        out +=
            "    total_" + std::to_string(line++ + salt) + " = compute(items[i], weight=0.5)  # tokens: 3\n";
    }
    out.resize(bytes);
    return out;
}

audit::Record record(int i, size_t prompt_bytes) {
    audit::Record r;
    r.at_ms = 1'800'000'000'000 + i;
    r.request_id = "req-" + std::to_string(i);
    r.tenant = "acme";
    r.route = "/v1/completions";
    r.status = 200;
    r.prompt = prompt_text(prompt_bytes, i);
    r.completion = "return total";
    return r;
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

std::unique_ptr<store::Database> fresh_db(const std::string& dir, const std::string& name) {
    const std::string path = dir + "/" + name + ".db";
    for (const char* s : {"", "-wal", "-shm"}) std::filesystem::remove(path + s);
    auto db = store::open_and_migrate("sqlite://" + path, 2);
    if (!db) {
        std::fprintf(stderr, "store: %s\n", db.error().message.c_str());
        std::exit(1);
    }
    return std::move(*db);
}

// f93a9e3's writer loop: the whole queue taken at once, every body (redaction included) built
// on the writer thread, then one append.
double writer_thread_rate(store::Database& db, const std::vector<audit::Record>& records,
                          guard::Redaction (*redact)(std::string_view)) {
    store::AuditStore st(db);
    auto started = Clock::now();
    std::vector<store::AuditEntry> entries;
    for (const auto& r : records) {
        auto j = nlohmann::json::parse(audit::canonical_body(r));
        auto p = redact(r.prompt), c = redact(r.completion);
        j["prompt"] = {{"text", p.text}, {"secrets_redacted", p.secrets}};
        j["completion"] = {{"text", c.text}, {"secrets_redacted", c.secrets}};
        entries.push_back(
            {r.at_ms, r.kind, r.tenant, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
    }
    if (!st.append(entries)) std::exit(1);
    return static_cast<double>(records.size()) / seconds_since(started);
}

double audit_log_rate(store::Database& db, const std::vector<audit::Record>& records, int threads) {
    audit::Options o;
    o.prompts.storage = audit::PromptStorage::redacted;
    o.prepare_threads = threads;
    o.capacity = records.size() + 1;
    o.chain_keys.current = "bench";
    o.chain_keys.keys["bench"] = std::string(32, 'k');
    audit::AuditLog log(db, o, nullptr);
    auto started = Clock::now();
    for (const auto& r : records) log.append(r);
    if (!log.flush(std::chrono::minutes(10))) std::exit(1);
    return static_cast<double>(records.size()) / seconds_since(started);
}

guard::Redaction redact_with_rules(std::string_view text) {
    return guard::redact_secrets(text); // the built-in rules, as the audit writer uses them
}

double median_ms(const std::string& text, guard::Redaction (*redact)(std::string_view), int runs) {
    std::vector<double> ms;
    const int expected = static_cast<int>((text.size() + 16383) / 16384);
    for (int i = 0; i < runs; ++i) {
        auto t = Clock::now();
        auto r = redact(text);
        ms.push_back(seconds_since(t) * 1000);
        if (r.secrets != expected)
            std::fprintf(stderr, "warning: %d secrets found, %d expected\n", r.secrets, expected);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"audit writer throughput with redacted prompts, before and after"};
    int before_records = 60, after_records = 2000;
    size_t prompt_kib = 64;
    std::vector<int> threads{1, 2};
    std::string dir =
        std::filesystem::temp_directory_path() / ("cp-bench-audit-" + std::to_string(::getpid()));
    app.add_option("--before-records", before_records, "records for the std::regex run (it is slow)");
    app.add_option("--records", after_records, "records for the RE2 runs");
    app.add_option("--prompt-kib", prompt_kib, "prompt size");
    app.add_option("--threads", threads, "preparer thread counts to measure");
    CLI11_PARSE(app, argc, argv);
    std::filesystem::create_directories(dir);

    const std::string sample = prompt_text(prompt_kib * 1024, 0);
    const double old_ms = median_ms(sample, bench::redact_secrets_std_regex, 9);
    const double new_ms = median_ms(sample, redact_with_rules, 51);
    std::printf("redaction of one %zu KiB prompt (median): std::regex %.2f ms, RE2 %.3f ms (%.0fx)\n\n",
                prompt_kib, old_ms, new_ms, old_ms / new_ms);

    std::vector<audit::Record> few, many;
    for (int i = 1; i <= before_records; ++i) few.push_back(record(i, prompt_kib * 1024));
    for (int i = 1; i <= after_records; ++i) many.push_back(record(i, prompt_kib * 1024));
    std::printf("| redactor | where | records | records/s |\n|---|---|---:|---:|\n");
    auto db = fresh_db(dir, "before");
    const double before = writer_thread_rate(*db, few, bench::redact_secrets_std_regex);
    std::printf("| std::regex (f93a9e3) | writer thread | %d | %.1f |\n", before_records, before);
    db = fresh_db(dir, "re2-writer");
    std::printf("| RE2 | writer thread | %d | %.1f |\n", after_records,
                writer_thread_rate(*db, many, redact_with_rules));
    for (int t : threads) {
        db = fresh_db(dir, "after-" + std::to_string(t));
        const double after = audit_log_rate(*db, many, t);
        std::printf("| RE2 | AuditLog, %d preparer(s) | %d | %.1f (%.0fx) |\n", t, after_records, after,
                    after / before);
    }
    db.reset();
    std::filesystem::remove_all(dir);
}
