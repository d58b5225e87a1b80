// An upstream OpenAI-compatible server pool as a Backend: keep-alive connections per replica,
// connect / first-byte / idle deadlines, retries on another replica only before the first byte
// of an answer, least-outstanding-requests balancing, health checks and a circuit breaker per
// replica. Generations always stream from the upstream (time to first token, cancellation),
// whatever the client asked for. Runs on its own io_context threads.
#include "inference/text_vocabulary.h"
#include "inference/upstream_http.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <thread>

namespace codepilot::inference {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using engine::FinishReason;
using engine::GenerationEvent;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// What one generation needs across its attempts, shared with its cancellation watcher.
struct Job {
    GenerationRequest request;
    std::string path;
    std::string body;
    std::shared_ptr<engine::Generation> handle;
    Clock::time_point submitted = Clock::now();
};

class UpstreamBackend final : public Backend {
public:
    explicit UpstreamBackend(const UpstreamOptions& o, std::vector<Endpoint> endpoints)
        : options_(o), vocab_(fim_texts(o.fim)), pool_(o, std::move(endpoints)) {
        info_.path = o.urls.empty() ? "" : o.urls.front();
        info_.architecture = "upstream";
        info_.description = "upstream " + (o.model.empty() ? o.id : o.model);
        info_.n_vocab = TextVocabulary::vocabulary_size();
        info_.ctx_per_sequence = o.context;
        info_.n_ctx_train = o.context;
        fim_ = vocab_.fim_tokens();
        info_.has_fim = fim_.prefix >= 0 && fim_.suffix >= 0 && fim_.middle >= 0;
        info_.has_repo_tokens = fim_.repo_name >= 0 && fim_.file_sep >= 0;
        info_.has_embeddings = o.embeddings;
        pool_.start();
    }
    ~UpstreamBackend() override { stop(); }

    const char* kind() const override { return "upstream"; }

    Result<std::shared_ptr<engine::Generation>> submit(GenerationRequest request) override {
        if (stopped_) return make_error(ErrorCode::unavailable, "model '" + options_.id + "' is stopping");
        if (request.prompt.empty() && request.messages.empty())
            return make_error(ErrorCode::invalid_argument, "the prompt is empty", "prompt");
        for (Token t : request.prompt)
            if (!request.prompt_ids_are_remote && !vocab_.valid(t))
                return make_error(ErrorCode::unsupported,
                                  "model '" + options_.id +
                                      "' is served by an upstream: prompts are text, not token ids",
                                  "prompt");
        if (request.max_tokens <= 0)
            return make_error(ErrorCode::unsupported,
                              "model '" + options_.id +
                                  "' is served by an upstream: max_tokens must be at least 1",
                              "max_tokens");
        if (!pool_.any_available())
            return make_error(ErrorCode::unavailable,
                              "model '" + options_.id + "' has no replica up; try again shortly");
        auto job = std::make_shared<Job>();
        job->handle = std::make_shared<engine::Generation>();
        job->path = request.messages.empty() ? "/v1/completions" : "/v1/chat/completions";
        job->body = request_body(request).dump();
        job->request = std::move(request);
        started_.fetch_add(1);
        in_flight_.fetch_add(1);
        auto handle = job->handle;
        pool_.spawn([this, job]() -> Co<void> { co_await run(job); });
        return handle;
    }

    Status embed(std::vector<std::vector<Token>> inputs,
                 std::function<void(Result<Embeddings>)> done) override {
        if (!options_.embeddings)
            return make_error(ErrorCode::unsupported,
                              "model '" + options_.id + "' does not serve embeddings");
        json input = json::array();
        for (const auto& tokens : inputs) {
            for (Token t : tokens)
                if (!vocab_.valid(t))
                    return make_error(
                        ErrorCode::unsupported,
                        "model '" + options_.id + "' is served by an upstream: inputs must be text", "input");
            input.push_back(vocab_.decode(tokens));
        }
        json body = {{"model", remote_model()}, {"input", std::move(input)}};
        auto text = std::make_shared<std::string>(body.dump());
        in_flight_.fetch_add(1);
        pool_.spawn([this, text, done = std::move(done)]() -> Co<void> {
            auto reply = co_await pool_.call("/v1/embeddings", *text, nullptr, nullptr);
            in_flight_.fetch_sub(1);
            if (!reply) {
                done(reply.error());
                co_return;
            }
            done(parse_embeddings(reply->body));
        });
        return Ok{};
    }

    std::vector<Token> tokenize(const std::string& text, bool, bool parse_special) const override {
        return vocab_.encode(text, parse_special);
    }
    std::string detokenize(const std::vector<Token>& tokens) const override { return vocab_.decode(tokens); }
    std::string token_text(Token token) const override { return vocab_.token_text(token); }
    Result<std::string> apply_chat_template(const std::vector<engine::ChatMessage>& messages) const override {
        std::string text; // for counting only: the upstream applies its own template
        for (const auto& m : messages) text += m.role + ": " + m.content + "\n";
        return text;
    }
    bool templates_chat() const override { return true; }
    bool exact_tokens() const override { return false; }
    const engine::ModelInfo& info() const override { return info_; }
    const engine::FimTokens& fim_tokens() const override { return fim_; }
    engine::EngineStats stats() const override {
        engine::EngineStats s;
        s.requests_started = started_.load();
        s.running = in_flight_.load();
        s.generated_tokens = generated_.load();
        s.prompt_tokens = prompt_tokens_.load();
        return s;
    }
    Health health() const override { return pool_.health(); }
    int in_flight() const override { return in_flight_.load(); }
    void stop() override {
        if (stopped_.exchange(true)) return;
        pool_.stop();
    }

private:
    std::string remote_model() const { return options_.model.empty() ? options_.id : options_.model; }

    json request_body(const GenerationRequest& r) const {
        json b = {{"model", remote_model()}, {"stream", true}, {"max_tokens", r.max_tokens}};
        b["stream_options"] = {{"include_usage", true}};
        if (r.messages.empty()) {
            if (r.prompt_ids_are_remote)
                b["prompt"] = r.prompt; // the remote model's own token ids
            else
                b["prompt"] = vocab_.decode(r.prompt);
            if (r.logprobs > 0) b["logprobs"] = r.logprobs;
        } else {
            json messages = json::array();
            for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
            b["messages"] = std::move(messages);
            if (r.logprobs > 0) {
                b["logprobs"] = true;
                b["top_logprobs"] = r.logprobs;
            }
        }
        const auto& s = r.sampling;
        b["temperature"] = std::max(0.0f, s.temperature);
        if (s.top_p < 1.0f) b["top_p"] = s.top_p;
        if (s.top_k > 0) b["top_k"] = s.top_k;
        if (s.min_p > 0) b["min_p"] = s.min_p;
        if (s.presence_penalty != 0) b["presence_penalty"] = s.presence_penalty;
        if (s.frequency_penalty != 0) b["frequency_penalty"] = s.frequency_penalty;
        if (s.repeat_penalty != 1.0f) b["repeat_penalty"] = s.repeat_penalty;
        if (s.seed != 0xFFFFFFFF) b["seed"] = s.seed;
        if (!r.stop.empty()) b["stop"] = r.stop;
        if (r.ignore_eos) b["ignore_eos"] = true;
        return b;
    }

    // A chunk's token log-probabilities, in either form an upstream sends: OpenAI's chat form
    // (llama-server for both endpoints: logprobs.content[{token, logprob, top_logprobs}]) or the
    // legacy completions form (vLLM: tokens[], token_logprobs[], top_logprobs[{text: logprob}]).
    // Malformed or missing: no entries (the text still streams).
    static std::vector<engine::GeneratedToken> relayed_logprobs(const json& choice) {
        std::vector<engine::GeneratedToken> out;
        auto lp = choice.find("logprobs");
        if (lp == choice.end() || !lp->is_object()) return out;
        auto number = [](const json& v) {
            return v.is_number() ? v.get<float>() : std::numeric_limits<float>::lowest();
        };
        if (auto content = lp->find("content"); content != lp->end() && content->is_array()) {
            for (const auto& t : *content) {
                if (!t.is_object() || !t.contains("token") || !t["token"].is_string()) continue;
                engine::GeneratedToken g;
                g.piece = t["token"].get<std::string>();
                g.logprob = number(t.value("logprob", json()));
                if (auto top = t.find("top_logprobs"); top != t.end() && top->is_array())
                    for (const auto& a : *top)
                        if (a.is_object() && a.contains("token") && a["token"].is_string())
                            g.top_logprobs.push_back(
                                {a["token"].get<std::string>(), number(a.value("logprob", json()))});
                out.push_back(std::move(g));
            }
            return out;
        }
        auto tokens = lp->find("tokens");
        auto values = lp->find("token_logprobs");
        if (tokens == lp->end() || !tokens->is_array() || values == lp->end() || !values->is_array())
            return out;
        auto tops = lp->find("top_logprobs");
        for (size_t i = 0; i < tokens->size() && i < values->size(); ++i) {
            if (!(*tokens)[i].is_string()) continue;
            engine::GeneratedToken g;
            g.piece = (*tokens)[i].get<std::string>();
            g.logprob = number((*values)[i]);
            if (tops != lp->end() && tops->is_array() && i < tops->size() && (*tops)[i].is_object())
                for (const auto& [text, value] : (*tops)[i].items())
                    g.top_logprobs.push_back({text, number(value)});
            std::sort(g.top_logprobs.begin(), g.top_logprobs.end(),
                      [](const auto& a, const auto& b) { return a.logprob > b.logprob; });
            out.push_back(std::move(g));
        }
        return out;
    }

    static Result<Embeddings> parse_embeddings(const std::string& body) {
        auto j = json::parse(body, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array())
            return make_error(ErrorCode::bad_gateway, "the upstream's embeddings answer is not valid JSON");
        Embeddings out(j["data"].size());
        for (const auto& item : j["data"]) {
            if (!item.is_object() || !item.contains("embedding") || !item["embedding"].is_array())
                return make_error(ErrorCode::bad_gateway,
                                  "the upstream's embeddings answer lacks 'embedding'");
            size_t index = item.value("index", static_cast<size_t>(0));
            if (index >= out.size())
                return make_error(ErrorCode::bad_gateway, "the upstream's embeddings answer has a bad index");
            double norm = 0;
            for (const auto& v : item["embedding"]) {
                if (!v.is_number())
                    return make_error(ErrorCode::bad_gateway, "an upstream embedding is not numeric");
                out[index].push_back(v.get<float>());
                norm += static_cast<double>(out[index].back()) * out[index].back();
            }
            if (norm > 0)
                for (auto& v : out[index]) v = static_cast<float>(v / std::sqrt(norm));
        }
        return out;
    }

    // Relays one streamed generation; every path ends with exactly one done event.
    Co<void> run(std::shared_ptr<Job> job) {
        GenerationEvent done;
        done.kind = GenerationEvent::Kind::done;
        std::string text;
        int chunks = 0;
        double first_token_ms = 0;
        Clock::time_point first_token{};
        std::string finish = "";
        json usage;
        const auto& req = job->request;
        auto deadline = req.deadline;
        auto cut_short = [&]() -> std::optional<FinishReason> {
            if (job->handle->cancelled()) return FinishReason::cancelled;
            auto now = Clock::now();
            if (deadline && now >= *deadline) return FinishReason::length;
            if (req.max_predict_ms > 0 && chunks > 0 &&
                now - first_token >= std::chrono::milliseconds(req.max_predict_ms))
                return FinishReason::length;
            return std::nullopt;
        };
        std::optional<FinishReason> stopped_early;
        bool stop_rule = false;
        // Each SSE event: text to relay, or the end.
        StreamSink on_event = [&](const std::string& data) -> bool {
            if (data == "[DONE]") return false;
            auto j = json::parse(data, nullptr, false);
            if (j.is_discarded() || !j.is_object())
                throw UpstreamError("the upstream sent an event that is not JSON");
            if (j.contains("error")) {
                auto e = j["error"];
                throw UpstreamError("the upstream reported: " +
                                    (e.is_object() ? e.value("message", std::string("an error")) : e.dump()));
            }
            if (j.contains("usage") && j["usage"].is_object()) usage = j["usage"];
            auto choices = j.find("choices");
            if (choices == j.end() || !choices->is_array()) {
                if (j.contains("usage")) return true;
                throw UpstreamError("the upstream sent an event without 'choices'");
            }
            if (choices->empty()) return true;
            const json& c = (*choices)[0];
            std::string piece;
            if (c.contains("text") && c["text"].is_string())
                piece = c["text"].get<std::string>();
            else if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
                     c["delta"]["content"].is_string())
                piece = c["delta"]["content"].get<std::string>();
            if (c.contains("finish_reason") && c["finish_reason"].is_string()) finish = c["finish_reason"];
            // A token whose text is held back (an incomplete UTF-8 sequence) still has its logprob.
            std::vector<engine::GeneratedToken> relayed;
            if (req.logprobs > 0) relayed = relayed_logprobs(c);
            if (!piece.empty() || !relayed.empty()) {
                if (chunks++ == 0) {
                    first_token = Clock::now();
                    first_token_ms = ms_since(job->submitted);
                }
                text += piece;
                GenerationEvent ev;
                ev.text = piece;
                ev.tokens = std::move(relayed);
                if (req.on_event) req.on_event(ev);
                if (req.stop_when && req.stop_when(text)) {
                    stop_rule = true;
                    return false;
                }
            }
            if (auto cut = cut_short()) {
                stopped_early = cut;
                return false;
            }
            return true;
        };
        auto interrupted = [&]() { return cut_short().has_value(); };
        auto reply = co_await pool_.call(job->path, job->body, &on_event, interrupted);
        if (stop_rule)
            done.finish = FinishReason::stop;
        else if (stopped_early)
            done.finish = *stopped_early;
        else if (auto cut = cut_short())
            done.finish = *cut; // the watcher cut the connection
        else if (!reply) {
            done.finish = FinishReason::error;
            done.error = reply.error().message;
            done.error_code = reply.error().code;
        } else if (!reply->stream_ended && finish.empty()) {
            done.finish = FinishReason::error;
            done.error =
                "model '" + options_.id + "': the upstream closed the stream before the end of the answer";
            done.error_code = ErrorCode::bad_gateway;
        } else {
            done.finish = finish == "length" ? FinishReason::length : FinishReason::stop;
        }
        done.usage.completion_tokens = chunks;
        done.usage.prompt_tokens = static_cast<int>(job->request.prompt.size());
        if (usage.is_object()) {
            if (usage.contains("prompt_tokens") && usage["prompt_tokens"].is_number_integer())
                done.usage.prompt_tokens = usage["prompt_tokens"].get<int>();
            if (usage.contains("completion_tokens") && usage["completion_tokens"].is_number_integer())
                done.usage.completion_tokens = usage["completion_tokens"].get<int>();
            auto details = usage.find("prompt_tokens_details");
            if (details != usage.end() && details->is_object() && details->contains("cached_tokens") &&
                (*details)["cached_tokens"].is_number_integer())
                done.usage.cached_tokens = (*details)["cached_tokens"].get<int>();
        }
        done.timings.queue_ms = reply ? reply->connected_ms : 0;
        done.timings.first_token_ms = first_token_ms;
        if (chunks > 0)
            done.timings.generation_ms =
                std::chrono::duration<double, std::milli>(Clock::now() - first_token).count();
        generated_.fetch_add(done.usage.completion_tokens);
        prompt_tokens_.fetch_add(done.usage.prompt_tokens);
        in_flight_.fetch_sub(1);
        if (job->request.on_event) job->request.on_event(done);
    }

    UpstreamOptions options_;
    TextVocabulary vocab_;
    engine::ModelInfo info_;
    engine::FimTokens fim_;
    ReplicaPool pool_;
    std::atomic<bool> stopped_{false};
    std::atomic<int> in_flight_{0};
    std::atomic<int64_t> started_{0}, generated_{0}, prompt_tokens_{0};
};

} // namespace

Result<std::unique_ptr<Backend>> upstream_backend(const UpstreamOptions& options) {
    if (options.urls.empty())
        return make_error(ErrorCode::invalid_argument,
                          "model '" + options.id + "': an upstream needs at least one url");
    if (!options.fim.empty() && fim_texts(options.fim).prefix.empty())
        return make_error(
            ErrorCode::invalid_argument,
            "model '" + options.id + "': fim '" + options.fim +
                "' is not a known family (starcoder, qwen_coder, codegemma, deepseek_coder, codellama, "
                "codestral)");
    std::vector<Endpoint> endpoints;
    for (const auto& url : options.urls) {
        auto e = parse_endpoint(url);
        if (!e)
            return make_error(ErrorCode::invalid_argument,
                              "model '" + options.id + "': " + e.error().message);
        endpoints.push_back(*e);
    }
    return std::unique_ptr<Backend>(std::make_unique<UpstreamBackend>(options, std::move(endpoints)));
}

} // namespace codepilot::inference
