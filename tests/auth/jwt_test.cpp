// OIDC bearer tokens against real RSA and EC keys: what verifies, and every way a token
// must not.
#include "auth/credentials.h"
#include "auth/jwt.h"
#include "server/server.h"
#include "support/https_server.h"
#include "support/jwt_signer.h"
#include "support/log_capture.h"
#include "support/test_services.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <gtest/gtest.h>
#include <unistd.h>

namespace codepilot::auth {
namespace {

using testenv::JwtSigner;
using json = nlohmann::json;

class JwtTest : public ::testing::Test {
protected:
    void SetUp() override {
        jwks_path_ = std::filesystem::temp_directory_path() /
                     ("cp-jwks-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++) + ".json");
        write_jwks({&rsa_, &ec_});
        config_.enabled = true;
        config_.issuer = "https://idp.corp.example";
        config_.audience = "codepilot";
        config_.jwks_file = jwks_path_.string();
        config_.leeway_s = 30;
        config_.jwks_refresh_min_interval_s = 60;
    }
    void TearDown() override { std::filesystem::remove(jwks_path_); }

    void write_jwks(const std::vector<const JwtSigner*>& signers) {
        std::ofstream(jwks_path_) << testenv::jwks_of(signers).dump();
    }
    json claims() const {
        return {
            {"iss", config_.issuer}, {"aud", "codepilot"}, {"sub", "u-123"},   {"preferred_username", "dana"},
            {"iat", now_ - 10},      {"nbf", now_ - 10},   {"exp", now_ + 300}};
    }
    JwtVerifier verifier() {
        return JwtVerifier(config_, [this] { return now_; });
    }
    std::string why(JwtVerifier& v, const std::string& token) {
        auto r = v.verify(token);
        return r ? "ok" : r.error().message;
    }

    static inline int counter_ = 0;
    static inline JwtSigner rsa_{JwtSigner::Kind::rsa, "rsa-1"};
    static inline JwtSigner ec_{JwtSigner::Kind::ec, "ec-1"};
    std::filesystem::path jwks_path_;
    config::OidcConfig config_;
    int64_t now_ = 1'800'000'000;
};

TEST_F(JwtTest, AcceptsRs256AndEs256) {
    auto v = verifier();
    auto r = v.verify(rsa_.sign(claims()));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ((*r)["preferred_username"], "dana");
    auto e = v.verify(ec_.sign(claims()));
    ASSERT_TRUE(e) << e.error().message;
    json multi = claims();
    multi["aud"] = json::array({"other", "codepilot"});
    EXPECT_EQ(why(v, rsa_.sign(multi)), "ok");
}

TEST_F(JwtTest, TimeClaimsHonourTheLeeway) {
    auto v = verifier();
    json c = claims();
    c["exp"] = now_ - 20; // within 30 s leeway
    EXPECT_EQ(why(v, rsa_.sign(c)), "ok");
    c["exp"] = now_ - 31;
    EXPECT_EQ(why(v, rsa_.sign(c)), "token expired");
    c = claims();
    c["nbf"] = now_ + 31;
    EXPECT_EQ(why(v, rsa_.sign(c)), "token not yet valid");
    c = claims();
    c.erase("exp");
    EXPECT_EQ(why(v, rsa_.sign(c)), "token has no expiry");
}

TEST_F(JwtTest, IssuerAndAudienceMustMatch) {
    auto v = verifier();
    json c = claims();
    c["aud"] = "someone-else";
    EXPECT_EQ(why(v, rsa_.sign(c)), "wrong audience");
    c = claims();
    c["iss"] = "https://evil.example";
    EXPECT_EQ(why(v, rsa_.sign(c)), "wrong issuer");
}

TEST_F(JwtTest, RefusesUnsignedAndAlgorithmConfusion) {
    auto v = verifier();
    EXPECT_EQ(why(v, testenv::unsigned_token(claims())), "token is unsigned");
    std::string none_signed = testenv::unsigned_token(claims()) + "AAAA";
    EXPECT_EQ(why(v, none_signed), "algorithm 'none' is not allowed");
    // HS256 keyed with the public key, the classic confusion attack.
    std::string hs = testenv::sign_hs256({{"alg", "HS256"}, {"kid", "rsa-1"}}, claims(), rsa_.public_pem());
    EXPECT_EQ(why(v, hs), "algorithm 'HS256' is not allowed");
    // RS256 claimed for the EC key.
    EXPECT_EQ(why(v, ec_.sign(claims(), {{"alg", "RS256"}})), "key 'ec-1' does not fit algorithm RS256");
    // Only the pinned list: with ES256 removed, ES256 tokens fail.
    config_.algorithms = {"RS256"};
    auto rs_only = verifier();
    EXPECT_EQ(why(rs_only, ec_.sign(claims())), "algorithm 'ES256' is not allowed");
}

TEST_F(JwtTest, TamperedTokensFail) {
    auto v = verifier();
    std::string token = rsa_.sign(claims());
    json forged = claims();
    forged["preferred_username"] = "root";
    auto dot1 = token.find('.'), dot2 = token.rfind('.');
    std::string tampered = token.substr(0, dot1 + 1) + base64url_encode(forged.dump()) + token.substr(dot2);
    EXPECT_EQ(why(v, tampered), "bad signature");
    EXPECT_EQ(why(v, "not-a-jwt"), "not a JWS compact token");
    EXPECT_EQ(why(v, "a.b.c.d"), "not a JWS compact token");
    EXPECT_EQ(why(v, "%%%.e30.AA"), "token header is not base64url");
    // A token signed by a key the issuer never published.
    JwtSigner stranger(JwtSigner::Kind::rsa, "rsa-1");
    EXPECT_EQ(why(v, stranger.sign(claims())), "bad signature");
}

TEST_F(JwtTest, UnknownKidRefetchesTheJwksAtMostOncePerInterval) {
    auto v = verifier();
    ASSERT_EQ(why(v, rsa_.sign(claims())), "ok");
    JwtSigner rotated(JwtSigner::Kind::ec, "ec-2");
    EXPECT_EQ(why(v, rotated.sign(claims())), "no key with kid 'ec-2'"); // fetched now: still old
    write_jwks({&rsa_, &ec_, &rotated});
    EXPECT_EQ(why(v, rotated.sign(claims())), "no key with kid 'ec-2'"); // within the interval: no refetch
    now_ += 61;
    EXPECT_EQ(why(v, rotated.sign(claims())), "ok"); // refetched on the unknown kid
}

TEST_F(JwtTest, JwksFromAnInternalUrl) {
    // A small HTTP server on loopback serves the JWKS, as an IdP on the internal network would.
    namespace asio = boost::asio;
    asio::io_context io;
    auto router = std::make_shared<server::Router>();
    std::atomic<int> fetches{0};
    std::string body = testenv::jwks_of({&rsa_, &ec_}).dump();
    router->add(server::http::verb::get, "/.well-known/jwks.json",
                [&](server::Exchange& ex) -> asio::awaitable<void> {
                    ++fetches;
                    co_await ex.respond(server::http::status::ok, body);
                });
    server::ServerOptions so;
    so.port = 0;
    server::HttpServer http(io, so, router);
    ASSERT_TRUE(http.listen());
    http.start();
    auto work = asio::make_work_guard(io); // keeps run() going until the server has shut down
    std::thread runner([&] { io.run(); });

    config_.jwks_file.clear();
    config_.jwks_url = "http://127.0.0.1:" + std::to_string(http.port()) + "/.well-known/jwks.json";
    config_.allow_insecure = true; // plain http: only with the opt-out, and said at start
    testenv::LogCapture log;
    ASSERT_TRUE(config::validate_oidc(config_));
    auto v = verifier();
    EXPECT_EQ(log.count("auth.oidc: allow_insecure: the signing keys come over plain http"), 1) << log.text();
    EXPECT_EQ(why(v, ec_.sign(claims())), "ok");
    EXPECT_EQ(why(v, rsa_.sign(claims())), "ok");
    EXPECT_EQ(fetches.load(), 1); // cached

    config_.jwks_url = "http://127.0.0.1:" + std::to_string(http.port()) + "/missing";
    auto broken = verifier();
    auto r = broken.verify(ec_.sign(claims()));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::unavailable); // 503 for the caller, not 401
    std::promise<void> done;
    http.shutdown(std::chrono::milliseconds(100), [&] { done.set_value(); });
    EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
    work.reset();
    io.stop();
    runner.join();
}

TEST_F(JwtTest, JwksOverHttpsWithTheCompanyCa) {
    testenv::HttpsServer idp(testenv::tls_file("server.pem"), testenv::tls_file("server.key"),
                             testenv::jwks_of({&rsa_, &ec_}).dump());
    config_.jwks_file.clear();
    config_.ca_file = testenv::tls_file("ca.pem");
    for (const std::string host : {"127.0.0.1", "localhost"}) { // the certificate names both
        config_.jwks_url = "https://" + host + ":" + std::to_string(idp.port()) + "/.well-known/jwks.json";
        ASSERT_TRUE(config::validate_oidc(config_));
        testenv::LogCapture log;
        auto v = verifier();
        EXPECT_EQ(why(v, ec_.sign(claims())), "ok") << host;
        EXPECT_EQ(log.count("allow_insecure"), 0) << log.text();
    }
    EXPECT_TRUE(idp.counted(2, 0)) << idp.answered() << " answered, " << idp.refused_handshakes()
                                   << " refused";
}

TEST_F(JwtTest, AJwksCertificateOfAnotherCaOrAnotherNameIsRefused) {
    config_.jwks_file.clear();
    testenv::HttpsServer idp(testenv::tls_file("server.pem"), testenv::tls_file("server.key"),
                             testenv::jwks_of({&rsa_, &ec_}).dump());
    config_.jwks_url = "https://127.0.0.1:" + std::to_string(idp.port()) + "/.well-known/jwks.json";
    config_.ca_file = testenv::tls_file("other-ca.pem");
    auto untrusted = verifier().verify(ec_.sign(claims()));
    ASSERT_FALSE(untrusted);
    EXPECT_EQ(untrusted.error().code, ErrorCode::unavailable);
    EXPECT_NE(untrusted.error().message.find("certificate verify failed"), std::string::npos)
        << untrusted.error().message;
    // The right CA, but a certificate for elsewhere.test: the host name is checked too.
    testenv::HttpsServer impostor(testenv::tls_file("elsewhere.pem"), testenv::tls_file("elsewhere.key"),
                                  testenv::jwks_of({&rsa_, &ec_}).dump());
    config_.jwks_url = "https://127.0.0.1:" + std::to_string(impostor.port()) + "/.well-known/jwks.json";
    config_.ca_file = testenv::tls_file("ca.pem");
    auto misnamed = verifier().verify(ec_.sign(claims()));
    ASSERT_FALSE(misnamed);
    EXPECT_NE(misnamed.error().message.find("certificate verify failed"), std::string::npos)
        << misnamed.error().message;
    EXPECT_TRUE(idp.counted(0, 1)) << idp.answered(); // the client left in the handshake: no keys went out
    EXPECT_TRUE(impostor.counted(0, 1)) << impostor.answered();
}

TEST(Jwks, SkipsKeysItCannotUse) {
    auto jwks = Jwks::parse(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB"},
                                        {"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]})");
    ASSERT_TRUE(jwks);
    EXPECT_EQ(jwks->size(), 0u); // symmetric, short RSA and other curves are all refused
    EXPECT_FALSE(Jwks::parse("[]"));
    EXPECT_FALSE(Jwks::parse("{\"keys\":{}}"));
}

} // namespace
} // namespace codepilot::auth
