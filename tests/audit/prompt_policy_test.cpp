// Stored prompts: AES-256-GCM sealing with key rotation, and what a record keeps per mode;
// chain keys: where they come from, and the one generated when none is configured.
#include "audit/audit.h"
#include "core/base64.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

namespace codepilot::audit {
namespace {

std::string key_line(const std::string& id, char fill) {
    return id + ":" + base64url_encode(std::string(32, fill));
}

TEST(PromptKeys, ParseRotateAndRefuseBadKeys) {
    auto keys = parse_prompt_keys(key_line("k2", 'b') + "\n# old\n" + key_line("k1", 'a') + "\n");
    ASSERT_TRUE(keys) << keys.error().message;
    EXPECT_EQ(keys->current, "k2");
    EXPECT_EQ(keys->keys.size(), 2u);
    EXPECT_TRUE(parse_prompt_keys(key_line("e", 'x') + ";" + key_line("f", 'y'))); // the environment's form
    EXPECT_FALSE(parse_prompt_keys("k1:" + base64url_encode("short")));
    EXPECT_FALSE(parse_prompt_keys(key_line("k1", 'a') + "\n" + key_line("k1", 'b')));
    EXPECT_FALSE(parse_prompt_keys(""));
    EXPECT_FALSE(load_prompt_keys("/nonexistent/keys", nullptr));
}

TEST(PromptKeys, SealOpenRotationAndTampering) {
    auto old_keys = *parse_prompt_keys(key_line("k1", 'a'));
    std::string sealed = seal(old_keys, "def secret_sauce(): ...");
    EXPECT_EQ(sealed.rfind("aes256gcm:k1:", 0), 0u);
    EXPECT_EQ(sealed.find("secret_sauce"), std::string::npos);
    EXPECT_NE(seal(old_keys, "same"), seal(old_keys, "same")); // a fresh nonce each time
    auto rotated = *parse_prompt_keys(key_line("k2", 'b') + "\n" + key_line("k1", 'a'));
    EXPECT_EQ(*open_sealed(rotated, sealed), "def secret_sauce(): ..."); // old records stay readable
    EXPECT_EQ(seal(rotated, "x").rfind("aes256gcm:k2:", 0), 0u);         // new ones use the new key
    auto only_new = *parse_prompt_keys(key_line("k2", 'b'));
    EXPECT_FALSE(open_sealed(only_new, sealed));
    std::string tampered = sealed;
    tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
    auto r = open_sealed(old_keys, tampered);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("does not authenticate"), std::string::npos);
}

TEST(PromptPolicyBody, NoneRedactedAndEncrypted) {
    Record r;
    r.kind = "call";
    r.prompt = R"j({"prompt":"db = connect('postgresql://app:hunter2pass@db/x')"})j";
    r.completion = "return db";
    PromptPolicy none;
    EXPECT_EQ(canonical_body(r, none).find("hunter2"), std::string::npos);
    EXPECT_EQ(canonical_body(r, none).find("\"prompt\""), std::string::npos);

    PromptPolicy redacted;
    redacted.storage = PromptStorage::redacted;
    auto body = nlohmann::json::parse(canonical_body(r, redacted));
    EXPECT_EQ(body["prompt"]["secrets_redacted"], 1);
    EXPECT_NE(body["prompt"]["text"].get<std::string>().find("<SECRET:database_url_password>"), std::string::npos);
    EXPECT_EQ(body["completion"]["text"], "return db");

    PromptPolicy encrypted;
    encrypted.storage = PromptStorage::encrypted;
    encrypted.keys = *parse_prompt_keys(key_line("k1", 'a'));
    encrypted.max_bytes = 16;
    auto sealed = nlohmann::json::parse(canonical_body(r, encrypted));
    EXPECT_EQ(sealed.dump().find("hunter2"), std::string::npos);
    EXPECT_EQ(sealed["prompt"]["truncated_from_bytes"], r.prompt.size());
    EXPECT_EQ(*open_sealed(encrypted.keys, sealed["prompt"]["sealed"].get<std::string>()),
              r.prompt.substr(0, 16));
}

class ChainKeys : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("cp-chain-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
    const char* env_ = "CODEPILOT_TEST_CHAIN_KEYS"; // not the real variable: the test's own environment
};

TEST_F(ChainKeys, GeneratedOnceInTheDataDirReadableOnlyByItsOwner) {
    auto none = load_chain_keys("", dir_.string(), false, env_);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->keys.empty()); // verify without keys: it names the key each row needs
    EXPECT_FALSE(std::filesystem::exists(dir_ / kChainKeyFileName));

    auto made = load_chain_keys("", dir_.string(), true, env_);
    ASSERT_TRUE(made) << made.error().message;
    EXPECT_EQ(made->current.rfind("auto-", 0), 0u);
    ASSERT_EQ(made->keys.size(), 1u);
    EXPECT_EQ(made->keys.at(made->current).size(), 32u);
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / kChainKeyFileName).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    auto again = load_chain_keys("", dir_.string(), true, env_);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->current, made->current);
    EXPECT_EQ(again->keys, made->keys);
    EXPECT_EQ(current_chain_key(*again).secret, made->keys.at(made->current));
}

TEST_F(ChainKeys, AConfiguredFileThenTheEnvironmentComeBeforeTheDataDir) {
    std::filesystem::create_directories(dir_);
    const auto file = dir_ / "chain.keys";
    std::ofstream(file) << key_line("k2", 'b') << "\n" << key_line("k1", 'a') << "\n";
    ::setenv(env_, key_line("env1", 'e').c_str(), 1);
    auto from_file = load_chain_keys(file.string(), dir_.string(), true, env_);
    ASSERT_TRUE(from_file) << from_file.error().message;
    EXPECT_EQ(from_file->current, "k2");
    EXPECT_EQ(from_file->keys.size(), 2u);
    auto from_env = load_chain_keys("", dir_.string(), true, env_);
    ASSERT_TRUE(from_env);
    EXPECT_EQ(from_env->current, "env1");
    ::unsetenv(env_);
    EXPECT_FALSE(std::filesystem::exists(dir_ / kChainKeyFileName)); // nothing generated while configured

    std::ofstream(file) << "k1:tooshort\n";
    auto bad = load_chain_keys(file.string(), dir_.string(), true, env_);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("not 32 bytes"), std::string::npos);
    EXPECT_FALSE(load_chain_keys((dir_ / "missing").string(), dir_.string(), true, env_));
}

} // namespace
} // namespace codepilot::audit
