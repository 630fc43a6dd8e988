#pragma once
// The simulator's HTTP/1.1 transport: an acceptor and one coroutine per keep-alive
// connection, each on its own strand. Added latency and held responses wait on Asio timers,
// so a few threads serve thousands of slow requests at once.
//
// Owned by main(); start() is called before the io_context threads run.

#include <cstdint>
#include <string>

#include "gateway_state.hpp"
#include "platform/runtime/asio.hpp"

namespace op::payment_simulator {

class simulator_server {
 public:
  simulator_server(asio::io_context& ioc, gateway_state& state);

  // Binds and starts accepting; returns the bound port (useful with port 0). Throws
  // boost::system::system_error when the address cannot be bound.
  std::uint16_t start(const std::string& address, std::uint16_t port);

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);

  asio::io_context& ioc_;
  gateway_state& state_;
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace op::payment_simulator
