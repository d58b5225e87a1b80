// Internal: builds the fleet from [[models]] and [routing] (or the single [model] section),
// with one completion service per completion model and per-model gauges.
#pragma once

#include "api/code_completion.h"
#include "config/config.h"
#include "inference/inference.h"
#include "metrics/metrics.h"

#include <memory>
#include <vector>

namespace codepilot::app {

struct BuiltFleet {
    std::unique_ptr<inference::Fleet> fleet;
    std::vector<std::unique_ptr<api::CompletionService>> services; // by model, completion role only
    std::map<std::string, api::CompletionService*> service_by_model;
    std::string default_model; // the default completion model (else the first model)
};

// `demo_path`: where the synthesized demo model lives when [model] names no file.
Result<BuiltFleet> build_fleet(const config::Config& config, const std::string& demo_path,
                               const api::CompletionSettings& completion, metrics::Registry& metrics);

} // namespace codepilot::app
