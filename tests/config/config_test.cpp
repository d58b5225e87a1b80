#include "config/config.h"

#include <gtest/gtest.h>

using namespace codepilot::config;

TEST(Config, DefaultsWhenEmpty) {
    auto c = parse_config("");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server.port, 8080);
    EXPECT_EQ(c->data_dir, "./data");
}

TEST(Config, ReadsSections) {
    auto c = parse_config("data_dir = '/var/lib/cp'\n[server]\nport = 9000\nhost = '0.0.0.0'\n[model]\npath "
                          "= 'm.gguf'\nparallel = 8\nctx = 16384\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->data_dir, "/var/lib/cp");
    EXPECT_EQ(c->server.port, 9000);
    EXPECT_EQ(c->server.host, "0.0.0.0");
    EXPECT_EQ(c->model.path, "m.gguf");
    EXPECT_EQ(c->model.parallel, 8);
}

TEST(Config, UnknownKeyIsNamed) {
    auto c = parse_config("[server]\nprot = 1\n", "codepilot.toml");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("unknown key 'server.prot'"), std::string::npos) << c.error().message;
    EXPECT_NE(c.error().message.find("codepilot.toml"), std::string::npos);
}

TEST(Config, UnknownSectionIsNamed) {
    auto c = parse_config("[sever]\nport = 1\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("unknown section [sever]"), std::string::npos) << c.error().message;
}

TEST(Config, WrongTypeAndRange) {
    auto t = parse_config("[server]\nport = 'eighty'\n");
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.error().message.find("'server.port' must be an integer"), std::string::npos)
        << t.error().message;
    auto r = parse_config("[server]\nport = 70000\n");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("between 0 and 65535"), std::string::npos);
}

TEST(Config, SyntaxErrorHasLocation) {
    auto c = parse_config("[server\nport = 1\n", "x.toml");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("x.toml:1:"), std::string::npos) << c.error().message;
}

TEST(Config, ContextTooSmallForParallel) {
    auto c = parse_config("[model]\nparallel = 64\nctx = 128\n");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find("model.ctx"), std::string::npos);
}

TEST(Config, LdapBindPasswordIsRefusedInFavourOfAFileOrVariable) {
    auto c = parse_config("[auth.ldap]\nbind_password = 'hunter2'\n", "codepilot.toml");
    ASSERT_FALSE(c.ok());
    const auto& msg = c.error().message;
    EXPECT_NE(msg.find("'auth.ldap.bind_password' is not accepted"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bind_password_file"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bind_password_env"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg; // the value is not echoed

    auto file = parse_config("[auth.ldap]\nbind_password_file = '/run/secrets/ldap'\n");
    ASSERT_TRUE(file.ok()) << file.error().message;
    EXPECT_EQ(file->auth.ldap.bind_password_file, "/run/secrets/ldap");
    auto env = parse_config("[auth.ldap]\nbind_password_env = 'LDAP_BIND_PASSWORD'\n");
    ASSERT_TRUE(env.ok()) << env.error().message;
    EXPECT_EQ(env->auth.ldap.bind_password_env, "LDAP_BIND_PASSWORD");
    auto both = parse_config("[auth.ldap]\nenabled = true\nurl = 'ldap://x'\nbase_dn = 'dc=x'\n"
                             "bind_password_file = '/f'\nbind_password_env = 'E'\n");
    ASSERT_FALSE(both.ok());
    EXPECT_NE(both.error().message.find("at most one of bind_password_file and bind_password_env"),
              std::string::npos)
        << both.error().message;
}

TEST(Config, BootstrapKeyLapsesAfterAWeekByDefault) {
    auto c = parse_config("");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->auth.bootstrap_key_ttl_s, 7 * 86400);
    auto day = parse_config("[auth]\nbootstrap_key_ttl_s = 86400\n");
    ASSERT_TRUE(day.ok()) << day.error().message;
    EXPECT_EQ(day->auth.bootstrap_key_ttl_s, 86400);
    EXPECT_FALSE(parse_config("[auth]\nbootstrap_key_ttl_s = 0\n").ok()); // no forever key
}

// The trust settings (issue 9): read, and refused out of range with the key named.
TEST(Config, TrustSettingsAreReadAndBounded) {
    auto c = parse_config(
        "[server]\nmax_connections_per_ip = 32\nheader_timeout_s = 3\nworker_threads = 4\nsign_in_threads = "
        "1\n"
        "[model]\nmax_generations = 4\n"
        "[auth]\nmax_body_bytes = 8192\nsign_in_free_failures = 3\nsign_in_lock_failures = 9\nsign_in_lock_s "
        "= 60\n"
        "[quota]\ndefault_key_concurrency = 2\n"
        "[audit]\nchain_key_file = '/etc/cp/chain.key'\nanchor_file = '/var/log/cp/anchors.jsonl'\n"
        "anchor_interval_s = 0\nanchor_syslog = true\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->server.max_connections_per_ip, 32);
    EXPECT_EQ(c->server.header_timeout_s, 3);
    EXPECT_EQ(c->server.worker_threads, 4);
    EXPECT_EQ(c->server.sign_in_threads, 1);
    EXPECT_EQ(c->model.max_generations, 4);
    EXPECT_EQ(c->auth.max_body_bytes, 8192);
    EXPECT_EQ(c->auth.sign_in_free_failures, 3);
    EXPECT_EQ(c->auth.sign_in_lock_failures, 9);
    EXPECT_EQ(c->auth.sign_in_lock_s, 60);
    EXPECT_EQ(c->quota.default_key_concurrency, 2);
    EXPECT_EQ(c->audit.chain_key_file, "/etc/cp/chain.key");
    EXPECT_EQ(c->audit.anchor_file, "/var/log/cp/anchors.jsonl");
    EXPECT_EQ(c->audit.anchor_interval_s, 0);
    EXPECT_TRUE(c->audit.anchor_syslog);
    for (const char* bad : {"[server]\nmax_connections_per_ip = 0\n", "[model]\nmax_generations = 0\n",
                            "[auth]\nmax_body_bytes = 10\n", "[audit]\nanchor_interval_s = -1\n"}) {
        auto r = parse_config(bad);
        ASSERT_FALSE(r.ok()) << bad;
        const std::string key = std::string(bad).substr(
            std::string(bad).find('\n') + 1, std::string(bad).find(' ') - std::string(bad).find('\n') - 1);
        EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
    }
}

TEST(Config, PromptPathSettingsAreReadAndBounded) {
    auto defaults = parse_config("");
    ASSERT_TRUE(defaults.ok());
    EXPECT_EQ(defaults->model.kv_shift_min_chunk, 64);
    EXPECT_TRUE(defaults->completion.stable_windows);
    auto c = parse_config("[model]\nkv_shift_min_chunk = 0\n[completion]\nstable_windows = false\n");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->model.kv_shift_min_chunk, 0);
    EXPECT_FALSE(c->completion.stable_windows);
    auto bad = parse_config("[model]\nkv_shift_min_chunk = -1\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("model.kv_shift_min_chunk"), std::string::npos) << bad.error().message;
}
