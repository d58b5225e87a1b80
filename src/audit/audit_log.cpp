// AuditLog: the queue between request handlers and the store. Records are prepared (body
// built, prompts redacted or sealed) by a few threads, and committed in append order by one
// writer thread, which also anchors the chain's head outside the database on a schedule.
#include "audit/audit.h"

#include <algorithm>
#include <chrono>
#include <spdlog/spdlog.h>

namespace codepilot::audit {

namespace {

constexpr size_t kPrepareChunk = 64;             // records a preparer claims at once (amortises wake-ups)
constexpr size_t kPrepareChunkText = 128 * 1024; // ... or texts of about this many bytes
constexpr size_t kWriteEarly = 4096;             // batched: commit before flush_ms once this many are ready

int preparer_count(int configured) {
    if (configured > 0) return configured;
    return static_cast<int>(std::clamp(std::thread::hardware_concurrency() / 2, 1u, 4u));
}

} // namespace

AuditLog::AuditLog(store::Database& db, Options options, metrics::Registry* metrics)
    : store_(db, current_chain_key(options.chain_keys)), options_(std::move(options)), metrics_(metrics) {
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
    if (options_.durability == Durability::off) return;
    next_anchor_ = std::chrono::steady_clock::now() + options_.anchors.interval;
    for (int i = preparer_count(options_.prepare_threads); i > 0; --i)
        preparers_.emplace_back([this] { prepare_loop(); });
    writer_ = std::thread([this] { write_loop(); });
}

AuditLog::~AuditLog() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    wake_preparers_.notify_all();
    wake_writer_.notify_all();
    for (auto& t : preparers_) t.join();
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
    // Preparers start at once on work worth starting early (a text to redact or seal, a sync
    // caller); cheap records wait for a chunk or the writer's timer, so that a busy server does
    // not pay a thread wake-up per request.
    const bool has_text = options_.prompts.storage != PromptStorage::none &&
                          (!record.prompt.empty() || !record.completion.empty());
    bool wake = false;
    {
        std::lock_guard lock(mu_);
        if (queue_.size() + in_flight_ >= options_.capacity) return false;
        queue_.push_back(Pending{std::move(record), {}, std::move(committed), false});
        wake = has_text || options_.durability == Durability::sync || urgent_ ||
               front_ticket_ + queue_.size() - next_unclaimed_ >= kPrepareChunk;
    }
    if (wake) wake_preparers_.notify_one();
    return true;
}

bool AuditLog::flush(std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    urgent_ = true;
    wake_writer_.notify_one();
    wake_preparers_.notify_all();
    return drained_.wait_for(lock, limit, [this] { return queue_.empty() && in_flight_ == 0; });
}

bool AuditLog::writer_should_wake() const {
    if (queue_.empty()) return stopping_ || urgent_;
    if (prepared_front_ == 0) return false; // the front is still being prepared
    // sync: commit as soon as anything is ready (with whatever else is); batched: at flush_ms.
    return options_.durability == Durability::sync || urgent_ || stopping_ || overdue_ ||
           prepared_front_ >= kWriteEarly;
}

void AuditLog::prepare_loop() {
    for (;;) {
        uint64_t first = 0;
        std::vector<Record> records;
        bool more = false;
        {
            std::unique_lock lock(mu_);
            wake_preparers_.wait(
                lock, [this] { return stopping_ || next_unclaimed_ < front_ticket_ + queue_.size(); });
            const uint64_t end = front_ticket_ + queue_.size();
            if (next_unclaimed_ == end) return; // stopping, nothing left to claim
            first = next_unclaimed_;
            // A chunk is many cheap records or a few large texts, so that several preparers
            // share a burst of large prompts.
            size_t text_bytes = 0;
            while (next_unclaimed_ < end && records.size() < kPrepareChunk &&
                   text_bytes < kPrepareChunkText) {
                auto& r = queue_[next_unclaimed_++ - front_ticket_].record;
                if (options_.prompts.storage != PromptStorage::none)
                    text_bytes += r.prompt.size() + r.completion.size();
                records.push_back(std::move(r));
            }
            more = next_unclaimed_ < end;
        }
        if (more) wake_preparers_.notify_one(); // the rest for another preparer
        // The expensive part, outside the lock and in parallel with the other preparers.
        std::vector<store::AuditEntry> entries;
        entries.reserve(records.size());
        for (const auto& r : records)
            entries.push_back(
                store::AuditEntry{r.at_ms, r.kind, r.tenant, canonical_body(r, options_.prompts)});
        bool wake = false;
        {
            std::lock_guard lock(mu_);
            // Tickets stay valid: the writer never removes an entry that is not prepared yet.
            for (size_t i = 0; i < entries.size(); ++i) {
                auto& p = queue_[first + i - front_ticket_];
                p.entry = std::move(entries[i]);
                p.prepared = true;
            }
            while (prepared_front_ < queue_.size() && queue_[prepared_front_].prepared) ++prepared_front_;
            wake = writer_should_wake();
        }
        if (wake) wake_writer_.notify_one();
    }
}

void AuditLog::write_loop() {
    auto backoff = std::chrono::milliseconds(50);
    for (;;) {
        std::vector<Pending> batch;
        {
            std::unique_lock lock(mu_);
            wake_writer_.wait_for(lock, std::chrono::milliseconds(options_.flush_ms),
                                  [this] { return writer_should_wake(); });
            if (queue_.empty()) {
                urgent_ = false;
                drained_.notify_all();
                if (stopping_) break;
                lock.unlock();
                anchor_if_moved();
                continue;
            }
            // Whatever is not claimed yet is due now: preparers may be waiting for a chunk.
            if (next_unclaimed_ < front_ticket_ + queue_.size()) wake_preparers_.notify_all();
            const size_t n = prepared_front_;
            overdue_ = n == 0; // the timer passed before the front was ready: commit once it is
            batch.reserve(n);
            for (size_t i = 0; i < n; ++i) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            front_ticket_ += n;
            prepared_front_ = 0;
            while (prepared_front_ < queue_.size() && queue_[prepared_front_].prepared) ++prepared_front_;
            in_flight_ = n;
        }
        if (batch.empty()) continue; // woken (timeout or stop) before the front was prepared
        std::vector<store::AuditEntry> entries;
        entries.reserve(batch.size());
        for (auto& p : batch) entries.push_back(std::move(p.entry));
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
            {
                std::lock_guard lock(mu_);
                in_flight_ = 0;
                if (queue_.empty()) drained_.notify_all();
            }
            anchor_if_moved();
            continue;
        }
        // The store is away: waiting requests (sync) learn it now and answer 503; the records
        // go back to the front of the queue and are retried, so nothing already queued is lost.
        if (write_failures_) write_failures_->inc();
        spdlog::error("audit: cannot commit {} record(s): {} (retrying)", batch.size(),
                      appended.error().message);
        std::vector<Pending> keep;
        for (size_t i = 0; i < batch.size(); ++i) {
            auto& p = batch[i];
            if (p.committed) {
                p.committed(appended.error());
                continue; // a sync caller answers 503: its call did not happen as far as clients know
            }
            p.entry = std::move(entries[i]);
            keep.push_back(std::move(p));
        }
        {
            std::lock_guard lock(mu_);
            for (auto it = keep.rbegin(); it != keep.rend(); ++it) queue_.push_front(std::move(*it));
            front_ticket_ -= keep.size();
            prepared_front_ += keep.size();
            in_flight_ = 0;
            if (stopping_ && queue_.empty()) break;
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
    // A clean shutdown anchors the final head, so that the next run's history is pinned to it.
    if (options_.anchors.interval.count() > 0) next_anchor_ = {};
    anchor_if_moved();
}

void AuditLog::anchor_if_moved() {
    if (options_.anchors.interval.count() <= 0) return;
    if (options_.anchors.file.empty() && !options_.anchors.syslog) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_anchor_) return;
    next_anchor_ = now + options_.anchors.interval;
    auto head = store_.head();
    if (!head) {
        spdlog::error("audit: cannot read the chain head for an anchor: {}", head.error().message);
        return;
    }
    if (*head == anchored_) return; // nothing new since the last anchor
    Anchor a{head->first, head->second, options_.anchors.now_ms(), ""};
    if (auto st = write_anchor(options_.anchors, a); !st) {
        spdlog::error("audit: {}", st.error().message);
        return;
    }
    anchored_ = *head;
}

} // namespace codepilot::audit
