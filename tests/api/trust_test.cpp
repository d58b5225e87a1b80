// The trust review's reproducers (issue 9), each against a real server over sockets: no tenant
// admin becomes more than that, no request crashes the server, the transport answers what it
// was sent, and sign-in can neither be guessed at speed nor stall anyone.
#include "support/auth_fixture.h"
#include "support/ldap_config.h"
#include "support/log_capture.h"

#include <arpa/inet.h>
#include <csignal>
#include <fstream>
#include <future>
#include <iostream>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>

namespace codepilot::testenv {
namespace {

using json = nlohmann::json;

std::string error_message(const HttpResponse& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j["error"]["message"].is_string() ? j["error"]["message"].get<std::string>()
                                                              : r.body;
}

// A socket to the server from a chosen loopback address (127.0.0.2 is another client).
int connect_from(const char* source, int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        ::close(fd);
        return -1;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Everything the peer sends until it closes (or `limit` passes).
std::string read_all(int fd, std::chrono::milliseconds limit) {
    timeval tv{0, 200 * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string out;
    char buf[65536];
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n == 0) break;
        if (n > 0) out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

class Trust : public AuthServerTest {
protected:
    void configure(config::Config& c) override {
        c.auth.sign_in_free_failures = 2;
        c.auth.sign_in_lock_failures = 4;
        c.server.max_connections_per_ip = 40;
        c.server.header_timeout_s = 1;
    }
    // The JSON routes: every one that takes a body.
    std::vector<std::pair<std::string, std::string>> json_routes() {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& [method, pattern] : app().routes()) {
            if (method != "POST" && method != "PUT" && method != "PATCH") continue;
            std::string path = pattern;
            for (auto [param, value] : {std::pair{"{tenant}", "default"}, std::pair{"{user}", "owner"},
                                        std::pair{"{engine}", "x"}, std::pair{"{name}", "ldap"}})
                if (auto at = path.find(param); at != std::string::npos)
                    path.replace(at, std::string(param).size(), value);
            out.emplace_back(method, path);
        }
        return out;
    }
    HttpResponse send(const std::string& method, const std::string& path, const std::string& body) {
        return http(port(), method, path, body,
                    {{"Authorization", "Bearer " + owner_key_}, {"Content-Type", "application/json"}});
    }
};

// ★ A tenant admin minted a key for the server owner and, with it, owned the server.
TEST_F(Trust, KeysAreOnlyForMembersNotAboveTheirCreator) {
    member("acme", "ada", "admin");
    member("acme", "olga", "owner");
    member("acme", "dev", "developer");
    const std::string ada = key("acme", "ada");
    auto for_user = [&](const std::string& user) {
        return call("POST", "/admin/v1/tenants/acme/keys", ada, {{"user", user}, {"scopes", {"admin"}}});
    };
    auto outsider = for_user("owner"); // the server owner, not a member of acme
    EXPECT_EQ(outsider.status, 404) << outsider.body;
    EXPECT_EQ(outsider.body.find("cpk_"), std::string::npos);
    ASSERT_TRUE(ids().set_membership(tenant("acme").id, (*ids().find_user("owner"))->id, "developer"));
    auto owner_member = for_user("owner");
    EXPECT_EQ(owner_member.status, 403) << owner_member.body;
    EXPECT_NE(error_message(owner_member).find("server owner"), std::string::npos);
    EXPECT_EQ(for_user("olga").status, 403); // an owner of the tenant is above an admin
    auto below = for_user("dev");
    EXPECT_EQ(below.status, 201) << below.body;
    // What the stolen key was used for stays out of reach of the admin's own key.
    EXPECT_EQ(call("GET", "/admin/v1/settings/ldap", ada).status, 403);
    EXPECT_EQ(call("PATCH", "/admin/v1/users/olga", ada, {{"password", "another-password-1"}}).status, 403);
    // Nor can the admin revoke an owner's key.
    auto olga_key =
        auth::issue_api_key(ids(), "acme", "olga", auth::kAllScopes, std::nullopt, "mine", "test");
    ASSERT_TRUE(olga_key);
    EXPECT_EQ(call("DELETE", "/admin/v1/tenants/acme/keys/" + olga_key->record.prefix, ada).status, 403);
}

// ★ Adding a member by name answered with anyone's email, owner flag and last sign-in.
TEST_F(Trust, AddingMembersRevealsNothingAboutPeopleOutsideTheTenant) {
    member("acme", "ada", "admin");
    store::User bob;
    bob.username = "bob";
    bob.email = "bob@beta.example";
    ASSERT_TRUE(ids().create_user(bob));
    member("beta", "bob", "developer");
    auto r = call("POST", "/admin/v1/tenants/acme/members", key("acme", "ada"),
                  {{"username", "bob"}, {"role", "viewer"}});
    EXPECT_EQ(r.status, 400) << r.body;
    for (const char* leak : {"bob@beta.example", "last_login", "server_owner", "beta"})
        EXPECT_EQ(r.body.find(leak), std::string::npos) << leak << " in " << r.body;
    auto members = call("GET", "/admin/v1/tenants/acme/members", key("acme", "ada"));
    EXPECT_EQ(members.body.find("\"bob\""), std::string::npos);
    // A new name creates a local account, as before; a server owner may add anyone.
    EXPECT_EQ(call("POST", "/admin/v1/tenants/acme/members", key("acme", "ada"),
                   {{"username", "newcomer"}, {"role", "viewer"}})
                  .status,
              201);
    EXPECT_EQ(
        call("POST", "/admin/v1/tenants/acme/members", owner_key_, {{"username", "bob"}, {"role", "viewer"}})
            .status,
        201);
}

// ★ /v1/embeddings copied its input recursively: a deeply nested body killed the process.
TEST_F(Trust, DeepNestingIs400OnEveryJsonRouteAndNothingCrashes) {
    const std::string arrays = "{\"input\":" + std::string(100, '[') + std::string(100, ']') + "}";
    std::string objects = "{\"input\":";
    for (int i = 0; i < 58000; ++i) objects += "{\"a\":";
    objects += "1" + std::string(58000, '}') + "}";
    const std::string bomb = "{\"input\":" + std::string(2'000'000, '[') + std::string(2'000'000, ']') + "}";
    for (const auto& [method, path] : json_routes()) {
        const bool auth_route = path.rfind("/auth/", 0) == 0; // 16 KiB bodies
        for (const std::string* body : std::initializer_list<const std::string*>{&arrays, &objects, &bomb}) {
            auto r = send(method, path, *body);
            if (auth_route && body->size() > 16 * 1024) {
                EXPECT_EQ(r.status, 413) << method << " " << path;
                continue;
            }
            EXPECT_EQ(r.status, 400) << method << " " << path << " " << r.body.substr(0, 200);
            EXPECT_NE(error_message(r).find("deeper than 64"), std::string::npos) << method << " " << path;
        }
    }
    // A string full of brackets is not nesting.
    auto text = send("POST", "/v1/embeddings", json{{"input", std::string(500, '[')}}.dump());
    EXPECT_EQ(text.status, 200) << text.body.substr(0, 200);
    EXPECT_EQ(http(port(), "GET", "/health").status, 200);
}

// ★ 1e999 was a 500 on every route, unauthenticated sign-in included.
TEST_F(Trust, NumbersOutOfRangeAre400OnEveryJsonRoute) {
    for (const auto& [method, path] : json_routes())
        for (const char* number : {"1e999", "-1E+400"}) {
            auto r = send(method, path, std::string("{\"max_tokens\": ") + number + "}");
            if (path == "/v1/health") { // Tabby's health probe does not read its body
                EXPECT_EQ(r.status, 200) << r.body;
                continue;
            }
            EXPECT_EQ(r.status, 400) << method << " " << path << " " << r.body;
            EXPECT_NE(error_message(r).find("number"), std::string::npos) << r.body;
        }
    auto anonymous =
        http(port(), "POST", "/auth/login", "{\"username\": 1e999}", {{"Content-Type", "application/json"}});
    EXPECT_EQ(anonymous.status, 400) << anonymous.body;
    auto huge = send("POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 9223372036854775808}");
    EXPECT_EQ(huge.status, 400);
    EXPECT_NE(error_message(huge).find("9223372036854775808"), std::string::npos) << huge.body;
    auto part =
        send("POST", "/v1/chat/completions",
             json{{"messages", {{{"role", "user"}, {"content", {{{"type", 7}, {"text", "hi"}}}}}}}}.dump());
    EXPECT_EQ(part.status, 400) << part.body;
}

// ★ Pipelined requests followed by a half-close lost their last answers.
TEST_F(Trust, PipelinedRequestsBeforeAHalfCloseAreAllAnswered) {
    std::string burst;
    for (int i = 0; i < 100; ++i) burst += "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
    for (int run = 0; run < 20; ++run) {
        int fd = connect_from("127.0.0.1", port());
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::send(fd, burst.data(), burst.size(), 0), static_cast<ssize_t>(burst.size()));
        ::shutdown(fd, SHUT_WR);
        auto answers = read_all(fd, std::chrono::seconds(10));
        ::close(fd);
        EXPECT_EQ(count_of(answers, "HTTP/1.1 200"), 100u) << "run " << run;
    }
}

TEST_F(Trust, HeadHasNoBodyAndHttp11NeedsAHost) {
    int fd = connect_from("127.0.0.1", port());
    const std::string both = "HEAD /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: "
                             "t\r\nConnection: close\r\n\r\n";
    ASSERT_GT(::send(fd, both.data(), both.size(), 0), 0);
    auto raw = read_all(fd, std::chrono::seconds(5));
    ::close(fd);
    auto end_of_head = raw.find("\r\n\r\n");
    ASSERT_NE(end_of_head, std::string::npos);
    EXPECT_NE(raw.substr(0, end_of_head).find("Content-Length: "), std::string::npos);
    EXPECT_EQ(raw.compare(end_of_head + 4, 9, "HTTP/1.1 "), 0) << "the HEAD answer carried a body: " << raw;
    RawConnection no_host(port());
    no_host.send("GET /health HTTP/1.1\r\n\r\n");
    auto r = parse_response(no_host.receive(std::chrono::seconds(5)));
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("Host"), std::string::npos);
}

// The access log holds printable text only, and says 499 where the audit trail does.
TEST_F(Trust, TheAccessLogIsPrintableAndAgreesWithTheAuditStatus) {
    LogCapture log;
    RawConnection raw(port());
    raw.send(
        "GET /v1/\xff\xfered HTTP/1.1\r\nHost: t\r\nx-request-id: two words\r\nConnection: close\r\n\r\n");
    auto answer = parse_response(raw.receive(std::chrono::seconds(5)));
    EXPECT_EQ(answer.status, 404);
    EXPECT_NE(answer.header("x-request-id"), "two words"); // not a plain token: replaced
    EXPECT_FALSE(answer.header("x-request-id").empty());
    bool found = false;
    for (int i = 0; i < 50 && !found; ++i) {
        found = log.count("/v1/\\xff\\xfered") > 0;
        if (!found) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(found) << log.text();
    EXPECT_EQ(log.text().find("\xff"), std::string::npos);
    // A client that leaves mid-generation is logged as 499, as audited.
    {
        SseStream stream(port(), "/v1/completions",
                         json{{"prompt", "x"}, {"max_tokens", 2000}, {"ignore_eos", true}, {"stream", true}},
                         {{"Authorization", "Bearer " + owner_key_}});
        ASSERT_EQ(stream.status(), 200);
        ASSERT_TRUE(stream.next_event().has_value());
    }
    bool logged = false;
    for (int i = 0; i < 100 && !logged; ++i) {
        logged = log.count("POST /v1/completions 499") > 0;
        if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(logged) << log.text();
}

// A body is read only from a caller whose credentials hold; sign-in bodies are small.
TEST_F(Trust, LargeBodiesWaitForCredentialsAndSignInBodiesAreCapped) {
    for (const std::string credentials : {"", "Authorization: Bearer cpk_nothing_here\r\n"}) {
        RawConnection c(port());
        c.send("POST /v1/completions HTTP/1.1\r\nHost: t\r\n" + credentials +
               "Content-Type: application/json\r\nContent-Length: 30000000\r\nExpect: 100-continue\r\n\r\n");
        auto answer = c.receive(std::chrono::seconds(5));
        EXPECT_EQ(answer.rfind("HTTP/1.1 401", 0), 0u) << answer.substr(0, 100);
    }
    auto big = http(port(), "POST", "/auth/login", std::string(32 * 1024, ' ') + "{}",
                    {{"Content-Type", "application/json"}});
    EXPECT_EQ(big.status, 413);
    // Refused before the body, and still audited as calls.
    int refused = 0;
    for (int i = 0; i < 100 && refused < 2; ++i) {
        refused = 0;
        auto rows = ids().database().query("SELECT body FROM audit_log WHERE kind = 'call'");
        ASSERT_TRUE(rows);
        for (const auto& row : *rows) {
            auto body = json::parse(row.text(0));
            refused += body["route"] == "/v1/completions" && body["status"] == 401 &&
                       !body["request_id"].get<std::string>().empty();
        }
        if (refused < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(refused, 2);
}

// Wrong passwords slow down, then lock, the account and the address; each is audited by name.
TEST_F(Trust, FailedSignInsBackOffLockAndAreAuditedWithTheNameTried) {
    member("acme", "pat", "developer", "pat-password-123");
    auto attempt = [&](const std::string& user, const std::string& password) {
        return post_json(port(), "/auth/login", {{"username", user}, {"password", password}});
    };
    EXPECT_EQ(attempt("pat", "wrong-1").status, 401);
    EXPECT_EQ(attempt("pat", "wrong-2").status, 401);
    auto held = attempt("pat", "pat-password-123"); // the right password, too soon
    EXPECT_EQ(held.status, 429) << held.body;
    EXPECT_GE(std::stoi(held.header("retry-after").empty() ? "0" : held.header("retry-after")), 1);
    EXPECT_EQ(attempt("someone-else", "x").status, 429); // the address is held as well
    // The attempts are in the audit trail under the name that was tried.
    bool audited = false;
    for (int i = 0; i < 100 && !audited; ++i) {
        auto rows = ids().database().query("SELECT body FROM audit_log WHERE kind = 'call'");
        ASSERT_TRUE(rows);
        for (const auto& row : *rows) {
            auto body = json::parse(row.text(0));
            audited |= body["route"] == "/auth/login" && body["status"] == 401 && body["user"] == "pat";
        }
        if (!audited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(audited);
}

TEST_F(Trust, ANewPasswordAndSignOutEverywhereEndSessions) {
    member("acme", "pat", "developer", "pat-password-123");
    auto sign_in = [&] {
        auto r = post_json(port(), "/auth/login", {{"username", "Pat "}, {"password", "pat-password-123"}});
        EXPECT_EQ(r.status, 200) << r.body; // the name as typed, trimmed and case-folded
        return r.status == 200 ? r.json()["token"].get<std::string>() : "";
    };
    std::string first = sign_in(), second = sign_in();
    ASSERT_EQ(call("GET", "/auth/me", first).status, 200);
    auto changed = call("PATCH", "/admin/v1/users/pat", owner_key_, {{"password", "pat-password-456"}});
    ASSERT_EQ(changed.status, 200) << changed.body;
    EXPECT_EQ(call("GET", "/auth/me", first).status, 401);
    EXPECT_EQ(call("GET", "/auth/me", second).status, 401);
    auto third = post_json(port(), "/auth/login", {{"username", "pat"}, {"password", "pat-password-456"}});
    ASSERT_EQ(third.status, 200);
    std::string token = third.json()["token"];
    auto everywhere = call("DELETE", "/admin/v1/users/pat/sessions", owner_key_);
    ASSERT_EQ(everywhere.status, 200) << everywhere.body;
    EXPECT_EQ(everywhere.json()["sessions_ended"], 1);
    EXPECT_EQ(call("GET", "/auth/me", token).status, 401);
}

// 1,100 idle sockets from one address do not lock out another address.
TEST_F(Trust, OneAddressCannotTakeEveryConnection) {
    rlimit files{};
    ::getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
    const int sockets =
        static_cast<int>(std::min<rlim_t>(1100, files.rlim_cur > 200 ? files.rlim_cur - 100 : 100));
    if (sockets < 1100)
        std::cout << "open-file limit " << files.rlim_cur << ": trying " << sockets << " sockets\n";
    std::vector<int> idle;
    for (int i = 0; i < sockets; ++i) idle.push_back(connect_from("127.0.0.1", port()));
    std::this_thread::sleep_for(std::chrono::milliseconds(500)); // within the 1 s header timeout
    int refused = 0, open = 0;
    for (int fd : idle) {
        if (fd < 0) continue;
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0 && std::string(buf, static_cast<size_t>(n)).find(" 503 ") != std::string::npos) ++refused;
        if (n < 0 && errno == EAGAIN) ++open;
    }
    EXPECT_EQ(open, 40); // the share of one address (server.max_connections_per_ip)
    EXPECT_EQ(refused, sockets - 40);
    int other = connect_from("127.0.0.2", port());
    ASSERT_GE(other, 0) << "cannot bind 127.0.0.2";
    const std::string get = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    ::send(other, get.data(), get.size(), 0);
    EXPECT_EQ(read_all(other, std::chrono::seconds(5)).rfind("HTTP/1.1 200", 0), 0u);
    ::close(other);
    for (int fd : idle)
        if (fd >= 0) ::close(fd);
    // A socket that sends nothing is closed after the header timeout (1 s here).
    RawConnection quiet(port());
    EXPECT_TRUE(quiet.closed_by_peer(std::chrono::seconds(5)));
}

// prompts × n count against concurrency, and one request may ask for only so many.
TEST_F(Trust, GenerationsCountAgainstConcurrency) {
    auto r = call("POST", "/v1/completions", owner_key_, {{"prompt", "x"}, {"max_tokens", 1}, {"n", 9}});
    EXPECT_EQ(r.status, 429) << r.body; // default: 8 generations per key
    EXPECT_NE(error_message(r).find("generations"), std::string::npos) << r.body;
    EXPECT_FALSE(r.header("retry-after").empty());
    auto many = call("POST", "/v1/completions", owner_key_,
                     {{"prompt", json::array({"a", "b", "c", "d", "e", "f", "g", "h", "i"})},
                      {"max_tokens", 1},
                      {"n", 2}});
    EXPECT_EQ(many.status, 400) << many.body; // 18 > 16 per request
    EXPECT_EQ(many.json()["error"]["param"], "n");
    // One request that would hold 16 × 2048 × 21 token alternatives (RSS grew by 200 MB).
    auto logprobs = call("POST", "/v1/completions", owner_key_,
                         {{"prompt", "x"}, {"max_tokens", 2048}, {"n", 16}, {"logprobs", 20}});
    EXPECT_EQ(logprobs.status, 400) << logprobs.body;
    EXPECT_EQ(logprobs.json()["error"]["param"], "logprobs");
    auto fits = call("POST", "/v1/completions", owner_key_, {{"prompt", "x"}, {"max_tokens", 1}, {"n", 8}});
    EXPECT_EQ(fits.status, 200) << fits.body;
    // And the slots come back: the same call again fits.
    EXPECT_EQ(
        call("POST", "/v1/completions", owner_key_, {{"prompt", "x"}, {"max_tokens", 1}, {"n", 8}}).status,
        200);
}

// A name a spreadsheet would run as a formula is exported as text.
TEST_F(Trust, CsvExportsCarryNoFormulas) {
    member("acme", "=hyperlink", "developer");
    auto r = call("POST", "/v1/completions", key("acme", "=hyperlink"), {{"prompt", "x"}, {"max_tokens", 1}});
    ASSERT_EQ(r.status, 200) << r.body;
    std::string csv;
    for (int i = 0; i < 60 && csv.find("hyperlink") == std::string::npos;
         ++i) { // usage is written each second
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        csv = call("GET", "/admin/v1/usage?tenant=acme&group_by=user&format=csv", owner_key_).body;
    }
    EXPECT_NE(csv.find("'=hyperlink"), std::string::npos) << csv;
    EXPECT_EQ(csv.find("\n=hyperlink"), std::string::npos) << csv;
}

// Supersession went by client address and the client's own `user` field: behind one proxy, a
// developer of another tenant could cancel completions by sending the same user and path.
class SharedProxy : public AuthServerTest {
    void configure(config::Config& c) override {
        c.completion.max_tokens = 1500;
        c.completion.deadline_ms = 120000;
        c.model.max_tokens_cap = 1500;
        c.model.ctx = 4 * 1800;
    }
};

TEST_F(SharedProxy, AnotherTenantCannotSupersedeACompletion) {
    member("acme", "dev", "developer");
    member("beta", "eve", "developer");
    const std::string dev = key("acme", "dev"), eve = key("beta", "eve");
    auto& engine = app().engine();
    json body;
    int64_t before = 0;
    for (const char* prefix :
         {"value = compute(", "x = ", "total = sum(", "name = \"", "items = [", "flag = not "}) {
        body = {{"code", prefix}, {"suffix", ")\n"}, {"filePath", "src/long.py"}, {"max_tokens", 1500}};
        before = engine.stats().generated_tokens;
        ASSERT_EQ(call("POST", "/complete", dev, body).status, 200);
        if (engine.stats().generated_tokens - before > 1000) break;
    }
    ASSERT_GT(engine.stats().generated_tokens - before, 1000)
        << "no candidate prompt ran long with this test model";
    auto first = std::async(std::launch::async, [&] { return call("POST", "/complete", dev, body); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (engine.stats().running == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    json other = body; // the same path from the same address, with another tenant's key
    other["code"] = body["code"].get<std::string>() + "a";
    ASSERT_EQ(call("POST", "/complete", eve, other).status, 200);
    auto kept = first.get();
    ASSERT_EQ(kept.status, 200);
    EXPECT_NE(kept.json()["completion"], "") << "acme's completion was cancelled by beta's request";
    // The same developer typing on is still superseded.
    auto older = std::async(std::launch::async, [&] { return call("POST", "/complete", dev, body); });
    while (engine.stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_EQ(call("POST", "/complete", dev, other).status, 200);
    EXPECT_EQ(older.get().json()["completion"], "");
}

// Sign-ins waiting on a directory that stopped answering do not hold anyone else up.
class FrozenDirectory : public AuthServerTest {
    void configure(config::Config& c) override { c.auth.ldap = test_ldap_config(); }
};

TEST_F(FrozenDirectory, HealthAndKeyCallsAreServedWhileSignInsWait) {
    std::ifstream pid_file(service_url("CODEPILOT_TEST_SLAPD_PID_FILE"));
    pid_t slapd = 0;
    ASSERT_TRUE(pid_file >> slapd) << "no slapd pid: run under make test";
    member("acme", "dev", "developer");
    const std::string k = key("acme", "dev");
    ASSERT_EQ(::kill(slapd, SIGSTOP), 0);
    struct Thaw {
        pid_t pid;
        ~Thaw() { ::kill(pid, SIGCONT); }
    } thaw{slapd};
    std::vector<std::future<int>> sign_ins;
    for (int i = 0; i < 32; ++i)
        sign_ins.push_back(std::async(std::launch::async, [this] {
            return post_json(port(), "/auth/login", {{"username", "alice"}, {"password", "alice-pass"}})
                .status;
        }));
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // they are now waiting on the directory
    auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(http(port(), "GET", "/health").status, 200);
    auto completion = call("POST", "/v1/completions", k, {{"prompt", "x"}, {"max_tokens", 2}});
    EXPECT_EQ(completion.status, 200) << completion.body;
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_LT(took, std::chrono::seconds(1))
        << "served in " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
        << " ms while sign-ins waited";
    ::kill(slapd, SIGCONT);
    // The first sign-ins of one directory user, all at once: one account, every one admitted.
    for (auto& s : sign_ins) {
        int st = s.get();
        EXPECT_TRUE(st == 200 || st == 503) << st;
    }
    auto accounts = ids().database().query("SELECT COUNT(*) FROM users WHERE source = 'ldap'");
    ASSERT_TRUE(accounts);
    EXPECT_EQ((*accounts)[0].integer(0), 1);
}

// ★ SIGTERM while streams outlived the grace period: calls went unaudited, or were audited with
// completion_tokens 0 after delivering hundreds.
class ShutdownAudit : public AuthServerTest {
    void configure(config::Config& c) override {
        c.server.shutdown_grace_s = 1;
        c.model.parallel = 8;
        c.model.ctx = 8 * 4200;
    }
};

TEST_F(ShutdownAudit, StreamsCutAtTheDeadlineAreAuditedWithWhatTheyUsed) {
    const std::map<std::string, std::string> auth{{"Authorization", "Bearer " + owner_key_}};
    std::vector<std::unique_ptr<SseStream>> streams;
    for (int i = 0; i < 8; ++i) {
        streams.push_back(std::make_unique<SseStream>(port(), "/v1/completions",
                                                      json{{"prompt", "count " + std::to_string(i)},
                                                           {"max_tokens", 4000},
                                                           {"ignore_eos", true},
                                                           {"stream", true}},
                                                      auth));
        ASSERT_EQ(streams.back()->status(), 200);
    }
    for (auto& s : streams) ASSERT_TRUE(s->next_event().has_value());
    std::vector<size_t> received(streams.size(), 1);
    std::thread stopping([this] { app().shutdown(); }); // SIGTERM's path
    for (size_t i = 0; i < streams.size(); ++i) received[i] += streams[i]->drain().size();
    stopping.join();
    auto rows = ids().database().query("SELECT body FROM audit_log WHERE kind = 'call'");
    ASSERT_TRUE(rows);
    int cut = 0;
    for (const auto& row : *rows) {
        auto body = json::parse(row.text(0));
        if (body["route"] != "/v1/completions") continue;
        ++cut;
        EXPECT_EQ(body["status"], 503) << body.dump(); // cut by the server, not left by the client
        EXPECT_GT(body["completion_tokens"].get<int64_t>(), 0) << body.dump();
    }
    EXPECT_EQ(cut, 8);
    int64_t recorded = 0;
    for (const auto& row : *rows) {
        auto body = json::parse(row.text(0));
        if (body["route"] == "/v1/completions") recorded += body["completion_tokens"].get<int64_t>();
    }
    size_t events = 0;
    for (auto n : received) events += n;
    EXPECT_GE(recorded,
              static_cast<int64_t>(events) - 16); // every event carried a token (the last may be lost)
}

} // namespace
} // namespace codepilot::testenv
