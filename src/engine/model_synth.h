// Synthesizing random-weight llama-architecture GGUF models with a real tokenizer copied from
// a vocabulary file of the pinned llama.cpp tree (models/ggml-vocab-*.gguf). Tests and
// benchmarks use them: tokenization and FIM tokens are real, the weights are noise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace codepilot::engine {

struct SynthOptions {
    std::string output;
    // A name under vocab_dir, or a variant with a family's FIM tokens added: qwen2-coder
    // (Qwen2.5-Coder), codellama (llama-spm + ▁<PRE>/▁<SUF>/▁<MID>), codegemma (gemma-4 + FIM tokens).
    std::string vocab = "starcoder";
    std::string vocab_file;           // explicit vocabulary GGUF; overrides `vocab`
    std::string vocab_dir;            // default: the pinned tree's models/ folder
    int layers = 2;
    int embd = 64;
    int heads = 4;
    int kv_heads = 2;
    int ff = 128;
    int ctx_train = 8192;
    std::string type = "f16";         // f32 | f16 | q8_0 for the 2-D weights
    uint32_t seed = 42;
    bool tie_embeddings = true;       // no separate output matrix (smaller files)
};

// The folder with the pinned tree's vocabulary files, as configured at build time.
std::string default_vocab_dir();
// Vocabulary names available in `dir` (plus the variants).
std::vector<std::string> available_vocabs(const std::string& dir);

Status synth_model(const SynthOptions& options);

}  // namespace codepilot::engine
