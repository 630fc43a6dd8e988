#include "simulator_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <iostream>

#include "gateway_api.hpp"

namespace op::payment_simulator {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {
constexpr auto idle_timeout = 120s;  // longer than a client pool keeps an idle connection
constexpr auto write_timeout = 30s;
constexpr std::uint64_t body_limit = 64 * 1024;
}  // namespace

simulator_server::simulator_server(asio::io_context& ioc, gateway_state& state)
    : ioc_(ioc), state_(state), acceptor_(asio::make_strand(ioc)) {}

std::uint16_t simulator_server::start(const std::string& address, std::uint16_t port) {
  tcp::endpoint endpoint{asio::ip::make_address(address), port};
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
  return acceptor_.local_endpoint().port();
}

asio::awaitable<void> simulator_server::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::make_strand(ioc_),
                                                  asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      // Out of descriptors and the like: report, pause briefly, keep serving.
      std::cerr << "accept failed: " << ec.message() << std::endl;
      asio::steady_timer pause(acceptor_.get_executor(), 50ms);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> simulator_server::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  asio::steady_timer timer(stream.get_executor());
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(body_limit);
    stream.expires_after(idle_timeout);
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      break;
    stream.expires_never();
    request req = parser.release();

    std::string_view target(req.target().data(), req.target().size());
    bool gateway_call = is_gateway_call(target);
    if (gateway_call) {
      if (auto latency = state_.begin_request(); latency > 0ms) {
        timer.expires_after(latency);
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    gateway_reply reply = handle_request(state_, req);
    if (gateway_call) {
      if (auto hold = std::chrono::milliseconds(state_.settings().timeout_ms); hold > 0ms) {
        timer.expires_after(hold);
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }

    http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
    res.set(http::field::server, "payment-gateway-simulator");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(reply.body);
    res.prepare_payload();
    stream.expires_after(write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !res.keep_alive())
      break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
}

}  // namespace op::payment_simulator
