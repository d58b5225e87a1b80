// The whole request path as a client reaches it: each input is the bytes a client sends on
// one TCP connection to a real `codepilot serve` (Application, synthesized model, identity on,
// an owner key). That covers Beast's parser under our limits, routing, the access gate, every
// API family's body parser (OpenAI, Tabby, /infill, auth, admin) and the handlers behind them.
//
// "@KEY@" in an input becomes the owner key, so the corpus reaches authenticated handlers;
// the seeds (fuzz/corpus/fuzz_http/) are one request per route family. The server runs on its
// own threads: a crash or sanitizer report there ends the fuzzer like one in this thread.
#include "app/application.h"
#include "engine/model_synth.h"

#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

using namespace codepilot;

namespace {

std::unique_ptr<app::Application> g_app;
std::string g_owner_key;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_http: %s\n", what.c_str());
    std::exit(2);
}

void start_server() {
    namespace fs = std::filesystem;
    char dir_template[] = "/tmp/codepilot-fuzz-http-XXXXXX";
    if (!mkdtemp(dir_template)) fail("mkdtemp failed");
    const fs::path dir = dir_template;

    engine::SynthOptions model;
    model.output = (dir / "tiny.gguf").string();
    model.vocab = "starcoder";
    model.layers = 1;
    model.embd = 32;
    model.heads = 2;
    model.kv_heads = 1;
    model.ff = 64;
    if (auto st = engine::synth_model(model); !st) fail("cannot synthesize a model: " + st.error().message);

    config::Config c;
    c.data_dir = (dir / "data").string();
    c.server.port = 0;
    c.server.io_threads = 1;
    c.server.worker_threads = 2;
    c.server.shutdown_grace_s = 1;
    c.server.read_timeout_s = 2;
    c.server.header_timeout_s = 2;
    c.model.path = model.output;
    c.model.name = "tiny";
    c.model.parallel = 2;
    c.model.ctx = 1024;
    c.model.threads = 1;
    c.model.max_tokens_cap = 32; // a fuzzer asking for 4096 tokens would only be slow
    c.completion.deadline_ms = 2000;
    c.auth.enabled = true;
    c.store.url = "sqlite::memory:";
    auto app = app::Application::create(c);
    if (!app) fail("cannot start the server: " + app.error().message);
    g_app = std::move(app.value());
    if (!g_app->bootstrap_key_file()) fail("no bootstrap owner key was written");
    std::ifstream(*g_app->bootstrap_key_file()) >> g_owner_key;
    if (g_owner_key.empty()) fail("the bootstrap owner key file is empty");
    g_app->start();
    // Shut down before the statics it logs through (spdlog's registry) are destroyed: an
    // exit handler registered now runs before theirs.
    std::atexit([] {
        g_app->shutdown();
        g_app.reset();
    });
}

std::string with_key(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    for (size_t at = 0; (at = text.find("@KEY@", at)) != std::string::npos; at += g_owner_key.size())
        text.replace(at, 5, g_owner_key);
    return text;
}

// Sends the bytes, half-closes, and reads whatever comes back until the server closes.
void exchange(const std::string& bytes) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) fail("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(g_app->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        fail("connect failed: server gone?");
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break; // the server may answer and close before reading everything
        sent += static_cast<size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    char buffer[16384];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) break; // the server's own timeouts are shorter
        if (::recv(fd, buffer, sizeof buffer, 0) <= 0) break;
    }
    ::close(fd);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off); // every bad request is logged; the fuzzer's output is its own
    start_server();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    exchange(with_key(data, size));
    return 0;
}
