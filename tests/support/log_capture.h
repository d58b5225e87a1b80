// Collects what the default spdlog logger writes while it lives, for tests that check a
// warning was (or was not) logged.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <string>

namespace codepilot::testenv {

class LogCapture {
public:
    LogCapture() : sink_(std::make_shared<Sink>()) { spdlog::default_logger()->sinks().push_back(sink_); }
    ~LogCapture() {
        auto& sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

    std::string text() { return sink_->text(); }
    // How many lines contain `needle`.
    int count(const std::string& needle) {
        std::istringstream lines(text());
        int n = 0;
        for (std::string line; std::getline(lines, line);) n += line.find(needle) != std::string::npos;
        return n;
    }

private:
    class Sink final : public spdlog::sinks::base_sink<std::mutex> {
    public:
        std::string text() {
            std::lock_guard lock(this->mutex_);
            return text_;
        }

    protected:
        void sink_it_(const spdlog::details::log_msg& msg) override {
            text_.append(msg.payload.data(), msg.payload.size());
            text_ += '\n';
        }
        void flush_() override {}

    private:
        std::string text_;
    };
    std::shared_ptr<Sink> sink_;
};

} // namespace codepilot::testenv
