#include "platform/http/server.hpp"

#include <array>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "platform/log/logging.hpp"

namespace op::http {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;

struct server::connection {
  explicit connection(tcp::socket socket) : stream(std::move(socket)) {}
  beast::tcp_stream stream;
  bool busy = false;  // a request is being handled; touched only on the connection's strand
};

server::server(asio::io_context& ioc, const config::http_config& config, const router& routes)
    : ioc_(ioc),
      config_(config),
      routes_(routes),
      acceptor_(asio::make_strand(ioc)),
      connection_closed_(acceptor_.get_executor()) {}

server::~server() {
  close_all();
}

void server::start() {
  auto address = asio::ip::make_address(config_.address);
  tcp::endpoint endpoint{address, config_.port};
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
  log::get("http")->info("listening on {}:{}", config_.address, port_);
}

asio::awaitable<void> server::accept_loop() {
  while (!stopping_) {
    // At the limit, stop accepting: newcomers wait in the kernel's listen backlog (as with
    // Tomcat's max-connections) until a connection closes and wakes this loop.
    if (open_connections() >= config_.max_connections) {
      if (!at_limit_logged_.exchange(true))
        log::get("http")->warn("{} connections open (server.max-connections); new clients wait",
                               config_.max_connections);
      boost::system::error_code ignored;
      connection_closed_.expires_after(std::chrono::seconds(1));
      co_await connection_closed_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      continue;
    }
    at_limit_logged_ = false;
    boost::system::error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::make_strand(ioc_),
                                                  asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted)
        break;
      log::get("http")->warn("accept failed: {}", ec.message());
      continue;
    }
    socket.set_option(tcp::no_delay(true));
    auto conn = std::make_shared<connection>(std::move(socket));
    {
      std::lock_guard lock(connections_mutex_);
      connections_[conn.get()] = conn;
    }
    auto executor = conn->stream.get_executor();
    asio::co_spawn(executor, serve(conn), asio::detached);
  }
}

asio::awaitable<void> server::serve(std::shared_ptr<connection> conn) {
  beast::flat_buffer buffer;
  for (;;) {
    beast_http::request_parser<beast_http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(config_.header_limit_bytes));
    parser.body_limit(config_.body_limit_bytes);
    conn->stream.expires_after(config_.read_timeout);
    boost::system::error_code read_error;
    co_await beast_http::async_read(conn->stream, buffer, parser,
                                    asio::redirect_error(asio::use_awaitable, read_error));
    if (read_error) {
      std::optional<response> answer;
      if (read_error == beast_http::error::body_limit)
        answer = error_response(
            status::payload_too_large, "payload_too_large", std::nullopt,
            "request body exceeds " + std::to_string(config_.body_limit_bytes) + " bytes");
      else if (read_error == beast_http::error::header_limit)
        answer = error_response(status::request_header_fields_too_large,
                                "request_header_fields_too_large", std::nullopt,
                                "request line and headers exceed " +
                                    std::to_string(config_.header_limit_bytes) + " bytes");
      else if (read_error.category() ==
                   beast_http::make_error_code(beast_http::error::bad_target).category() &&
               read_error != beast_http::error::end_of_stream &&
               read_error != beast_http::error::partial_message)
        answer = error_response(status::bad_request, "bad_request", std::nullopt,
                                "malformed HTTP request: " + read_error.message());
      if (answer) {
        answer->keep_alive(false);
        conn->stream.expires_after(std::chrono::seconds(5));
        boost::system::error_code ignored;
        co_await beast_http::async_write(conn->stream, *answer,
                                         asio::redirect_error(asio::use_awaitable, ignored));
        // Lingering close: closing with unread request bytes makes the kernel send a reset,
        // which can destroy the answer before the client reads it. Stop sending, then
        // discard what the client still sends, for a bounded time and amount.
        conn->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        conn->stream.expires_after(std::chrono::seconds(2));
        std::array<char, 16384> sink;
        std::size_t discarded = 0;
        while (discarded < 4 * config_.body_limit_bytes) {
          auto n = co_await conn->stream.async_read_some(
              asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ignored));
          if (ignored)
            break;
          discarded += n;
        }
      }
      break;
    }
    conn->busy = true;
    const request& req = parser.get();
    if (const auto* open = routes_.event_stream_for(req)) {
      co_await stream_events(*conn, req, *open);
      break;
    }
    response res = co_await routes_.dispatch(req);
    bool keep_alive = req.keep_alive() && !stopping_;
    res.version(req.version());
    res.keep_alive(keep_alive);
    conn->stream.expires_after(config_.read_timeout);
    boost::system::error_code write_error;
    co_await beast_http::async_write(conn->stream, res,
                                     asio::redirect_error(asio::use_awaitable, write_error));
    conn->busy = false;
    if (write_error || !keep_alive)
      break;
  }
  beast::error_code ignored;
  conn->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  conn->stream.close();
  {
    std::lock_guard lock(connections_mutex_);
    connections_.erase(conn.get());
  }
  // Wakes the accept loop if it waits for a free connection slot.
  asio::post(acceptor_.get_executor(), [this] { connection_closed_.cancel(); });
}

asio::awaitable<void> server::stream_events(connection& conn, const request& req,
                                            const router::stream_handler& open) {
  request_context ctx{req, {}, {}};
  std::string path;
  split_target(std::string_view(req.target().data(), req.target().size()), path, ctx.query);
  stream_answer answer = co_await open(ctx);
  boost::system::error_code ec;
  if (!answer.source) {
    response& res = *answer.refusal;
    res.version(req.version());
    res.keep_alive(false);
    conn.stream.expires_after(config_.read_timeout);
    co_await beast_http::async_write(conn.stream, res,
                                     asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  // No Content-Length: the body is every event until the connection closes.
  beast_http::response<beast_http::empty_body> head{status::ok, req.version()};
  head.set(beast_http::field::content_type, "text/event-stream");
  head.set(beast_http::field::cache_control, "no-store");
  head.set("X-Accel-Buffering", "no");  // nginx passes each event on at once
  head.keep_alive(false);
  beast_http::response_serializer<beast_http::empty_body> serializer{head};
  conn.stream.expires_after(config_.read_timeout);
  co_await beast_http::async_write_header(conn.stream, serializer,
                                          asio::redirect_error(asio::use_awaitable, ec));
  while (!ec && !stopping_) {
    // Waiting for the next event is not a client's stall: no timeout meanwhile.
    conn.stream.expires_never();
    auto event = co_await answer.source->next();
    if (!event || stopping_)
      break;
    // A client that stops reading is cut after server.read-timeout.
    conn.stream.expires_after(config_.read_timeout);
    co_await asio::async_write(conn.stream, asio::buffer(*event),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
}

void server::stop() {
  if (stopping_.exchange(true))
    return;
  asio::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    connection_closed_.cancel();
  });
  // Idle connections (waiting for a next request) are closed now; busy ones close after
  // their response because stopping_ turns keep-alive off.
  std::lock_guard lock(connections_mutex_);
  for (auto& [raw, weak] : connections_) {
    if (auto conn = weak.lock()) {
      asio::post(conn->stream.get_executor(), [conn] {
        beast::error_code ignored;
        if (!conn->busy)
          conn->stream.socket().cancel(ignored);
      });
    }
  }
}

std::size_t server::open_connections() const {
  std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

void server::close_all() {
  std::lock_guard lock(connections_mutex_);
  for (auto& [raw, weak] : connections_) {
    if (auto conn = weak.lock()) {
      asio::post(conn->stream.get_executor(), [conn] {
        beast::error_code ignored;
        conn->stream.socket().close(ignored);
      });
    }
  }
}

}  // namespace op::http
