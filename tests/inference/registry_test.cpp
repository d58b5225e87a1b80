// The model registry: models registered at run time load in the background and serve without a
// restart, unloading waits for the requests that hold a model, a corrupt or missing GGUF fails
// alone, canary shares set from the CLI reach a running server within a poll, and
// `codepilot model compare` reads the outcomes the server recorded.
#include "inference/registry.h"
#include "store/store.h"
#include "support/http_client.h"
#include "support/test_env.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace codepilot;
using namespace codepilot::testenv;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
    auto dir = fs::temp_directory_path() / ("cp-registry-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// Polls `check` every 50 ms for up to `seconds`.
template <typename F> bool eventually(F check, int seconds = 30) {
    for (int i = 0; i < seconds * 20; ++i) {
        if (check()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return check();
}

json admin_entry(int port, const std::string& id) {
    auto list = http(port, "GET", "/admin/v1/models").json();
    for (const auto& m : list["data"])
        if (m["id"] == id) return m;
    return nullptr;
}

std::string state_of(int port, const std::string& id) {
    auto m = admin_entry(port, id);
    return m.is_null() ? "absent" : m.value("state", "");
}

json local_entry(const std::string& id, const std::string& path) {
    return {{"id", id},      {"path", path}, {"roles", {"completion", "chat"}},
            {"parallel", 2}, {"ctx", 2048},  {"threads", 1}};
}

HttpResponse post(int port, const std::string& target, const json& body) {
    return http(port, "POST", target, body.dump(), {{"Content-Type", "application/json"}});
}

std::string toml_entry(const std::string& id, const std::string& path, const std::string& extra = "") {
    return "id = \"" + id + "\"\npath = \"" + path +
           "\"\nroles = [\"completion\", \"chat\"]\nparallel = 2\nctx = 2048\nthreads = 1\n" + extra;
}

struct Run {
    int code = -1;
    std::string out;
};
Run cli(const std::string& args) {
    Run r;
    FILE* p = ::popen((std::string(CODEPILOT_BINARY) + " " + args + " 2>&1").c_str(), "r");
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

} // namespace

TEST(ModelRegistry, ARegisteredModelLoadsInTheBackgroundServesAndUnloadsWithoutARestart) {
    TestServer server;
    const int port = server.port();
    auto registered = post(port, "/admin/v1/models", [] {
        auto e = local_entry("extra", qwen_coder_model());
        e["aliases"] = {"x2"};
        return e;
    }());
    ASSERT_EQ(registered.status, 202) << registered.body;
    EXPECT_EQ(registered.json()["state"], "loading");
    ASSERT_TRUE(eventually([&] { return state_of(port, "extra") == "serving"; }))
        << admin_entry(port, "extra");
    auto entry = admin_entry(port, "extra");
    EXPECT_EQ(entry["source"], "registry");
    EXPECT_GT(entry["memory"]["model_bytes"].get<int64_t>(), 0);
    EXPECT_GT(entry["memory"]["kv_cache_bytes"].get<int64_t>(), 0);

    auto served =
        post_json(port, "/v1/completions", {{"model", "x2"}, {"prompt", "def f("}, {"max_tokens", 2}});
    ASSERT_EQ(served.status, 200) << served.body;
    EXPECT_NE(served.header("x-codepilot-route").find("model=extra"), std::string::npos);
    EXPECT_NE(http(port, "GET", "/v1/models").body.find("\"extra\""), std::string::npos);

    // A stream in flight while the model is unloaded ends as it would have, not with an error.
    SseStream stream(
        port, "/v1/completions",
        {{"model", "extra"}, {"prompt", "x"}, {"max_tokens", 600}, {"ignore_eos", true}, {"stream", true}});
    ASSERT_EQ(stream.status(), 200);
    ASSERT_TRUE(stream.next_event());
    ASSERT_EQ(post(port, "/admin/v1/models/extra/unload", json::object()).status, 202);
    EXPECT_TRUE(eventually([&] {
        return post_json(port, "/v1/completions", {{"model", "extra"}, {"prompt", "x"}, {"max_tokens", 1}})
                   .status == 404;
    }));
    auto rest = stream.drain();
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(rest.back(), "[DONE]");
    for (const auto& e : rest) EXPECT_EQ(e.find("\"error\""), std::string::npos) << e;
    EXPECT_TRUE(eventually([&] { return state_of(port, "extra") == "unloaded"; }))
        << admin_entry(port, "extra");
    // The default model served all along, and a registration comes back with `load`.
    EXPECT_EQ(post_json(port, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 1}}).status, 200);
    ASSERT_EQ(post(port, "/admin/v1/models/extra/load", json::object()).status, 202);
    EXPECT_TRUE(eventually([&] { return state_of(port, "extra") == "serving"; }))
        << admin_entry(port, "extra");
}

TEST(ModelRegistry, ACorruptOrMissingFileFailsAloneWithItsReason) {
    TestServer server;
    const int port = server.port();
    auto dir = scratch("corrupt");
    const auto bad = (dir / "broken.gguf").string();
    std::ofstream(bad) << "GGUF\x03\x00\x00\x00 this is not a model";
    ASSERT_EQ(post(port, "/admin/v1/models", local_entry("broken", bad)).status, 202);
    ASSERT_TRUE(eventually([&] { return state_of(port, "broken") == "failed"; }))
        << admin_entry(port, "broken");
    EXPECT_NE(admin_entry(port, "broken")["last_error"].get<std::string>().find("model 'broken'"),
              std::string::npos);
    EXPECT_EQ(post_json(port, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 1}}).status, 200);
    EXPECT_EQ(post_json(port, "/v1/completions", {{"model", "broken"}, {"prompt", "x"}}).status, 404);

    auto missing = post(port, "/admin/v1/models", local_entry("ghost", (dir / "nope.gguf").string()));
    EXPECT_EQ(missing.status, 400) << missing.body;
    EXPECT_NE(missing.body.find("nope.gguf"), std::string::npos) << missing.body;
    auto taken = post(port, "/admin/v1/models", [] {
        auto e = local_entry("other", tiny_model());
        e["aliases"] = {"tiny"};
        return e;
    }());
    EXPECT_EQ(taken.status, 409) << taken.body;
    EXPECT_NE(taken.body.find("'tiny' is already taken"), std::string::npos) << taken.body;
    auto config_model = post(port, "/admin/v1/models/tiny/unload", json::object());
    EXPECT_EQ(config_model.status, 409) << config_model.body;
    EXPECT_NE(config_model.body.find("configuration file"), std::string::npos);
    auto nested =
        post(port, "/admin/v1/models", {{"id", "n"}, {"path", tiny_model()}, {"local", {{"a", 1}}}});
    EXPECT_EQ(nested.status, 400) << nested.body;
    auto unknown = post(port, "/admin/v1/models", {{"id", "n"}, {"path", tiny_model()}, {"colour", "red"}});
    EXPECT_EQ(unknown.status, 400) << unknown.body;
    EXPECT_NE(unknown.body.find("colour"), std::string::npos) << unknown.body;
    auto share = http(port, "PUT", "/admin/v1/models/broken/canary", R"({"share":150})",
                      {{"Content-Type", "application/json"}});
    EXPECT_EQ(share.status, 400) << share.body;
    fs::remove_all(dir);
}

// The mechanism under the end-to-end test: a route holds its model; unloading waits for it.
TEST(ModelRegistry, UnloadingWaitsForEveryRequestThatHoldsTheModel) {
    auto dir = scratch("drain");
    auto db = store::open_and_migrate("sqlite://" + (dir / "store.db").string(), 2);
    ASSERT_TRUE(db) << db.error().message;
    inference::Fleet fleet;
    inference::ModelSpec base;
    base.id = "base";
    base.roles = {inference::Task::completion};
    ASSERT_TRUE(fleet.add(base, inference::local_backend(load_engine(tiny_model()))));
    ASSERT_TRUE(fleet.configure_routing({}, {}));
    inference::RegistryOptions options;
    options.poll_ms = 100;
    inference::ModelRegistry registry(fleet, **db, {}, options);
    ASSERT_TRUE(registry.start());
    auto row = registry.register_model(toml_entry("extra", tiny_model()), "test");
    ASSERT_TRUE(row) << row.error().message;
    ASSERT_TRUE(eventually([&] { return registry.state_of("extra")->state == "serving"; }))
        << registry.state_of("extra")->error;

    inference::RouteQuery q;
    q.requested = "extra";
    auto held = fleet.route(q);
    ASSERT_TRUE(held);
    ASSERT_TRUE(registry.set_desired("extra", false, "test"));
    ASSERT_TRUE(eventually([&] { return registry.state_of("extra")->state == "draining"; }));
    EXPECT_FALSE(fleet.route(q)); // no new requests
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    EXPECT_EQ(registry.state_of("extra")->state, "draining"); // still held
    EXPECT_EQ(held->backend->info().n_vocab > 0, true);       // and still alive
    held = make_error(ErrorCode::internal, "released");
    EXPECT_TRUE(eventually([&] { return registry.state_of("extra")->state == "unloaded"; }, 5));

    auto config_model = registry.set_desired("base", false, "test");
    EXPECT_FALSE(config_model);
    EXPECT_FALSE(registry.register_model(toml_entry("base", tiny_model()), "test"));
    EXPECT_FALSE(registry.register_model("id = \"x\"\npath = 3\n", "test"));
    registry.stop();
    fs::remove_all(dir);
}

TEST(ModelRegistry, TheCliPromotesAndRollsBackARunningServersCanaryAndComparesTheVersions) {
    auto dir = scratch("canary");
    auto c = test_config();
    c.data_dir = (dir / "data").string();
    c.store.url = "";
    TestServer server(c);
    const int port = server.port();
    auto canary = local_entry("tiny-v2", tiny_model());
    canary["version"] = "2";
    canary["canary_of"] = "tiny";
    canary["roles"] = {"completion"};
    ASSERT_EQ(post(port, "/admin/v1/models", canary).status, 202);
    ASSERT_TRUE(eventually([&] { return state_of(port, "tiny-v2") == "serving"; }))
        << admin_entry(port, "tiny-v2");

    auto routed_to = [&] {
        auto r = post_json(port, "/v1/completions",
                           {{"segments", {{"prefix", "def f("}, {"suffix", ""}}}, {"language", "python"}});
        EXPECT_EQ(r.status, 200) << r.body;
        auto route = r.header("x-codepilot-route");
        // Each completion is viewed; every other one is accepted.
        static int n = 0;
        auto id = r.json().value("id", "");
        post_json(port, "/v1/events", {{"type", "view"}, {"completion_id", id}});
        if (++n % 2 == 0) post_json(port, "/v1/events", {{"type", "select"}, {"completion_id", id}});
        return route.substr(0, route.find(';'));
    };
    for (int i = 0; i < 6; ++i) EXPECT_EQ(routed_to(), "model=tiny");
    const std::string flags = " --data-dir " + c.data_dir;
    auto promote = cli("model promote tiny-v2" + flags);
    ASSERT_EQ(promote.code, 0) << promote.out;
    EXPECT_NE(promote.out.find("0% -> 100%"), std::string::npos) << promote.out;
    EXPECT_TRUE(eventually([&] { return routed_to() == "model=tiny-v2"; }, 3)); // within a poll (1 s)
    for (int i = 0; i < 5; ++i) EXPECT_EQ(routed_to(), "model=tiny-v2");
    auto rollback = cli("model rollback tiny" + flags); // the base names its one canary
    ASSERT_EQ(rollback.code, 0) << rollback.out;
    EXPECT_TRUE(eventually([&] { return routed_to() == "model=tiny"; }, 3));

    std::this_thread::sleep_for(std::chrono::milliseconds(1500)); // the server writes outcomes each poll
    auto compare = cli("model compare tiny-v2 --json" + flags);
    ASSERT_EQ(compare.code, 0) << compare.out;
    auto j = json::parse(compare.out);
    EXPECT_EQ(j["base"]["model"], "tiny");
    EXPECT_EQ(j["canary"]["version"], "2");
    EXPECT_GE(j["base"]["requests"].get<int>(), 7);
    EXPECT_GE(j["canary"]["requests"].get<int>(), 5);
    EXPECT_GE(j["canary"]["views"].get<int>(), 5);
    EXPECT_GT(j["canary"]["selects"].get<int>(), 0);
    EXPECT_EQ(j["canary"]["errors"], 0);
    ASSERT_GE(j["notes"].size(), 2u);
    // About half of each version's completions were accepted: no difference to claim.
    const auto note = j["notes"][0].get<std::string>();
    EXPECT_EQ(note.rfind("acceptance: canary ", 0), 0u) << note;
    EXPECT_EQ(note.find("significantly"), std::string::npos) << note;
    auto api = http(port, "GET", "/admin/v1/models/tiny-v2/compare?days=1").json();
    EXPECT_EQ(api["canary"]["requests"], j["canary"]["requests"]);
    auto table = cli("model compare tiny-v2" + flags);
    EXPECT_NE(table.out.find("acceptance_rate"), std::string::npos) << table.out;
    auto list = cli("model list" + flags);
    EXPECT_NE(list.out.find("tiny-v2\t2\tlocal\tregistry\tloaded\ttiny\t0%"), std::string::npos) << list.out;
    auto not_canary = cli("model promote nothing" + flags);
    EXPECT_NE(not_canary.code, 0);
    EXPECT_NE(not_canary.out.find("'nothing'"), std::string::npos) << not_canary.out;
}

TEST(ModelComparison, TheZTestAndLatencyQuantilesFollowTheTextbook) {
    auto t = inference::two_proportion_test(50, 100, 65, 100);
    EXPECT_NEAR(t.z, 2.1456, 0.001);
    EXPECT_NEAR(t.p, 0.0319, 0.001);
    EXPECT_TRUE(t.significant);
    auto small = inference::two_proportion_test(5, 10, 6, 10);
    EXPECT_FALSE(small.enough_data);
    EXPECT_FALSE(small.significant);
    auto same = inference::two_proportion_test(300, 1000, 310, 1000);
    EXPECT_TRUE(same.enough_data);
    EXPECT_FALSE(same.significant);
    store::Outcomes o;
    o.latency_buckets = {3, 0, 1, 0, 0, 0};
    EXPECT_EQ(inference::latency_quantile_ms(o, 0.5), 100);
    EXPECT_EQ(inference::latency_quantile_ms(o, 0.95), 500);
    EXPECT_EQ(inference::latency_quantile_ms(store::Outcomes{}, 0.5), -1);
    store::Outcomes base, canary;
    base.views = 1000;
    base.selects = 280;
    canary.views = 1000;
    canary.selects = 340;
    auto j = inference::compare_versions(base, canary);
    EXPECT_NE(j["notes"][0].get<std::string>().find("significantly better"), std::string::npos)
        << j["notes"][0];
}
