// TLS in the server itself, over real sockets with a PKI made here: TLS 1.3, plain HTTP refused
// on the TLS port, bad handshakes of every kind, client certificates bound to users (mTLS
// identity through RBAC), reload without dropping connections, security headers, CORS, SSE.
#include "support/auth_fixture.h"
#include "support/log_capture.h"
#include "support/test_pki.h"
#include "support/tls_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <thread>

namespace codepilot::testenv {
namespace {

using nlohmann::json;

class TlsServerTest : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        pki_ = std::make_unique<TestPki>(data_dir_.string() + "-pki");
        server_files_ = pki_->server();
        c.server.tls.cert_file = server_files_.cert;
        c.server.tls.key_file = server_files_.key;
        c.server.tls.client_ca_file = pki_->ca_file();
        c.server.tls.client_auth = client_auth_;
        c.server.header_timeout_s = 1;
        tune(c);
    }
    virtual void tune(config::Config&) {}
    void TearDown() override {
        AuthServerTest::TearDown();
        std::filesystem::remove_all(data_dir_.string() + "-pki");
    }

    TlsClientOptions trusted() const { return TlsClientOptions{pki_->ca_file(), "", "", 0}; }
    TlsClientOptions with_cert(const CertFiles& files) const {
        return TlsClientOptions{pki_->ca_file(), files.cert, files.key, 0};
    }
    HttpResponse tls_call(const TlsClientOptions& o, const std::string& method, const std::string& path,
                          const std::string& token = "", const json& body = nullptr) {
        std::map<std::string, std::string> headers;
        if (!token.empty()) headers["Authorization"] = "Bearer " + token;
        if (!body.is_null()) headers["Content-Type"] = "application/json";
        return https(port(), o, method, path, body.is_null() ? "" : body.dump(), headers);
    }

    std::string client_auth_ = "optional";
    std::unique_ptr<TestPki> pki_;
    CertFiles server_files_;
};

TEST_F(TlsServerTest, ServesTls13WithSecurityHeaders) {
    TlsConnection c(port(), trusted());
    ASSERT_TRUE(c.handshake_ok()) << c.handshake_error();
    EXPECT_EQ(c.protocol(), "TLSv1.3");
    auto r = c.request("GET", "/v1/models", "", {{"Authorization", "Bearer " + owner_key_}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("strict-transport-security"), "max-age=31536000");
    EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
    EXPECT_EQ(r.header("cache-control"), "no-store");
    EXPECT_EQ(r.header("access-control-allow-origin"), ""); // CORS is off unless configured
}

TEST_F(TlsServerTest, OldProtocolVersionsAreRefused) {
    auto old = trusted();
    old.max_version = TLS1_2_VERSION;
    TlsConnection c(port(), old);
    EXPECT_FALSE(c.handshake_ok());
    EXPECT_NE(c.handshake_error().find("version"), std::string::npos) << c.handshake_error();
}

TEST_F(TlsServerTest, PlainHttpOnTheTlsPortGetsAPlainRefusal) {
    auto r = http(port(), "GET", "/health");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("https://"), std::string::npos) << r.body;
    EXPECT_EQ(r.json()["error"]["type"], "invalid_request_error");
}

TEST_F(TlsServerTest, GarbageAndStalledHandshakesAreDroppedAndServingGoesOn) {
    LogCapture logs;
    {
        RawConnection garbage(port());
        garbage.send(std::string("\x16\x03\x01\x00\x05garbage-that-is-no-client-hello", 36));
        EXPECT_TRUE(garbage.closed_by_peer(std::chrono::seconds(3)));
    }
    {
        RawConnection noise(port());
        noise.send("\x01\x02\x03\x04 not tls at all\r\n\r\n");
        EXPECT_TRUE(noise.closed_by_peer(std::chrono::seconds(3)));
    }
    {
        // A ClientHello cut in the middle: the handshake timeout (1 s here) ends it.
        RawConnection stalled(port());
        stalled.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
        EXPECT_TRUE(stalled.closed_by_peer(std::chrono::seconds(4)));
    }
    auto r = tls_call(trusted(), "GET", "/health");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(logs.count("TLS handshake from 127.0.0.1 failed"), 2) << logs.text();
}

TEST_F(TlsServerTest, UntrustedAndExpiredClientCertificatesFailTheHandshake) {
    TestPki other(data_dir_.string() + "-pki/other", "Some Other CA");
    auto foreign = other.client("foreign", "intruder");
    auto expired = pki_->client("expired", "old-bot", {}, -20, -1);
    TlsConnection a(port(), with_cert(foreign));
    EXPECT_FALSE(a.handshake_ok());
    TlsConnection b(port(), with_cert(expired));
    EXPECT_FALSE(b.handshake_ok());
    EXPECT_NE(b.handshake_error().find("expired"), std::string::npos) << b.handshake_error();
    // Without a certificate (optional mode) an API key still works.
    EXPECT_EQ(tls_call(trusted(), "GET", "/v1/models", owner_key_).status, 200);
}

TEST_F(TlsServerTest, ACertificateBoundToNoUserIs401AndABoundOneActsAsItsUser) {
    tenant("alpha");
    member("alpha", "ci-bot", "developer");
    auto bot = pki_->client("bot", "ci-bot", {"DNS:CI.example.com", "URI:spiffe://example/ci"});
    auto r = tls_call(with_cert(bot), "GET", "/v1/models");
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_NE(r.body.find("not bound"), std::string::npos) << r.body;

    // An admin binds its fingerprint through the API, over TLS, with the completion scope only.
    const std::string fingerprint = certificate_fingerprint(bot.cert);
    std::string colons;
    for (size_t i = 0; i < fingerprint.size(); i += 2) colons += (i ? ":" : "") + fingerprint.substr(i, 2);
    auto bound =
        tls_call(trusted(), "POST", "/admin/v1/tenants/alpha/certificates", owner_key_,
                 {{"user", "ci-bot"}, {"fingerprint", colons}, {"scopes", "completion"}, {"name", "ci"}});
    ASSERT_EQ(bound.status, 201) << bound.body;
    EXPECT_EQ(bound.json()["value"], fingerprint); // one spelling
    EXPECT_EQ(tls_call(trusted(), "POST", "/admin/v1/tenants/alpha/certificates", owner_key_,
                       {{"user", "ci-bot"}, {"fingerprint", fingerprint}, {"scopes", "completion"}})
                  .status,
              400); // bound already

    auto me = tls_call(with_cert(bot), "GET", "/auth/me");
    ASSERT_EQ(me.status, 200) << me.body;
    EXPECT_EQ(me.json()["username"], "ci-bot");
    auto done = tls_call(with_cert(bot), "POST", "/v1/completions", "",
                         {{"prompt", "def f():"}, {"max_tokens", 3}, {"ignore_eos", true}});
    EXPECT_EQ(done.status, 200) << done.body;
    // RBAC and scopes apply as to any credential: no chat scope, no admin permission.
    EXPECT_EQ(tls_call(with_cert(bot), "POST", "/v1/chat/completions", "",
                       {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}})
                  .status,
              403);
    EXPECT_EQ(tls_call(with_cert(bot), "GET", "/admin/v1/tenants/alpha/certificates").status, 403);

    // Unbinding takes effect on the next request.
    auto list = tls_call(trusted(), "GET", "/admin/v1/tenants/alpha/certificates", owner_key_);
    ASSERT_EQ(list.json()["data"].size(), 1u);
    const std::string id = list.json()["data"][0]["id"];
    EXPECT_EQ(tls_call(trusted(), "DELETE", "/admin/v1/tenants/alpha/certificates/" + id, owner_key_).status,
              200);
    EXPECT_EQ(tls_call(with_cert(bot), "GET", "/v1/models").status, 401);
}

TEST_F(TlsServerTest, BindingsBySubjectAndBySanMatch) {
    tenant("alpha");
    member("alpha", "build", "developer");
    member("alpha", "deploy", "viewer");
    auto by_subject = pki_->client("subject", "build-agent");
    auto by_san = pki_->client("san", "whatever", {"URI:spiffe://example/deploy"});
    ASSERT_EQ(
        tls_call(
            trusted(), "POST", "/admin/v1/tenants/alpha/certificates", owner_key_,
            {{"user", "build"}, {"subject", "CN=build-agent,O=Codepilot Tests"}, {"scopes", "completion"}})
            .status,
        201);
    ASSERT_EQ(tls_call(trusted(), "POST", "/admin/v1/tenants/alpha/certificates", owner_key_,
                       {{"user", "deploy"}, {"san", "uri:spiffe://example/deploy"}, {"scopes", "completion"}})
                  .status,
              201);
    EXPECT_EQ(tls_call(with_cert(by_subject), "GET", "/auth/me").json()["username"], "build");
    EXPECT_EQ(tls_call(with_cert(by_san), "GET", "/auth/me").json()["username"], "deploy");
    // Bad input names the field.
    auto bad = tls_call(trusted(), "POST", "/admin/v1/tenants/alpha/certificates", owner_key_,
                        {{"user", "build"}, {"fingerprint", "abc"}, {"scopes", "completion"}});
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(bad.json()["error"]["param"], "fingerprint");
    auto two = tls_call(trusted(), "POST", "/admin/v1/tenants/alpha/certificates", owner_key_,
                        {{"user", "build"}, {"subject", "CN=x"}, {"san", "DNS:x"}, {"scopes", "completion"}});
    EXPECT_EQ(two.status, 400);
}

TEST_F(TlsServerTest, ReloadServesTheNewCertificateAndKeepsOpenConnections) {
    TlsConnection open(port(), trusted());
    ASSERT_TRUE(open.handshake_ok());
    EXPECT_NE(open.peer_subject().find("CN=127.0.0.1"), std::string::npos);
    EXPECT_EQ(open.request_keep_alive("GET", "/health").status, 200);

    auto next = pki_->server("next", "localhost");
    std::filesystem::copy_file(next.cert, server_files_.cert,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(next.key, server_files_.key,
                               std::filesystem::copy_options::overwrite_existing);
    ASSERT_TRUE(app().reload_tls());
    TlsConnection fresh(port(), trusted());
    ASSERT_TRUE(fresh.handshake_ok()) << fresh.handshake_error();
    EXPECT_NE(fresh.peer_subject().find("CN=localhost"), std::string::npos) << fresh.peer_subject();
    EXPECT_EQ(open.request_keep_alive("GET", "/health").status, 200); // the old connection lives on

    // A broken file: the reload fails, says why, and the certificate in use stays.
    LogCapture logs;
    { std::ofstream(server_files_.cert) << "-----BEGIN CERTIFICATE-----\nnot base64\n"; }
    auto failed = app().reload_tls();
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message.find("server.tls.cert_file"), std::string::npos)
        << failed.error().message;
    EXPECT_EQ(logs.count("TLS: reload failed"), 1);
    TlsConnection after(port(), trusted());
    ASSERT_TRUE(after.handshake_ok());
    EXPECT_NE(after.peer_subject().find("CN=localhost"), std::string::npos);
}

TEST_F(TlsServerTest, StreamsWorkAndAClientThatLeavesIsNoticed) {
    TlsConnection c(port(), trusted());
    ASSERT_TRUE(c.handshake_ok());
    const json body = {{"prompt", "stream"}, {"max_tokens", 4000}, {"stream", true}, {"ignore_eos", true}};
    ASSERT_TRUE(c.send(build_request(
        "POST", "/v1/completions", body.dump(),
        {{"Authorization", "Bearer " + owner_key_}, {"Content-Type", "application/json"}}, true)));
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (seen.find("data: {") == std::string::npos && std::chrono::steady_clock::now() < deadline)
        seen += c.receive(std::chrono::seconds(1));
    ASSERT_NE(seen.find("text/event-stream"), std::string::npos) << seen;
    ASSERT_NE(seen.find("data: {"), std::string::npos);
    c.abort();
    auto& engine = app().engine();
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (engine.stats().running > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(engine.stats().running, 0);
    EXPECT_LT(engine.stats().generated_tokens, 2000); // cancelled long before its 4000 tokens
}

TEST_F(TlsServerTest, PipelinedRequestsOverTlsAreAllAnswered) {
    TlsConnection c(port(), trusted());
    ASSERT_TRUE(c.handshake_ok());
    ASSERT_TRUE(c.send(build_request("GET", "/health", "", {}, true) +
                       build_request("GET", "/health", "", {}, true) +
                       build_request("GET", "/health", "", {}, false)));
    auto raw = c.receive_all(std::chrono::seconds(10));
    size_t answers = 0;
    for (size_t at = raw.find("HTTP/1.1 200"); at != std::string::npos; at = raw.find("HTTP/1.1 200", at + 1))
        ++answers;
    EXPECT_EQ(answers, 3u) << raw;
}

// A port nobody listens on right now (the kernel's pick, released at once).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

class RequiredClientCertTest : public TlsServerTest {
protected:
    void tune(config::Config& c) override {
        c.server.tls.client_auth = "required";
        c.server.tls.plaintext_port = free_port();
        c.server.cors.allowed_origins = {"https://chat.example.com"};
    }
};

TEST_F(RequiredClientCertTest, NoCertificateNoConnection) {
    TlsConnection none(port(), trusted());
    EXPECT_FALSE(none.handshake_ok());
    tenant("alpha");
    member("alpha", "svc", "developer");
    auto svc = pki_->client("svc", "svc");
    ASSERT_TRUE(ids().create_certificate_binding(store::CertificateBinding{
        store::IdentityStore::new_id(), tenant("alpha").id, "", ids().find_user("svc")->value().id, "svc",
        "fingerprint", certificate_fingerprint(svc.cert), "", "completion", "test", 0}));
    EXPECT_EQ(tls_call(with_cert(svc), "GET", "/auth/me").status, 200);
}

TEST_F(RequiredClientCertTest, TheExplicitPlaintextPortSpeaksPlainHttp) {
    ASSERT_GT(app().plaintext_port(), 0);
    auto r = http(app().plaintext_port(), "GET", "/health");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("strict-transport-security"), ""); // not over plain HTTP
    EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
}

TEST_F(RequiredClientCertTest, CorsAnswersAllowedOriginsOnly) {
    const int plain = app().plaintext_port();
    auto ok = http(plain, "OPTIONS", "/v1/chat/completions", "",
                   {{"Origin", "https://chat.example.com"},
                    {"Access-Control-Request-Method", "POST"},
                    {"Access-Control-Request-Headers", "authorization, content-type, x-stainless-os"}});
    EXPECT_EQ(ok.status, 204) << ok.body;
    EXPECT_EQ(ok.header("access-control-allow-origin"), "https://chat.example.com");
    EXPECT_EQ(ok.header("access-control-allow-headers"), "authorization, content-type, x-stainless-os");
    EXPECT_NE(ok.header("access-control-allow-methods").find("POST"), std::string::npos);
    auto refused = http(plain, "OPTIONS", "/v1/chat/completions", "",
                        {{"Origin", "https://evil.example.net"}, {"Access-Control-Request-Method", "POST"}});
    EXPECT_EQ(refused.status, 403);
    EXPECT_EQ(refused.header("access-control-allow-origin"), "");
    // The call itself: the allowed origin may read the answer (a 401 here), others may not.
    auto call = http(plain, "GET", "/v1/models", "", {{"Origin", "https://chat.example.com"}});
    EXPECT_EQ(call.status, 401);
    EXPECT_EQ(call.header("access-control-allow-origin"), "https://chat.example.com");
    EXPECT_EQ(call.header("vary"), "Origin");
    EXPECT_EQ(http(plain, "GET", "/v1/models", "", {{"Origin", "https://evil.example.net"}})
                  .header("access-control-allow-origin"),
              "");
}

TEST(TlsConfig, InvalidSettingsNameTheKey) {
    auto parse = [](const std::string& toml) {
        auto r = config::parse_config(toml);
        return r ? std::string() : r.error().message;
    };
    EXPECT_NE(parse("[server.tls]\ncert_file = \"a.pem\"\n").find("key_file"), std::string::npos);
    EXPECT_NE(parse("[server.tls]\ncert_file = \"a\"\nkey_file = \"b\"\nclient_auth = \"maybe\"\n")
                  .find("server.tls.client_auth"),
              std::string::npos);
    EXPECT_NE(parse("[server.tls]\ncert_file = \"a\"\nkey_file = \"b\"\nclient_auth = \"required\"\n")
                  .find("client_ca_file"),
              std::string::npos);
    EXPECT_NE(parse("[server.tls]\nmin_version = \"1.1\"\n").find("min_version"), std::string::npos);
    EXPECT_NE(parse("[server.cors]\nallowed_origins = [\"chat.example.com\"]\n").find("allowed_origins"),
              std::string::npos);
    EXPECT_EQ(parse("[server.tls]\ncert_file = \"a\"\nkey_file = \"b\"\n"), "");
}

TEST(TlsConfig, AMissingCertificateFileStopsTheStartWithItsName) {
    auto c = test_config();
    c.server.tls.cert_file = "/nonexistent/cert.pem";
    c.server.tls.key_file = "/nonexistent/key.pem";
    auto app = app::Application::create(c);
    ASSERT_FALSE(app);
    EXPECT_NE(app.error().message.find("server.tls.cert_file /nonexistent/cert.pem"), std::string::npos)
        << app.error().message;
}

} // namespace
} // namespace codepilot::testenv
