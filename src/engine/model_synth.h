// Synthesizing random-weight llama-architecture GGUF models with a real tokenizer copied from
// a vocabulary file of the pinned llama.cpp tree (models/ggml-vocab-*.gguf). Tests and
// benchmarks use them: tokenization and FIM tokens are real, the weights are noise.
#pragma once

#include "core/result.h"

#include <cstdint>
#include <string>
#include <vector>

namespace codepilot::engine {

struct SynthOptions {
    std::string output;
    // A name under vocab_dir, or a variant with a family's FIM tokens added: qwen2-coder
    // (Qwen2.5-Coder), codellama (llama-spm + ▁<PRE>/▁<SUF>/▁<MID>), codegemma (gemma-4 + FIM tokens).
    std::string vocab = "starcoder";
    std::string vocab_file; // explicit vocabulary GGUF; overrides `vocab`
    std::string vocab_dir;  // default: the pinned tree's models/ folder
    int layers = 2;
    int embd = 64;
    int heads = 4;
    int kv_heads = 2;
    int ff = 128;
    int ctx_train = 8192;
    std::string type = "f16"; // f32 | f16 | q8_0 for the 2-D weights
    uint32_t seed = 42;
    bool tie_embeddings = true; // no separate output matrix (smaller files)
};

// The folder with the pinned tree's vocabulary files, as configured at build time.
std::string default_vocab_dir();
// Vocabulary names available in `dir` (plus the variants).
std::vector<std::string> available_vocabs(const std::string& dir);

Status synth_model(const SynthOptions& options);

// A random LoRA adapter (GGUF, general.type = adapter) for a base model: low-rank updates of
// every attention and feed-forward matrix, shaped after the base file's tensors, so that
// llama.cpp accepts it for that base and refuses it for one of another shape.
struct LoraSynthOptions {
    std::string output;
    std::string base; // the base model's GGUF
    int rank = 4;
    float strength = 1.0f; // 1: updates about as large as the synthesized weights
    uint32_t seed = 7;
};
Status synth_lora(const LoraSynthOptions& options);

} // namespace codepilot::engine
