// The synthesized models carry the pinned tree's real tokenizers: tokenization must match
// llama.cpp's own reference outputs (models/ggml-vocab-*.gguf.inp/.out).
#include "engine/engine.h"
#include "engine/model_synth.h"
#include "support/test_env.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>
#include <sstream>
#include <unistd.h>

using namespace codepilot;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

TEST(ModelSynth, TokenizesExactlyLikeTheReferenceVocabulary) {
    auto engine = testenv::load_engine(testenv::tiny_model());
    std::string dir = engine::default_vocab_dir();
    std::string inp = read_file(dir + "/ggml-vocab-starcoder.gguf.inp");
    std::string out = read_file(dir + "/ggml-vocab-starcoder.gguf.out");
    ASSERT_FALSE(inp.empty());
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    for (size_t pos = 0;;) {
        size_t next = inp.find(sep, pos);
        if (next == std::string::npos) break;
        inputs.push_back(inp.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::istringstream lines(out);
    std::string line;
    size_t checked = 0;
    for (const auto& text : inputs) {
        ASSERT_TRUE(std::getline(lines, line));
        std::vector<engine::Token> expected;
        std::istringstream ids(line);
        for (engine::Token t; ids >> t;) expected.push_back(t);
        EXPECT_EQ(engine->tokenize(text, false, false), expected) << "input: " << text;
        ++checked;
    }
    EXPECT_GT(checked, 20u);
}

TEST(ModelSynth, StarcoderHasFimAndRepoTokens) {
    auto engine = testenv::load_engine(testenv::tiny_model());
    const auto& fim = engine->fim_tokens();
    EXPECT_EQ(engine->token_text(fim.prefix), "<fim_prefix>");
    EXPECT_EQ(engine->token_text(fim.suffix), "<fim_suffix>");
    EXPECT_EQ(engine->token_text(fim.middle), "<fim_middle>");
    EXPECT_EQ(engine->token_text(fim.repo_name), "<repo_name>");
    EXPECT_EQ(engine->token_text(fim.file_sep), "<file_sep>");
    EXPECT_TRUE(engine->info().has_fim);
    EXPECT_EQ(engine->info().architecture, "llama");
}

TEST(ModelSynth, QwenCoderVocabularyGetsQwen25CoderTokens) {
    auto engine = testenv::load_engine(testenv::qwen_coder_model());
    const auto& fim = engine->fim_tokens();
    EXPECT_EQ(engine->token_text(fim.prefix), "<|fim_prefix|>");
    EXPECT_EQ(engine->token_text(fim.suffix), "<|fim_suffix|>");
    EXPECT_EQ(engine->token_text(fim.middle), "<|fim_middle|>");
    EXPECT_EQ(engine->token_text(fim.repo_name), "<|repo_name|>");
    EXPECT_EQ(engine->token_text(fim.file_sep), "<|file_sep|>");
    // Special tokens in text are parsed as one token each, ordinary text is unaffected.
    auto tokens = engine->tokenize("<|fim_prefix|>def", false, true);
    ASSERT_GE(tokens.size(), 2u);
    EXPECT_EQ(tokens[0], fim.prefix);
    EXPECT_EQ(engine->detokenize({tokens.begin() + 1, tokens.end()}), "def");
}

TEST(ModelSynth, RejectsBadShapesAndUnknownVocabularies) {
    engine::SynthOptions o;
    o.output = "/tmp/should-not-exist.gguf";
    o.embd = 60;
    o.heads = 8;
    EXPECT_FALSE(engine::synth_model(o).ok());
    o.embd = 64;
    o.vocab = "no-such-vocab";
    auto st = engine::synth_model(o);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find("not found"), std::string::npos);
}

TEST(ModelSynth, LoadingANonGgufFileFailsCleanly) {
    std::string path = "/tmp/codepilot-not-a-model.gguf";
    std::ofstream(path) << "this is not a model";
    engine::EngineOptions o;
    o.model_path = path;
    auto e = engine::Engine::load(o);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.error().message.find("cannot load model"), std::string::npos);
}

TEST(ModelSynth, TheCliWritesALoraAdapterShapedAfterItsBase) {
    const std::string out = "/tmp/codepilot-synth-lora-" + std::to_string(::getpid()) + ".gguf";
    const std::string cmd = std::string(CODEPILOT_BINARY) + " model synth " + out + " --lora-for " +
                            testenv::tiny_model() + " --lora-rank 2 >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    ggml_context* shapes = nullptr;
    gguf_init_params params{true, &shapes};
    gguf_context* g = gguf_init_from_file(out.c_str(), params);
    ASSERT_NE(g, nullptr);
    EXPECT_STREQ(gguf_get_val_str(g, gguf_find_key(g, "general.type")), "adapter");
    EXPECT_STREQ(gguf_get_val_str(g, gguf_find_key(g, "adapter.type")), "lora");
    EXPECT_EQ(gguf_get_n_tensors(g), 2 * 7 * 2); // A and B for 7 matrices in each of 2 blocks
    ggml_tensor* a = ggml_get_tensor(shapes, "blk.1.ffn_down.weight.lora_a");
    ggml_tensor* b = ggml_get_tensor(shapes, "blk.1.ffn_down.weight.lora_b");
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(a->ne[0], 128); // the base's ffn_down is [ff = 128, embd = 64]
    EXPECT_EQ(a->ne[1], 2);
    EXPECT_EQ(b->ne[0], 2);
    EXPECT_EQ(b->ne[1], 64);
    gguf_free(g);
    ggml_free(shapes);
    std::remove(out.c_str());
    // A base that is not there: an error, no file.
    EXPECT_NE(std::system((std::string(CODEPILOT_BINARY) + " model synth " + out +
                           " --lora-for /nonexistent.gguf >/dev/null 2>&1")
                              .c_str()),
              0);
}
