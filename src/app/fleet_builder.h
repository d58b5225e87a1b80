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
    std::unique_ptr<inference::Fleet> fleet; // completion models carry their CompletionService
    std::string default_model;               // the default completion model (else the first model)
};

// The completion service of a model with the completion role (none for others); errors for a bad
// fim_template. Also the registry's hook for models registered at run time.
Result<std::unique_ptr<inference::Companion>> completion_companion(const inference::ModelSpec& spec,
                                                                   inference::Backend& backend,
                                                                   const api::CompletionSettings& completion,
                                                                   metrics::Registry& metrics);
void add_model_gauges(metrics::Registry& metrics, const inference::Fleet::EntryPtr& entry);

// `demo_path`: where the synthesized demo model lives when [model] names no file.
Result<BuiltFleet> build_fleet(const config::Config& config, const std::string& demo_path,
                               const api::CompletionSettings& completion, metrics::Registry& metrics);

} // namespace codepilot::app
