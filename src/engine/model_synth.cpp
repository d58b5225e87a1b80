#include "engine/model_synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ggml.h>
#include <gguf.h>
#include <memory>
#include <unistd.h>

#ifndef CODEPILOT_VOCAB_DIR
#define CODEPILOT_VOCAB_DIR ""
#endif

namespace codepilot::engine {
namespace {

namespace fs = std::filesystem;

struct GgufDeleter {
    void operator()(gguf_context* c) const { gguf_free(c); }
};
struct GgmlDeleter {
    void operator()(ggml_context* c) const { ggml_free(c); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufDeleter>;
using GgmlPtr = std::unique_ptr<ggml_context, GgmlDeleter>;

// Vocabulary variants: a vocabulary of the pinned tree plus a family's FIM / repo-level tokens
// (appended as control tokens, with their tokenizer.ggml.*_token_id keys), for families whose
// own vocabulary files are not in the tree.
struct ExtraToken {
    const char* text;
    const char* id_key;
};
struct VocabVariant {
    const char* name;
    const char* base;
    std::vector<ExtraToken> tokens;
};
const std::vector<VocabVariant>& vocab_variants() {
    static const std::vector<VocabVariant> variants = {
        {"qwen2-coder",
         "qwen2",
         {{"<|fim_prefix|>", "tokenizer.ggml.fim_pre_token_id"},
          {"<|fim_middle|>", "tokenizer.ggml.fim_mid_token_id"},
          {"<|fim_suffix|>", "tokenizer.ggml.fim_suf_token_id"},
          {"<|fim_pad|>", "tokenizer.ggml.fim_pad_token_id"},
          {"<|repo_name|>", "tokenizer.ggml.fim_rep_token_id"},
          {"<|file_sep|>", "tokenizer.ggml.fim_sep_token_id"}}},
        {"codellama",
         "llama-spm",
         {{"\xe2\x96\x81<PRE>", "tokenizer.ggml.fim_pre_token_id"},
          {"\xe2\x96\x81<SUF>", "tokenizer.ggml.fim_suf_token_id"},
          {"\xe2\x96\x81<MID>", "tokenizer.ggml.fim_mid_token_id"},
          {"\xe2\x96\x81<EOT>", "tokenizer.ggml.eot_token_id"}}},
        {"codegemma",
         "gemma-4",
         {{"<|fim_prefix|>", "tokenizer.ggml.fim_pre_token_id"},
          {"<|fim_middle|>", "tokenizer.ggml.fim_mid_token_id"},
          {"<|fim_suffix|>", "tokenizer.ggml.fim_suf_token_id"},
          {"<|file_separator|>", "tokenizer.ggml.fim_sep_token_id"}}},
    };
    return variants;
}
const VocabVariant* find_variant(const std::string& name) {
    for (const auto& v : vocab_variants())
        if (name == v.name) return &v;
    return nullptr;
}

// xorshift64*: fast, seedable noise; the distribution hardly matters for random weights.
struct Noise {
    uint64_t state;
    explicit Noise(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 1) {}
    float uniform(float scale) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        uint64_t r = state * 0x2545F4914F6CDD1Dull;
        return (static_cast<float>(r >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f) * scale;
    }
};

Status copy_tokenizer(gguf_context* dst, const gguf_context* vocab, const VocabVariant* variant,
                      int& n_vocab) {
    const std::vector<ExtraToken> none;
    const auto& extra = variant ? variant->tokens : none;
    int64_t tokens_key = gguf_find_key(vocab, "tokenizer.ggml.tokens");
    if (tokens_key < 0) return make_error(ErrorCode::invalid_argument, "the vocabulary file has no tokens");
    for (int64_t i = 0; i < gguf_get_n_kv(vocab); ++i) {
        std::string key = gguf_get_key(vocab, i);
        if (key.rfind("tokenizer.", 0) != 0) continue;
        gguf_type type = gguf_get_kv_type(vocab, i);
        switch (type) {
        case GGUF_TYPE_STRING:
            gguf_set_val_str(dst, key.c_str(), gguf_get_val_str(vocab, i));
            break;
        case GGUF_TYPE_UINT32:
            gguf_set_val_u32(dst, key.c_str(), gguf_get_val_u32(vocab, i));
            break;
        case GGUF_TYPE_INT32:
            gguf_set_val_i32(dst, key.c_str(), gguf_get_val_i32(vocab, i));
            break;
        case GGUF_TYPE_BOOL:
            gguf_set_val_bool(dst, key.c_str(), gguf_get_val_bool(vocab, i));
            break;
        case GGUF_TYPE_FLOAT32:
            gguf_set_val_f32(dst, key.c_str(), gguf_get_val_f32(vocab, i));
            break;
        case GGUF_TYPE_ARRAY: {
            gguf_type at = gguf_get_arr_type(vocab, i);
            size_t n = gguf_get_arr_n(vocab, i);
            if (at == GGUF_TYPE_STRING) {
                std::vector<std::string> items;
                items.reserve(n);
                for (size_t k = 0; k < n; ++k) items.emplace_back(gguf_get_arr_str(vocab, i, k));
                if (key == "tokenizer.ggml.tokens")
                    for (const auto& t : extra) items.emplace_back(t.text);
                std::vector<const char*> ptrs;
                for (const auto& s : items) ptrs.push_back(s.c_str());
                gguf_set_arr_str(dst, key.c_str(), ptrs.data(), ptrs.size());
                if (key == "tokenizer.ggml.tokens") n_vocab = static_cast<int>(items.size());
            } else if (at == GGUF_TYPE_INT32 || at == GGUF_TYPE_FLOAT32) {
                std::vector<int32_t> raw(n); // both are 4 bytes wide
                std::memcpy(raw.data(), gguf_get_arr_data(vocab, i), n * 4);
                if (key == "tokenizer.ggml.token_type")
                    for (size_t k = 0; k < extra.size(); ++k) raw.push_back(3); // control
                if (key == "tokenizer.ggml.scores")
                    for (size_t k = 0; k < extra.size(); ++k) raw.push_back(0);
                gguf_set_arr_data(dst, key.c_str(), at, raw.data(), raw.size());
            } else {
                return make_error(ErrorCode::unsupported, "unsupported array type in vocabulary key " + key);
            }
            break;
        }
        default:
            return make_error(ErrorCode::unsupported, "unsupported type in vocabulary key " + key);
        }
    }
    int first = n_vocab - static_cast<int>(extra.size());
    for (size_t k = 0; k < extra.size(); ++k)
        gguf_set_val_u32(dst, extra[k].id_key, static_cast<uint32_t>(first + static_cast<int>(k)));
    return Ok{};
}

struct TensorSpec {
    std::string name;
    int64_t ne0, ne1; // ne1 == 0: a 1-D norm weight (ones, f32)
    float scale;      // 2-D: uniform noise in [-scale, scale]
};

// Adds `specs` to `out` and writes the file (atomically: a temporary, then a rename).
Status write_gguf(const std::string& output, gguf_context* out, const std::vector<TensorSpec>& specs,
                  ggml_type wtype, uint32_t seed) {
    auto bad = [](std::string m) { return make_error(ErrorCode::invalid_argument, std::move(m)); };
    ggml_init_params gparams{ggml_tensor_overhead() * (specs.size() + 1), nullptr, true};
    GgmlPtr meta(ggml_init(gparams));
    std::vector<ggml_tensor*> tensors;
    for (const auto& s : specs) {
        ggml_tensor* t = s.ne1 == 0 ? ggml_new_tensor_1d(meta.get(), GGML_TYPE_F32, s.ne0)
                                    : ggml_new_tensor_2d(meta.get(), wtype, s.ne0, s.ne1);
        ggml_set_name(t, s.name.c_str());
        gguf_add_tensor(out, t);
        tensors.push_back(t);
    }

    fs::path out_path(output);
    if (out_path.has_parent_path()) fs::create_directories(out_path.parent_path());
    std::string tmp = output + ".tmp." + std::to_string(::getpid());
    if (!gguf_write_to_file(out, tmp.c_str(), true)) return bad("cannot write " + tmp);
    FILE* f = std::fopen(tmp.c_str(), "ab");
    if (f == nullptr) return bad("cannot append to " + tmp);
    const size_t align = gguf_get_alignment(out);
    Noise noise(seed);
    std::vector<float> values;
    std::vector<char> bytes;
    bool ok = true;
    for (size_t i = 0; i < specs.size() && ok; ++i) {
        const auto& s = specs[i];
        int64_t rows = s.ne1 == 0 ? 1 : s.ne1;
        values.resize(static_cast<size_t>(s.ne0 * rows));
        for (auto& v : values) v = s.ne1 == 0 ? 1.0f : noise.uniform(s.scale);
        size_t nbytes = ggml_nbytes(tensors[i]);
        bytes.assign(GGML_PAD(nbytes, align), 0);
        if (s.ne1 == 0 || wtype == GGML_TYPE_F32)
            std::memcpy(bytes.data(), values.data(), nbytes);
        else if (wtype == GGML_TYPE_F16)
            ggml_fp32_to_fp16_row(values.data(), reinterpret_cast<ggml_fp16_t*>(bytes.data()),
                                  static_cast<int64_t>(values.size()));
        else
            ggml_quantize_chunk(wtype, values.data(), bytes.data(), 0, rows, s.ne0, nullptr);
        ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    }
    ok = std::fclose(f) == 0 && ok;
    if (!ok) return bad("write failed for " + tmp);
    fs::rename(tmp, output);
    return Ok{};
}

} // namespace

std::string default_vocab_dir() {
    return CODEPILOT_VOCAB_DIR;
}

std::vector<std::string> available_vocabs(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        std::string name = entry.path().filename().string();
        if (name.rfind("ggml-vocab-", 0) == 0 && entry.path().extension() == ".gguf")
            names.push_back(name.substr(11, name.size() - 11 - 5));
    }
    for (const auto& v : vocab_variants()) names.emplace_back(v.name);
    std::sort(names.begin(), names.end());
    return names;
}

Status synth_model(const SynthOptions& o) {
    auto bad = [](std::string m) { return make_error(ErrorCode::invalid_argument, std::move(m)); };
    if (o.output.empty()) return bad("no output path");
    if (o.layers < 1 || o.embd < 32 || o.heads < 1 || o.kv_heads < 1 || o.ff < 32)
        return bad("layers >= 1, embd >= 32, heads >= 1, kv-heads >= 1, ff >= 32");
    if (o.embd % o.heads != 0) return bad("embd must be a multiple of heads");
    if (o.heads % o.kv_heads != 0) return bad("heads must be a multiple of kv-heads");
    ggml_type wtype;
    if (o.type == "f32")
        wtype = GGML_TYPE_F32;
    else if (o.type == "f16")
        wtype = GGML_TYPE_F16;
    else if (o.type == "q8_0")
        wtype = GGML_TYPE_Q8_0;
    else
        return bad("type must be f32, f16 or q8_0");
    const int head_dim = o.embd / o.heads;
    const int kv_dim = head_dim * o.kv_heads;
    if (wtype == GGML_TYPE_Q8_0 && (o.embd % 32 || o.ff % 32 || kv_dim % 32))
        return bad("q8_0 needs embd, ff and kv-heads*head_dim to be multiples of 32");

    const VocabVariant* variant = o.vocab_file.empty() ? find_variant(o.vocab) : nullptr;
    std::string vocab_path = o.vocab_file;
    if (vocab_path.empty()) {
        std::string dir = o.vocab_dir.empty() ? default_vocab_dir() : o.vocab_dir;
        vocab_path = dir + "/ggml-vocab-" + (variant ? std::string(variant->base) : o.vocab) + ".gguf";
    }
    if (!fs::exists(vocab_path)) return bad("vocabulary file not found: " + vocab_path);
    gguf_init_params vparams{true, nullptr};
    GgufPtr vocab(gguf_init_from_file(vocab_path.c_str(), vparams));
    if (!vocab) return bad("cannot read vocabulary file " + vocab_path);

    GgufPtr out(gguf_init_empty());
    gguf_set_val_str(out.get(), "general.architecture", "llama");
    gguf_set_val_str(out.get(), "general.name", ("codepilot-synth-" + o.vocab).c_str());
    gguf_set_val_u32(out.get(), "general.file_type",
                     wtype == GGML_TYPE_F32   ? 0
                     : wtype == GGML_TYPE_F16 ? 1
                                              : 7);
    int n_vocab = 0;
    if (auto st = copy_tokenizer(out.get(), vocab.get(), variant, n_vocab); !st) return st;
    gguf_set_val_u32(out.get(), "llama.context_length", static_cast<uint32_t>(o.ctx_train));
    gguf_set_val_u32(out.get(), "llama.embedding_length", static_cast<uint32_t>(o.embd));
    gguf_set_val_u32(out.get(), "llama.block_count", static_cast<uint32_t>(o.layers));
    gguf_set_val_u32(out.get(), "llama.feed_forward_length", static_cast<uint32_t>(o.ff));
    gguf_set_val_u32(out.get(), "llama.attention.head_count", static_cast<uint32_t>(o.heads));
    gguf_set_val_u32(out.get(), "llama.attention.head_count_kv", static_cast<uint32_t>(o.kv_heads));
    gguf_set_val_u32(out.get(), "llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
    gguf_set_val_f32(out.get(), "llama.rope.freq_base", 10000.0f);
    gguf_set_val_f32(out.get(), "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_set_val_u32(out.get(), "llama.vocab_size", static_cast<uint32_t>(n_vocab));

    std::vector<TensorSpec> specs;
    // Embedding scale chosen so that logits are spread (a sharp distribution keeps greedy decoding stable).
    specs.push_back(
        {"token_embd.weight", o.embd, n_vocab, 3.0f / std::sqrt(static_cast<float>(o.embd)) * 1.7f});
    for (int l = 0; l < o.layers; ++l) {
        std::string p = "blk." + std::to_string(l) + ".";
        float in_e = 1.7f / std::sqrt(static_cast<float>(o.embd));
        specs.push_back({p + "attn_norm.weight", o.embd, 0, 0});
        specs.push_back({p + "attn_q.weight", o.embd, o.embd, in_e});
        specs.push_back({p + "attn_k.weight", o.embd, kv_dim, in_e});
        specs.push_back({p + "attn_v.weight", o.embd, kv_dim, in_e});
        specs.push_back({p + "attn_output.weight", o.embd, o.embd, in_e});
        specs.push_back({p + "ffn_norm.weight", o.embd, 0, 0});
        specs.push_back({p + "ffn_gate.weight", o.embd, o.ff, in_e});
        specs.push_back({p + "ffn_up.weight", o.embd, o.ff, in_e});
        specs.push_back({p + "ffn_down.weight", o.ff, o.embd, 1.7f / std::sqrt(static_cast<float>(o.ff))});
    }
    specs.push_back({"output_norm.weight", o.embd, 0, 0});
    if (!o.tie_embeddings)
        specs.push_back(
            {"output.weight", o.embd, n_vocab, 3.0f / std::sqrt(static_cast<float>(o.embd)) * 1.7f});

    return write_gguf(o.output, out.get(), specs, wtype, o.seed);
}

Status synth_lora(const LoraSynthOptions& o) {
    auto bad = [](std::string m) { return make_error(ErrorCode::invalid_argument, std::move(m)); };
    if (o.output.empty()) return bad("no output path");
    if (o.rank < 1 || o.rank > 1024) return bad("rank must be between 1 and 1024");
    ggml_context* shapes = nullptr; // the tensor infos (no data)
    gguf_init_params params{true, &shapes};
    GgufPtr base(gguf_init_from_file(o.base.c_str(), params));
    if (!base || shapes == nullptr) return bad("cannot read base model " + o.base + " (not a GGUF file?)");
    GgmlPtr shapes_owned(shapes);
    int64_t arch_key = gguf_find_key(base.get(), "general.architecture");
    if (arch_key < 0) return bad("the base model " + o.base + " names no general.architecture");
    std::string arch = gguf_get_val_str(base.get(), arch_key);

    GgufPtr out(gguf_init_empty());
    gguf_set_val_str(out.get(), "general.architecture", arch.c_str());
    gguf_set_val_str(out.get(), "general.type", "adapter");
    gguf_set_val_str(out.get(), "general.name", "codepilot-synth-lora");
    gguf_set_val_str(out.get(), "adapter.type", "lora");
    gguf_set_val_f32(out.get(), "adapter.lora.alpha",
                     static_cast<float>(o.rank)); // llama.cpp scales by alpha/rank

    // A low-rank update W + B·A for every attention and feed-forward matrix of each block:
    // A is [in, rank], B is [rank, out] in ggml's order (llama.cpp checks these against the base).
    static const char* kTargets[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                     "ffn_gate", "ffn_up", "ffn_down"};
    std::vector<TensorSpec> specs;
    for (int64_t i = 0; i < gguf_get_n_tensors(base.get()); ++i) {
        std::string name = gguf_get_tensor_name(base.get(), i);
        if (name.rfind("blk.", 0) != 0) continue;
        bool target = false;
        for (const char* t : kTargets)
            target = target || name.find(std::string(".") + t + ".weight") != std::string::npos;
        if (!target) continue;
        ggml_tensor* t = ggml_get_tensor(shapes, name.c_str());
        if (t == nullptr || ggml_n_dims(t) != 2) continue;
        const int64_t in = t->ne[0], outs = t->ne[1];
        specs.push_back(
            {name + ".lora_a", in, o.rank, o.strength * 1.7f / std::sqrt(static_cast<float>(in))});
        specs.push_back(
            {name + ".lora_b", o.rank, outs, o.strength * 1.7f / std::sqrt(static_cast<float>(o.rank))});
    }
    if (specs.empty())
        return bad("the base model " + o.base + " has no attention or feed-forward matrices to adapt");
    return write_gguf(o.output, out.get(), specs, GGML_TYPE_F32, o.seed);
}

} // namespace codepilot::engine
