#include "audit/audit.h"

#include <chrono>
#include <spdlog/spdlog.h>

namespace codepilot::audit {

AuditLog::AuditLog(store::Database& db, Options options, metrics::Registry* metrics)
    : store_(db), options_(options), metrics_(metrics) {
    if (metrics_) {
        write_seconds_ =
            &metrics_->histogram("codepilot_audit_write_seconds", "Time to commit one group of audit records",
                                 {}, metrics::Registry::latency_buckets_seconds());
        write_failures_ =
            &metrics_->counter("codepilot_audit_write_failures_total",
                               "Audit group commits that failed (records are kept and retried)");
        records_ = &metrics_->counter("codepilot_audit_records_total", "Audit records committed");
        metrics_->gauge("codepilot_audit_queue_depth", "Audit records waiting for their commit", [this] {
            std::lock_guard lock(mu_);
            return static_cast<double>(queue_.size() + in_flight_);
        });
    }
    if (options_.durability != Durability::off) writer_ = std::thread([this] { run(); });
}

AuditLog::~AuditLog() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable()) writer_.join();
}

bool AuditLog::accepting() const {
    std::lock_guard lock(mu_);
    return queue_.size() + in_flight_ < options_.capacity;
}

bool AuditLog::append(Record record, std::function<void(Status)> committed) {
    if (options_.durability == Durability::off) {
        if (committed) committed(Ok{});
        return true;
    }
    {
        std::lock_guard lock(mu_);
        if (queue_.size() + in_flight_ >= options_.capacity) return false;
        queue_.push_back(Pending{std::move(record), std::move(committed)});
        // sync: commit now (with whatever else is queued); batched: within flush_ms
        if (options_.durability == Durability::sync) urgent_ = true;
    }
    if (options_.durability == Durability::sync) wake_.notify_one();
    return true;
}

bool AuditLog::flush(std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    urgent_ = true;
    wake_.notify_one();
    return drained_.wait_for(lock, limit, [this] { return queue_.empty() && in_flight_ == 0; });
}

void AuditLog::run() {
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        std::vector<Pending> batch;
        {
            std::unique_lock lock(mu_);
            wake_.wait_for(lock, std::chrono::milliseconds(options_.flush_ms),
                           [this] { return urgent_ || stopping_ || queue_.size() >= 4096; });
            if (queue_.empty()) {
                urgent_ = false;
                drained_.notify_all();
                if (stopping_) return;
                continue;
            }
            batch.swap(queue_);
            in_flight_ = batch.size();
            urgent_ = false;
        }
        std::vector<store::AuditEntry> entries;
        entries.reserve(batch.size());
        for (const auto& p : batch)
            entries.push_back(store::AuditEntry{p.record.at_ms, p.record.kind, p.record.tenant,
                                                canonical_body(p.record, options_.prompts)});
        auto started = std::chrono::steady_clock::now();
        auto appended = store_.append(entries);
        if (write_seconds_)
            write_seconds_->observe(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        if (appended) {
            backoff = std::chrono::milliseconds(50);
            if (records_) records_->inc(static_cast<double>(batch.size()));
            for (auto& p : batch)
                if (p.committed) p.committed(Ok{});
            std::lock_guard lock(mu_);
            in_flight_ = 0;
            if (queue_.empty()) drained_.notify_all();
            continue;
        }
        // The store is away: waiting requests (sync) learn it now and answer 503; the records
        // go back to the front of the queue and are retried, so nothing already queued is lost.
        if (write_failures_) write_failures_->inc();
        spdlog::error("audit: cannot commit {} record(s): {} (retrying)", batch.size(),
                      appended.error().message);
        std::vector<Pending> keep;
        for (auto& p : batch) {
            if (p.committed) {
                p.committed(appended.error());
                continue; // a sync caller answers 503: its call did not happen as far as clients know
            }
            keep.push_back(std::move(p));
        }
        {
            std::lock_guard lock(mu_);
            keep.insert(keep.end(), std::make_move_iterator(queue_.begin()),
                        std::make_move_iterator(queue_.end()));
            queue_.swap(keep);
            in_flight_ = 0;
            if (stopping_ && queue_.empty()) return;
        }
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        std::lock_guard lock(mu_);
        if (stopping_ && backoff >= std::chrono::milliseconds(2000)) {
            spdlog::error("audit: giving up on {} record(s) at shutdown: the store is unavailable",
                          queue_.size());
            return;
        }
    }
}

} // namespace codepilot::audit
