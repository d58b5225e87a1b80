// Code completion as IDE clients ask for it (Tabby, llama.vscode /infill, Copilot-proxy,
// the seed call): one service that builds the FIM prompt with context, supersedes older
// requests for the same document, stops at the end of the line or block, and remembers
// completion ids for acceptance events.
#pragma once

#include "api/generation.h"
#include "completion/completion.h"
#include "completion/postprocess.h"
#include "metrics/metrics.h"

#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace codepilot::api {

struct CompletionSettings {
    std::string fim_template = "auto"; // auto | psm | spm | a family name | "...{prefix}...{suffix}..."
    int max_prompt_tokens = 1536;
    int max_tokens = 64;     // default for requests that do not say
    int deadline_ms = 30000; // server-side limit; on expiry the text so far is returned
    std::string repo_name = "repo";
    // The cursor's line goes after the middle token, so typing on a line re-evaluates only
    // that line (everything before it stays cached). An in-distribution FIM split.
    bool current_line_after_middle = true;
    // Reuse cached runs of at least this many tokens at shifted positions (0: exact reuse only).
    int kv_shift_min_chunk = 64;
    // With shifted reuse: the prefix starts with a newline (blank lines at its start dropped),
    // so a window that lost its first line reuses the rest by shifting (docs/completion.md).
    bool stable_windows = true;
};

struct CodeCompletionRequest {
    std::string endpoint;    // for metrics
    std::string language_id; // may be empty
    std::string filepath;
    completion::CodeContext context;
    std::string raw_prompt; // non-empty: sent as is (special tokens parsed)
    int max_tokens = 0;     // 0: the service default
    std::optional<float> temperature;
    std::optional<uint32_t> seed;
    std::optional<int> top_k;
    std::optional<float> top_p;
    int max_predict_ms = 0;
    bool ignore_eos = false;       // llama.cpp extension, for benchmarks
    int min_indent = -1;           // /infill n_indent: stop at a line indented less
    bool postprocess = true;       // language-aware line/block end and suffix trimming
    bool warm_up = false;          // evaluate the prompt only
    bool want_prompt_text = false; // render the prompt as text (debug output only)
    std::string client_key;        // who is typing; with filepath, the supersession key
};

struct CodeCompletionResult {
    std::string id;
    std::string text;
    std::string language;
    completion::BuiltPrompt prompt;
    std::string prompt_text; // the prompt rendered with its special tokens (if asked)
    Outcome outcome;
    bool superseded = false;
    bool client_gone = false;
    double latency_ms = 0;
};

// Kept with its model in the fleet (a Companion): it goes when the model is unloaded.
class CompletionService : public inference::Companion {
public:
    CompletionService(inference::Backend& backend, CompletionSettings settings, metrics::Registry& metrics,
                      std::string model_id);
    // The FIM layout in use, or an error for a bad `fim_template` setting.
    static Result<completion::FimSpec> resolve_template(const inference::Backend& backend,
                                                        const CompletionSettings& s,
                                                        std::optional<completion::CustomTemplate>& custom);

    bool can_fim() const { return can_fim_; }
    // The FIM prompt for a bare prefix and suffix (OpenAI `suffix`): the model family's layout
    // or the configured template, no context blocks.
    Result<std::vector<engine::Token>> fim_prompt(const std::string& prefix, const std::string& suffix) const;
    const completion::FimSpec& spec() const { return spec_; }

    server::asio::awaitable<Result<CodeCompletionResult>> complete(server::Exchange& exchange,
                                                                   CodeCompletionRequest request);

    // Acceptance telemetry from /v1/events; errors for unknown ids and types.
    // Returns the kind recorded (view, select, select_line, dismiss) and the completion's language.
    Result<std::pair<std::string, std::string>> record_event(const std::string& type,
                                                             const std::string& completion_id,
                                                             int choice_index, bool line_select);

private:
    void remember(const std::string& id, const std::string& language);
    std::optional<std::string> language_of(const std::string& id);

    inference::Backend& engine_;
    CompletionSettings settings_;
    metrics::Registry& metrics_;
    std::string model_id_;
    completion::FimSpec spec_;
    std::optional<completion::CustomTemplate> custom_;
    bool can_fim_ = false;

    std::mutex mu_;
    std::unordered_map<std::string, std::vector<std::shared_ptr<engine::Generation>>>
        in_flight_;                                         // by document
    std::list<std::pair<std::string, std::string>> recent_; // completion id → language, newest first
    std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> recent_index_;
};

} // namespace codepilot::api
