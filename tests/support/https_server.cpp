#include "support/https_server.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <sys/socket.h>

namespace codepilot::testenv {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpsServer::Parts {
    asio::io_context io;
    asio::ssl::context tls{asio::ssl::context::tls_server};
    tcp::acceptor acceptor{io};
};

HttpsServer::HttpsServer(const std::string& cert_file, const std::string& key_file, std::string body)
    : parts_(std::make_unique<Parts>()), body_(std::move(body)) {
    parts_->tls.use_certificate_chain_file(cert_file);
    parts_->tls.use_private_key_file(key_file, asio::ssl::context::pem);
    tcp::endpoint at(asio::ip::make_address("127.0.0.1"), 0);
    parts_->acceptor.open(at.protocol());
    parts_->acceptor.bind(at);
    parts_->acceptor.listen();
    port_ = parts_->acceptor.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
}

HttpsServer::~HttpsServer() {
    stopping_ = true;
    boost::system::error_code ec;
    tcp::socket wake(parts_->io); // the accept below blocks: a connection ends it
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)), ec);
    thread_.join();
}

void HttpsServer::serve() {
    while (!stopping_) {
        tcp::socket socket(parts_->io);
        boost::system::error_code ec;
        parts_->acceptor.accept(socket, ec);
        if (ec || stopping_) continue;
        timeval limit{5, 0}; // a client that stalls cannot hold the test
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        asio::ssl::stream<tcp::socket> stream(std::move(socket), parts_->tls);
        stream.handshake(asio::ssl::stream_base::server, ec);
        if (ec) {
            ++refused_;
            continue;
        }
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> request;
        http::read(stream, buffer, request, ec);
        if (ec) continue;
        http::response<http::string_body> response{http::status::ok, 11};
        response.set(http::field::content_type, "application/json");
        response.body() = body_;
        response.prepare_payload();
        response.keep_alive(false);
        http::write(stream, response, ec);
        if (!ec) ++answered_;
        stream.shutdown(ec);
    }
}

bool HttpsServer::counted(int answered, int refused) const {
    for (int i = 0; i < 500; ++i) {
        if (answered_ == answered && refused_ == refused) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

} // namespace codepilot::testenv
