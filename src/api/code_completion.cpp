#include "api/code_completion.h"

#include "completion/language.h"
#include "core/utf8.h"

#include <random>

namespace codepilot::api {

using namespace completion;

namespace {

std::string uuid4() {
    thread_local std::mt19937_64 rng(std::random_device{}());
    uint64_t a = rng(), b = rng();
    a = (a & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;
    b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                  static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFull));
    return buf;
}

constexpr size_t kRememberedIds = 100000;

} // namespace

Result<FimSpec> CompletionService::resolve_template(const inference::Backend& engine,
                                                    const CompletionSettings& s,
                                                    std::optional<CustomTemplate>& custom) {
    FimSpec spec;
    spec.tokens = engine.fim_tokens();
    spec.repo_name = s.repo_name;
    spec.family =
        detect_family(engine.token_text(spec.tokens.prefix), engine.token_text(spec.tokens.file_sep));
    spec.layout = default_layout(spec.family);
    const std::string& t = s.fim_template;
    if (t == "auto") return spec;
    if (t == "psm")
        spec.layout = FimLayout::psm;
    else if (t == "spm")
        spec.layout = FimLayout::spm;
    else if (t.find("{prefix}") != std::string::npos || t.find("{suffix}") != std::string::npos) {
        CustomTemplate c;
        if (!parse_custom_template(t, c))
            return make_error(ErrorCode::invalid_argument,
                              "completion.fim_template must hold {prefix} and {suffix} exactly once each");
        custom = c;
    } else {
        for (auto f : {FimFamily::starcoder, FimFamily::deepseek_coder, FimFamily::codellama,
                       FimFamily::qwen_coder, FimFamily::codegemma, FimFamily::codestral}) {
            if (t == to_string(f)) {
                spec.family = f;
                spec.layout = default_layout(f);
                return spec;
            }
        }
        return make_error(ErrorCode::invalid_argument,
                          "completion.fim_template '" + t +
                              "' is not auto, psm, spm, a family "
                              "(starcoder, deepseek-coder, codellama, qwen-coder, codegemma, codestral) or a "
                              "template with {prefix} and {suffix}");
    }
    return spec;
}

CompletionService::CompletionService(inference::Backend& engine, CompletionSettings settings,
                                     metrics::Registry& metrics, std::string model_id)
    : engine_(engine), settings_(std::move(settings)), metrics_(metrics), model_id_(std::move(model_id)) {
    auto spec = resolve_template(engine_, settings_, custom_);
    if (spec) spec_ = spec.value(); // a bad setting is refused at start-up by the application
    can_fim_ = custom_.has_value() || engine_.info().has_fim;
}

Result<std::vector<engine::Token>> CompletionService::fim_prompt(const std::string& prefix,
                                                                 const std::string& suffix) const {
    if (!can_fim_)
        return make_error(ErrorCode::unsupported,
                          "model '" + model_id_ +
                              "' has no fill-in-the-middle tokens, so 'suffix' cannot be used",
                          "suffix");
    CodeContext ctx;
    ctx.prefix = prefix;
    ctx.suffix = suffix;
    PromptBudget budget;
    budget.max_tokens = engine_.info().ctx_per_sequence; // the client's text as is, unless it cannot fit
    auto tokenize = [this](const std::string& text) { return engine_.tokenize(text, false, false); };
    auto tokenize_special = [this](const std::string& text) { return engine_.tokenize(text, false, true); };
    return build_prompt(spec_, custom_ ? &*custom_ : nullptr, plain_text(), ctx, budget, tokenize,
                        tokenize_special)
        .tokens;
}

void CompletionService::remember(const std::string& id, const std::string& language) {
    std::lock_guard lock(mu_);
    recent_.emplace_front(id, language);
    recent_index_[id] = recent_.begin();
    if (recent_.size() > kRememberedIds) {
        recent_index_.erase(recent_.back().first);
        recent_.pop_back();
    }
}

std::optional<std::string> CompletionService::language_of(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = recent_index_.find(id);
    if (it == recent_index_.end()) return std::nullopt;
    return it->second->second;
}

Result<std::pair<std::string, std::string>> CompletionService::record_event(const std::string& type,
                                                                            const std::string& completion_id,
                                                                            int choice_index,
                                                                            bool line_select) {
    if (type != "view" && type != "select" && type != "dismiss")
        return make_error(ErrorCode::invalid_argument,
                          "'type' must be view, select or dismiss (got '" + type + "')", "type");
    if (completion_id.empty())
        return make_error(ErrorCode::invalid_argument, "'completion_id' is required", "completion_id");
    if (choice_index < 0)
        return make_error(ErrorCode::invalid_argument, "'choice_index' must be >= 0", "choice_index");
    auto language = language_of(completion_id);
    if (!language)
        return make_error(ErrorCode::not_found,
                          "no completion '" + completion_id + "' was served here recently", "completion_id");
    std::string kind = type == "select" && line_select ? "select_line" : type;
    metrics_
        .counter("codepilot_completion_events_total",
                 "Completion acceptance events from clients (view, select, select_line, dismiss)",
                 {{"model", model_id_}, {"language", *language}, {"type", kind}})
        .inc();
    return std::make_pair(kind, *language);
}

server::asio::awaitable<Result<CodeCompletionResult>> CompletionService::complete(server::Exchange& exchange,
                                                                                  CodeCompletionRequest req) {
    auto started = std::chrono::steady_clock::now();
    CodeCompletionResult result;
    const Language& language = detect_language(req.language_id, req.filepath);
    result.language = language.id;
    bool crlf = uses_crlf(req.context.prefix) || uses_crlf(req.context.suffix);
    auto& ctx = req.context;
    auto lf = [](std::string& text) {
        if (uses_crlf(text)) text = to_lf(text); // most requests have none: no copy
    };
    lf(ctx.prefix);
    lf(ctx.suffix);
    lf(ctx.middle_prompt);
    for (auto& s : ctx.snippets) lf(s.text);
    if (ctx.filepath.empty()) ctx.filepath = req.filepath;

    // The cursor analysis reads only the last two lines before the cursor: do not copy a huge prefix.
    std::string before_cursor;
    {
        std::string_view p(ctx.prefix);
        size_t cut = p.rfind('\n');
        if (cut != std::string_view::npos && cut > 0) cut = p.rfind('\n', cut - 1);
        before_cursor =
            std::string(cut == std::string_view::npos ? p : p.substr(cut + 1)) + ctx.middle_prompt;
    }
    const bool shifts = settings_.kv_shift_min_chunk > 0 && engine_.info().can_shift;
    const bool stable_windows = settings_.stable_windows && shifts && !custom_ && req.raw_prompt.empty();
    if (settings_.current_line_after_middle && !custom_ && req.raw_prompt.empty()) {
        size_t line_start = ctx.prefix.rfind('\n');
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        ctx.middle_prompt = ctx.prefix.substr(line_start) + ctx.middle_prompt;
        ctx.prefix.erase(line_start);
    }

    auto tokenize = [this](const std::string& text) { return engine_.tokenize(text, false, false); };
    auto tokenize_special = [this](const std::string& text) { return engine_.tokenize(text, false, true); };
    std::vector<engine::Token> tokens;
    if (!req.raw_prompt.empty()) {
        tokens = engine_.tokenize(to_lf(req.raw_prompt), true, true);
    } else {
        if (!can_fim_)
            co_return make_error(ErrorCode::unsupported,
                                 "model '" + model_id_ +
                                     "' has no fill-in-the-middle tokens; set completion.fim_template to a "
                                     "template with {prefix} and {suffix}");
        PromptBudget budget;
        budget.newline_before_prefix = stable_windows;
        budget.max_tokens =
            std::min(settings_.max_prompt_tokens,
                     engine_.info().ctx_per_sequence - std::max(req.max_tokens, settings_.max_tokens) - 8);
        result.prompt = build_prompt(spec_, custom_ ? &*custom_ : nullptr, language, ctx, budget, tokenize,
                                     tokenize_special);
        tokens = result.prompt.tokens;
    }
    if (req.want_prompt_text) {
        std::string prompt_text;
        for (auto t : tokens) prompt_text += engine_.token_text(t);
        result.prompt_text = sanitize_utf8(prompt_text);
    }

    Cursor cursor = analyze_cursor(before_cursor, ctx.suffix);
    inference::GenerationRequest g;
    g.prompt = std::move(tokens);
    g.max_tokens = req.warm_up ? 0 : (req.max_tokens > 0 ? req.max_tokens : settings_.max_tokens);
    g.sampling.temperature = req.temperature.value_or(0.0f);
    if (req.seed) g.sampling.seed = *req.seed;
    if (req.top_k) g.sampling.top_k = *req.top_k;
    if (req.top_p) g.sampling.top_p = *req.top_p;
    g.max_predict_ms = req.max_predict_ms;
    g.ignore_eos = req.ignore_eos;
    g.kv_shift_min_chunk = shifts ? settings_.kv_shift_min_chunk : 0;
    g.deadline = started + std::chrono::milliseconds(settings_.deadline_ms);
    if (req.postprocess) {
        g.stop_when = [cursor, &language](const std::string& text) {
            return completion_end(text, cursor, language) != std::string::npos;
        };
    } else if (req.min_indent >= 0) {
        Cursor indent_only;
        indent_only.mode = CompletionMode::block;
        indent_only.block_limit = req.min_indent;
        g.stop_when = [indent_only](const std::string& text) {
            return completion_end(text, indent_only, plain_text()) != std::string::npos;
        };
    }

    // A newer request for the same document supersedes this one, and this one supersedes older ones.
    std::string doc_key = req.client_key + "\n" + req.filepath;
    bool supersedable = !req.filepath.empty() && !req.warm_up;
    std::shared_ptr<engine::Generation> mine;
    HandlesHook on_handles = [&](const std::vector<std::shared_ptr<engine::Generation>>& handles) {
        mine = handles.front();
        if (!supersedable) return;
        std::lock_guard lock(mu_);
        auto& list = in_flight_[doc_key];
        for (auto& older : list) older->cancel();
        list.assign(1, mine);
    };
    std::vector<inference::GenerationRequest> requests;
    requests.push_back(std::move(g));
    auto outcomes =
        co_await run_generations(exchange, engine_, std::move(requests), nullptr, nullptr, on_handles);
    if (supersedable && mine) {
        std::lock_guard lock(mu_);
        auto it = in_flight_.find(doc_key);
        if (it != in_flight_.end() && !it->second.empty() && it->second.front() == mine) in_flight_.erase(it);
    }
    if (!outcomes) co_return outcomes.error();
    result.outcome = (*outcomes)[0];
    result.client_gone = exchange.client_gone();
    result.superseded = result.outcome.finish == engine::FinishReason::cancelled && !result.client_gone;
    if (result.outcome.finish == engine::FinishReason::error)
        co_return make_error(ErrorCode::internal, "generation failed: " + result.outcome.error);

    std::string text = result.superseded ? std::string() : result.outcome.text;
    if (req.postprocess)
        text = postprocess(text, cursor, language);
    else if (req.min_indent >= 0) {
        Cursor indent_only;
        indent_only.mode = CompletionMode::block;
        indent_only.block_limit = req.min_indent;
        size_t end = completion_end(text, indent_only, plain_text());
        if (end != std::string::npos) text.erase(end);
    }
    result.text = crlf ? to_crlf(text) : text;
    result.id = "cmpl-" + uuid4();
    result.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    remember(result.id, language.id);
    metrics_
        .counter("codepilot_completions_total", "Code completions served",
                 {{"model", model_id_}, {"language", language.id}, {"endpoint", req.endpoint}})
        .inc();
    metrics_
        .histogram("codepilot_completion_duration_seconds", "End-to-end code completion latency",
                   {{"model", model_id_}, {"endpoint", req.endpoint}},
                   metrics::Registry::latency_buckets_seconds())
        .observe(result.latency_ms / 1000.0);
    co_return result;
}

} // namespace codepilot::api
