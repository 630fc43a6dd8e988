#pragma once
// The HTTP/1.1 listener and its sessions (Boost.Beast, one coroutine and one strand per
// connection). Each connection has a read timeout (which also closes idle keep-alive
// connections), a header limit (431 above it) and a body limit (413 above it); keep-alive and
// pipelined requests are answered in order. At most max_connections are open at once.
// A server-sent events route keeps its connection until the stream ends (see
// event_stream.hpp); on stop() a stream ends at its next event.
//
// Owned by the application; start() and stop() are called from the main thread.

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "platform/config/app_config.hpp"
#include "platform/http/router.hpp"
#include "platform/runtime/asio.hpp"

namespace op::http {

class server {
 public:
  server(asio::io_context& ioc, const config::http_config& config, const router& routes);
  ~server();

  // Binds and starts accepting; throws std::system_error when the port is taken.
  void start();
  std::uint16_t port() const { return port_; }

  // Stops accepting, closes idle connections and lets requests in flight finish; each of
  // those connections is closed after its response. Returns at once.
  void stop();

  // Connections still open.
  std::size_t open_connections() const;

  // Forcibly closes whatever is still open.
  void close_all();

 private:
  struct connection;
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<connection> conn);
  // Answers a server-sent events route on `conn`; the connection closes after it.
  asio::awaitable<void> stream_events(connection& conn, const request& req,
                                      const router::stream_handler& open);

  asio::io_context& ioc_;
  const config::http_config config_;
  const router& routes_;
  asio::ip::tcp::acceptor acceptor_;
  // Cancelled (on the acceptor's strand) whenever a connection closes.
  asio::steady_timer connection_closed_;
  std::atomic<bool> at_limit_logged_{false};
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex connections_mutex_;
  std::unordered_map<connection*, std::weak_ptr<connection>> connections_;
};

}  // namespace op::http
