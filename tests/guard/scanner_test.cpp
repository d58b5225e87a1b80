// The guard's rule engine and its shipped rules: every rule finds each of its true-positive
// samples (tests/guard/samples.toml) at exactly the secret's bytes and no rule fires on any
// false-positive sample; custom rules that cannot be trusted are refused with their name; a
// 10 MB text of near misses, invalid UTF-8 and overlapping rules come out right; and
// `codepilot guard scan` reports files, lines and rules, never values, with exit status 1.
#include "guard/guard.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <set>
#include <sys/wait.h>
#include <toml++/toml.h>
#include <unistd.h>

using namespace codepilot;

namespace {

std::string run(const std::string& command, int& code) {
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int status = ::pclose(p);
    code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

std::shared_ptr<const guard::RuleSet> custom(const std::string& toml) {
    auto r = guard::RuleSet::parse(toml, "custom.toml");
    if (!r) throw std::runtime_error(r.error().message);
    return *r;
}

} // namespace

TEST(GuardRules, EveryRuleFindsItsSamplesAndNoneFiresOnTheNearMisses) {
    const auto rules = guard::RuleSet::builtin();
    ASSERT_GE(rules->size(), 80u);
    const auto samples = toml::parse_file(std::string(CODEPILOT_SOURCE_DIR) + "/tests/guard/samples.toml");
    const auto* list = samples["sample"].as_array();
    ASSERT_NE(list, nullptr);
    std::set<std::string> covered;
    int positives = 0, negatives = 0;
    guard::ScanOptions all;
    all.pii = true;
    for (const auto& node : *list) {
        const auto& s = *node.as_table();
        const std::string rule = s["rule"].value_or(std::string());
        const auto ids = rules->ids();
        ASSERT_NE(std::find(ids.begin(), ids.end(), rule), ids.end())
            << "samples name no rule '" << rule << "'";
        int rule_positives = 0, rule_negatives = 0;
        for (const auto& p : *s["positive"].as_array()) {
            const auto& t = *p.as_table();
            const std::string text = t["text"].value_or(std::string());
            const std::string secret = t["secret"].value_or(std::string());
            const size_t at = text.find(secret);
            ASSERT_NE(at, std::string::npos) << rule << ": the secret is not in its text";
            bool found = false;
            for (const auto& f : rules->scan(text, all))
                found = found || (f.rule == rule && f.begin == at && f.end == at + secret.size());
            EXPECT_TRUE(found) << rule << " missed " << text;
            ++rule_positives;
        }
        for (const auto& n : *s["negative"].as_array()) {
            const std::string text = n.value_or(std::string());
            for (const auto& f : rules->scan(text, all))
                ADD_FAILURE() << rule << " near miss '" << text << "' fired " << f.rule << " on '"
                              << text.substr(f.begin, f.end - f.begin) << "'";
            ++rule_negatives;
        }
        EXPECT_GE(rule_positives, 3) << rule;
        EXPECT_GE(rule_negatives, 3) << rule;
        positives += rule_positives;
        negatives += rule_negatives;
        covered.insert(rule);
    }
    EXPECT_GE(covered.size(), 40u);
    std::cout << rules->size() << " rules, " << covered.size() << " with samples: " << positives
              << " true positives, " << negatives << " near misses\n";
}

TEST(GuardRules, PersonalDataRulesAreOffUnlessAskedForAndChecksumsDecide) {
    const auto rules = guard::RuleSet::builtin();
    const std::string text = "mail jane.doe@northwind-traders.com card 4275 5828 2357 4162";
    EXPECT_TRUE(rules->scan(text).empty());
    guard::ScanOptions pii;
    pii.pii = true;
    EXPECT_EQ(rules->scan(text, pii).size(), 2u);
    EXPECT_TRUE(guard::luhn_valid("4111111111111111"));
    EXPECT_FALSE(guard::luhn_valid("4111111111111112"));
    EXPECT_TRUE(guard::iban_valid("GB82 WEST 1234 5698 7654 32"));
    EXPECT_FALSE(guard::iban_valid("GB82 WEST 1234 5698 7654 33"));
    EXPECT_NEAR(guard::shannon_entropy("abab"), 1.0, 1e-9);
    EXPECT_EQ(guard::shannon_entropy("aaaa"), 0.0);
}

TEST(GuardRules, RulesThatCannotBeTrustedAreRefusedWithTheirName) {
    auto refused = [](const std::string& toml, const std::string& why) {
        auto r = guard::RuleSet::parse(toml, "custom.toml");
        ASSERT_FALSE(r) << toml;
        EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
    };
    refused("[[rule]]\nid = \"backref\"\nregex = '(a)\\1'\n", "rule 'backref': the regex does not compile");
    refused("[[rule]]\nid = \"look\"\nregex = 'x(?=y)'\n", "rule 'look': the regex does not compile");
    refused("[[rule]]\nid = \"empty\"\nregex = 'a*'\n", "rule 'empty': the regex matches the empty string");
    refused("[[rule]]\nid = \"g\"\nregex = 'ab'\nsecret_group = 2\n", "secret_group 2 is not a group");
    refused("[[rule]]\nid = \"a\"\nregex = 'x'\n[[rule]]\nid = \"a\"\nregex = 'y'\n", "the id is used twice");
    refused("[[rule]]\nid = \"k\"\nregex = 'x'\ncolour = 1\n", "unknown key 'colour'");
    refused("[[rule]]\nregex = 'x'\n", "'id' is required");
    refused("[[rule]]\nid = \"v\"\nregex = 'x'\nvalidate = \"crc\"\n", "validate must be luhn or iban");
    refused("[rules]\n", "unknown section 'rules'");
    // Catastrophic backtracking elsewhere is linear here: RE2 has no backtracking.
    auto nested = custom("[[rule]]\nid = \"nested\"\nregex = '(a+)+b'\n");
    EXPECT_TRUE(nested->scan(std::string(200000, 'a') + "!").empty());
    EXPECT_EQ(nested->scan(std::string(200000, 'a') + "b").size(), 1u);
}

// A tenant's own rules extend the server's: the server's compiled rules are shared, the new
// ones are found as well, an allowlist-only extension silences a value, and a server rule's id
// cannot be taken over.
TEST(GuardRules, ExtendingAddsRulesAndAllowlistsOverTheServersRules) {
    const auto base = guard::RuleSet::builtin();
    const std::string text = "a = 'AKIAQYLPMN5HHHFPZAM2'\nb = 'acme_0123456789abcdef'\n";
    auto extended = guard::RuleSet::extend(
        base, "[[rule]]\nid = 'acme_token'\nregex = 'acme_[0-9a-f]{16}'\nkeywords = ['acme_']\n", "tenant");
    ASSERT_TRUE(extended) << extended.error().message;
    EXPECT_EQ((*extended)->size(), base->size() + 1);
    auto hits = (*extended)->scan(text);
    ASSERT_EQ(hits.size(), 2u);
    EXPECT_EQ(hits[0].rule, "aws_access_key_id");
    EXPECT_EQ(hits[1].rule, "acme_token");
    EXPECT_EQ(hits[1].line, 2);
    EXPECT_EQ(base->scan(text).size(), 1u) << "the base set is unchanged";

    auto allowed =
        guard::RuleSet::extend(base, "[allowlist]\nvalues = ['^AKIAQYLPMN5HHHFPZAM2$']\n", "tenant");
    ASSERT_TRUE(allowed) << allowed.error().message;
    EXPECT_TRUE((*allowed)->scan(text).empty());

    auto taken =
        guard::RuleSet::extend(base, "[[rule]]\nid = 'jwt'\nregex = 'x[0-9]+'\nkeywords = ['x']\n", "tenant");
    ASSERT_FALSE(taken);
    EXPECT_NE(taken.error().message.find("rule 'jwt': the id is one of the server's rules"),
              std::string::npos)
        << taken.error().message;
    EXPECT_FALSE(guard::RuleSet::parse("[allowlist]\nvalues = ['x']\n", "alone")) << "a set needs rules";
}

TEST(GuardRules, OverlapsKeepOneFindingAndInvalidUtf8HidesNothing) {
    auto rules = custom("[[rule]]\nid = \"long\"\nregex = 'token_[a-z0-9]{20}'\nkeywords = [\"token_\"]\n"
                        "[[rule]]\nid = \"short\"\nregex = '_([a-z0-9]{8})'\nsecret_group = 1\n");
    auto found = rules->scan("x token_abcdefgh12345678abcd y");
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].rule, "long");
    const auto builtin = guard::RuleSet::builtin();
    const std::string key = "AKIAQYLPMN5HHHFPZAM2";
    const std::string text = "\xff\xfe\xc3 aws_access_key_id = " + key + " \xe2\x82";
    auto hits = builtin->scan(text);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(text.substr(hits[0].begin, hits[0].end - hits[0].begin), key);
}

TEST(GuardRules, TenMegabytesOfNearMissesScanInOnePassWithTheRealSecretsFound) {
    const auto rules = guard::RuleSet::builtin();
    std::string text;
    const std::string near = "AKIA1234 ghp_short password = os.environ[\"DB\"] sk_live_ eyJhbGciOi xoxb- ";
    while (text.size() < (10u << 20)) text += near + "\n";
    const std::string key = "AKIAQYLPMN5HHHFPZAM2";
    text.insert(text.size() / 2, " " + key + " ");
    auto hits = rules->scan(text);
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(text.substr(hits[0].begin, hits[0].end - hits[0].begin), key);
    EXPECT_GT(hits[0].line, 1000);
}

TEST(GuardScan, TheCliNamesFileLineAndRuleNeverTheValueAndExitsOneOnFindings) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("cp-guard-scan-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "src");
    fs::create_directories(dir / ".git");
    const std::string key = "AKIAQYLPMN5HHHFPZAM2";
    std::ofstream(dir / "src" / "settings.py") << "import os\n\nAWS_KEY = '" << key << "'\n";
    std::ofstream(dir / "clean.py") << "def add(a, b):\n    return a + b\n";
    std::ofstream(dir / ".git" / "config") << "token = " << key << "\n"; // not scanned
    const std::string bin = CODEPILOT_BINARY;
    int code = 0;
    auto text = run(bin + " guard scan " + dir.string(), code);
    EXPECT_EQ(code, 1) << text;
    EXPECT_NE(text.find("settings.py:3:12: aws_access_key_id"), std::string::npos) << text;
    EXPECT_EQ(text.find(key), std::string::npos) << "the value was printed: " << text;
    EXPECT_EQ(text.find(".git"), std::string::npos) << text;
    auto json = run(bin + " guard scan --json " + (dir / "src").string(), code);
    EXPECT_EQ(code, 1);
    EXPECT_NE(json.find("\"rule\":\"aws_access_key_id\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"line\":3"), std::string::npos) << json;
    auto clean = run(bin + " guard scan " + (dir / "clean.py").string(), code);
    EXPECT_EQ(code, 0) << clean;
    auto piped = run("echo 'key " + key + "' | " + bin + " guard scan -", code);
    EXPECT_EQ(code, 1) << piped;
    auto missing = run(bin + " guard scan " + (dir / "nope").string(), code);
    EXPECT_EQ(code, 2) << missing;
    std::ofstream(dir / "bad.toml") << "[[rule]]\nid = \"b\"\nregex = '(a)\\1'\n";
    auto bad_rules =
        run(bin + " guard scan --rules " + (dir / "bad.toml").string() + " " + dir.string(), code);
    EXPECT_EQ(code, 2) << bad_rules;
    EXPECT_NE(bad_rules.find("rule 'b'"), std::string::npos) << bad_rules;
    // The server's config: its [guard] rules_file is what the scan uses.
    std::ofstream(dir / "acme.toml") << "[[rule]]\nid = \"acme_token\"\nregex = 'acme_[0-9a-f]{16}'\n"
                                        "keywords = [\"acme_\"]\n";
    std::ofstream(dir / "server.toml") << "[guard]\nrules_file = '" << (dir / "acme.toml").string() << "'\n";
    std::ofstream(dir / "src" / "deploy.sh") << "TOKEN=acme_0123456789abcdef\n";
    auto configured = run(
        bin + " guard scan --config " + (dir / "server.toml").string() + " " + (dir / "src").string(), code);
    EXPECT_EQ(code, 1) << configured;
    EXPECT_NE(configured.find("deploy.sh:1:7: acme_token"), std::string::npos) << configured;
    EXPECT_EQ(configured.find("aws_access_key_id"), std::string::npos) << "the built-in rules were replaced";
    fs::remove_all(dir);
}

namespace {

// Streams `text` through a filter in pieces of `size` bytes; returns what a client would see.
std::string through(guard::OutputFilter& f, const std::string& text, size_t size) {
    std::string out;
    for (size_t at = 0; at < text.size(); at += size) out += f.push(text.substr(at, size));
    return out + f.finish();
}

guard::OutputFilter mask_filter() {
    return guard::OutputFilter(guard::RuleSet::builtin(), {}, false);
}

} // namespace

TEST(GuardOutput, ASecretSplitOverAnyPiecesIsMaskedAndTheRestPassesUnchanged) {
    const std::string key = "AKIAQYLPMN5HHHFPZAM2";
    const std::string text =
        "import boto3\nclient = boto3.client('s3', aws_access_key_id='" + key + "')\n# done: héllo wörld\n";
    for (size_t size : {1u, 2u, 3u, 7u, 16u, 1000u}) {
        auto f = mask_filter();
        const std::string seen = through(f, text, size);
        EXPECT_EQ(seen.find(key), std::string::npos) << size;
        EXPECT_EQ(
            seen,
            "import boto3\nclient = boto3.client('s3', aws_access_key_id='<SECRET:aws_access_key_id>')\n"
            "# done: héllo wörld\n")
            << size;
        EXPECT_EQ(f.rules(), std::vector<std::string>{"aws_access_key_id"});
    }
    auto clean = mask_filter();
    const std::string code = "def add(a, b):\n    return a + b\n\n# ünïcode ✓\n";
    EXPECT_EQ(through(clean, code, 1), code);
    EXPECT_FALSE(clean.masked());
}

TEST(GuardOutput, TextIsShownAsSoonAsEachWordIsCompleteAndNeverSplitsACharacter) {
    auto f = mask_filter();
    EXPECT_EQ(f.push("def "), "def ");
    EXPECT_EQ(f.push("fo"), "");
    EXPECT_EQ(f.push("o(): ✓"), "foo(): ");
    EXPECT_EQ(f.push("\xe2"), ""); // the first byte of a three-byte character waits
    EXPECT_EQ(f.finish(), "✓\xe2");
}

TEST(GuardOutput, AKeyBlockStreamedLineByLineIsMaskedWhole) {
    std::string block = "-----BEGIN RSA PRIVATE KEY-----\n";
    for (int i = 0; i < 30; ++i)
        block +=
            "MIIEowIBAAKCAQEA7v9Qx3k2Lm8Pz4Tn1Rb6Yc0Wd5Se9Hf2Jg7Kh3Ui8Vo4Xp1Zq" + std::to_string(i) + "\n";
    block += "-----END RSA PRIVATE KEY-----\n";
    auto f = mask_filter();
    std::string seen;
    size_t at = 0;
    while (at < block.size()) { // line by line, as a model writes it
        const size_t eol = block.find('\n', at) + 1;
        seen += f.push(block.substr(at, eol - at));
        at = eol;
    }
    seen += f.finish();
    EXPECT_EQ(seen.find("MIIEowIBAAKCAQEA"), std::string::npos) << seen;
    EXPECT_NE(seen.find("<SECRET:private_key>"), std::string::npos) << seen;
}

TEST(GuardOutput, EndStopsTheAnswerBeforeTheFirstSecret) {
    guard::OutputFilter f(guard::RuleSet::builtin(), {}, true);
    const std::string seen =
        through(f, "token = 'ghp_Zr7Qk2Lm9Vx4Tb8Nc1Hd6Js3Fw5Pg0Ya2Ue7' and more text\n", 5);
    EXPECT_TRUE(f.ended());
    EXPECT_EQ(seen, "token = '");
    EXPECT_EQ(f.push("anything after"), "");
}
