#include "payments/adapters/http_payment_gateway.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "platform/log/logging.hpp"

namespace op::payments {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using steady_clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto first_backoff = 50ms;
constexpr auto max_backoff = 2000ms;
// Below the simulator's and common gateways' keep-alive limits, so a pooled connection is
// rarely closed under us.
constexpr auto idle_limit = 30s;
constexpr std::uint64_t response_body_limit = 1024 * 1024;

struct base_url {
  std::string host;
  std::string port;
  std::uint16_t port_number = 0;
  std::string prefix;  // path before /v1, without a trailing slash
};

base_url parse_base_url(const std::string& url) {
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("payment gateway URL must start with http://: " + url);
  std::string_view rest = std::string_view(url).substr(scheme.size());
  std::string_view authority = rest.substr(0, rest.find('/'));
  base_url out;
  if (authority.size() < rest.size())
    out.prefix = std::string(rest.substr(authority.size()));
  while (!out.prefix.empty() && out.prefix.back() == '/')
    out.prefix.pop_back();
  std::size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    out.port = std::string(authority.substr(colon + 1));
  } else {
    out.host = std::string(authority);
    out.port = "80";
  }
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  bool numeric_port =
      !out.port.empty() && out.port.size() <= 5 &&
      std::all_of(out.port.begin(), out.port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      std::stoi(out.port) > 0 && std::stoi(out.port) <= 65535;
  if (out.host.empty() || !numeric_port)
    throw std::invalid_argument("payment gateway URL has no valid host and port: " + url);
  out.port_number = static_cast<std::uint16_t>(std::stoi(out.port));
  return out;
}

// Order ids travel in a header: refuse anything that could break out of it.
bool safe_for_header(const std::string& text) {
  return !text.empty() && std::none_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// One HTTP exchange as the retry loop sees it.
struct exchange_result {
  boost::system::error_code error;  // connection failure or timeout; status is 0 then
  bool response_started = false;    // some of the answer arrived before `error`
  unsigned status = 0;
  std::string body;
  bool keep_alive = false;
};

bool is_transient(const exchange_result& result) {
  return result.error || result.status >= 500 || result.status == 429 || result.status == 408;
}

// The gateway's error object, {"error":{"code","declineCode","message"}}, as far as present.
struct gateway_error {
  std::string code;
  std::string decline_code;
  std::string message;
};

std::string string_field(const rapidjson::Value& object, const char* name) {
  if (!object.IsObject())
    return {};
  auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString())
    return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

gateway_error parse_error(const std::string& body) {
  gateway_error out;
  rapidjson::Document document;
  document.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (document.HasParseError() || !document.IsObject())
    return out;
  auto error = document.FindMember("error");
  if (error == document.MemberEnd())
    return out;
  out.code = string_field(error->value, "code");
  out.decline_code = string_field(error->value, "declineCode");
  out.message = string_field(error->value, "message");
  return out;
}

std::string describe_failure(const exchange_result& result, std::chrono::milliseconds timeout,
                             int attempts) {
  std::string what;
  if (result.error == beast::error::timeout)
    what = fmt::format("no answer within {} ms", timeout.count());
  else if (result.error)
    what = "connection failed: " + result.error.message();
  else
    what = fmt::format("HTTP {}", result.status);
  if (!result.error) {
    auto error = parse_error(result.body);
    if (!error.message.empty())
      what += ": " + error.message;
  }
  return fmt::format("payment gateway unavailable after {} attempt(s), last: {}", attempts, what);
}

std::string rejection_message(const exchange_result& result) {
  auto error = parse_error(result.body);
  return fmt::format("payment gateway rejected the request (HTTP {}{}{})", result.status,
                     error.code.empty() ? "" : ", ", error.code) +
         (error.message.empty() ? std::string() : ": " + error.message);
}

}  // namespace

class http_payment_gateway::impl {
 public:
  impl(asio::io_context& ioc, const std::string& url, std::chrono::milliseconds timeout,
       int max_retries, std::size_t max_connections)
      : ioc_(ioc),
        url_(parse_base_url(url)),
        host_header_(url_.host.find(':') == std::string::npos ? url_.host + ":" + url_.port
                                                              : "[" + url_.host + "]:" + url_.port),
        timeout_(timeout),
        max_retries_(std::max(0, max_retries)),
        max_connections_(std::max<std::size_t>(1, max_connections)) {}

  asio::awaitable<charge_result> charge(charge_request request);
  asio::awaitable<refund_result> refund(std::string order_id);

 private:
  // A keep-alive connection with its own strand: Beast's stream timeouts run handlers on the
  // stream's executor, so all I/O on one connection must be serialised there.
  struct connection {
    explicit connection(asio::io_context& ioc) : stream(asio::make_strand(ioc)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bool connected = false;
    steady_clock::time_point last_used{};
  };

  // A caller parked in acquire(): where to put the connection, and how to resume it.
  struct waiter {
    std::unique_ptr<connection>* destination;
    std::function<void()> wake;
  };

  // A connection taken from the pool; returns it (or its slot) when destroyed.
  class lease {
   public:
    lease(impl& owner, std::unique_ptr<connection> conn)
        : owner_(owner), connection_(std::move(conn)) {}
    ~lease() { owner_.release(std::move(connection_), reusable_); }
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;

    connection& get() { return *connection_; }
    void replace() { connection_ = std::make_unique<connection>(owner_.ioc_); }
    void keep(bool reusable) { reusable_ = reusable; }

   private:
    impl& owner_;
    std::unique_ptr<connection> connection_;
    bool reusable_ = false;
  };

  asio::awaitable<exchange_result> send(std::string path, std::string idempotency_key,
                                        std::string body, int& attempts);
  asio::awaitable<exchange_result> attempt(const http::request<http::string_body>& req);
  asio::awaitable<exchange_result> exchange(connection& conn,
                                            const http::request<http::string_body>& req,
                                            steady_clock::time_point deadline);

  asio::awaitable<std::unique_ptr<connection>> acquire();
  std::unique_ptr<connection> try_acquire_locked();
  void release(std::unique_ptr<connection> conn, bool reusable);

  asio::io_context& ioc_;
  const base_url url_;
  const std::string host_header_;
  const std::chrono::milliseconds timeout_;
  const int max_retries_;
  const std::size_t max_connections_;

  std::mutex mutex_;                               // guards the pool below
  std::vector<std::unique_ptr<connection>> idle_;  // most recently used last
  std::size_t open_ = 0;                           // idle + leased
  std::deque<waiter> waiters_;                     // callers waiting for a slot, oldest first
};

std::unique_ptr<http_payment_gateway::impl::connection>
http_payment_gateway::impl::try_acquire_locked() {
  auto now = steady_clock::now();
  // The oldest idle connections sit at the front; past idle_limit the gateway may have
  // closed them, so they are dropped rather than tried.
  auto stale = std::find_if(idle_.begin(), idle_.end(),
                            [&](const auto& conn) { return now - conn->last_used < idle_limit; });
  open_ -= static_cast<std::size_t>(stale - idle_.begin());
  idle_.erase(idle_.begin(), stale);
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  if (open_ < max_connections_) {
    ++open_;
    return std::make_unique<connection>(ioc_);
  }
  return nullptr;
}

asio::awaitable<std::unique_ptr<http_payment_gateway::impl::connection>>
http_payment_gateway::impl::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (waiters_.empty())
      if (auto conn = try_acquire_locked())
        co_return conn;
  }
  // Every slot is busy: park until release() hands one over. Callers are served first come,
  // first served; without the hand-over a caller could lose every freed slot to newcomers.
  std::unique_ptr<connection> handed;
  co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [this, &handed](auto handler) {
        std::unique_lock lock(mutex_);
        // Checked again under the lock, so a release since the first check is not missed.
        if (waiters_.empty())
          handed = try_acquire_locked();
        if (handed) {
          lock.unlock();
          asio::post(std::move(handler));
          return;
        }
        auto parked = std::make_shared<decltype(handler)>(std::move(handler));
        waiters_.push_back({&handed, [parked] { asio::post(std::move(*parked)); }});
      },
      asio::use_awaitable);
  co_return std::move(handed);
}

void http_payment_gateway::impl::release(std::unique_ptr<connection> conn, bool reusable) {
  std::unique_ptr<connection> closed;  // destroyed after the lock is released
  std::function<void()> wake;
  {
    std::lock_guard lock(mutex_);
    if (!reusable)
      closed = std::move(conn);
    if (!waiters_.empty()) {
      // The slot passes straight to the longest waiter, with a fresh connection in place of
      // one that failed.
      waiter next = std::move(waiters_.front());
      waiters_.pop_front();
      *next.destination = conn ? std::move(conn) : std::make_unique<connection>(ioc_);
      wake = std::move(next.wake);
    } else if (conn) {
      conn->last_used = steady_clock::now();
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
  }
  if (wake)
    wake();
}

asio::awaitable<exchange_result> http_payment_gateway::impl::exchange(
    connection& conn, const http::request<http::string_body>& req,
    steady_clock::time_point deadline) {
  exchange_result out;
  beast::tcp_stream& stream = conn.stream;
  stream.expires_at(deadline);
  if (!conn.connected) {
    boost::system::error_code address_error;
    auto address = asio::ip::make_address(url_.host, address_error);
    if (!address_error) {
      tcp::endpoint endpoint(address, url_.port_number);
      co_await stream.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, out.error));
    } else {
      // The resolver is not covered by the stream's timeout: a timer cancels it at the
      // deadline. It holds the resolver by shared_ptr so a late timer never outlives it.
      auto resolver = std::make_shared<tcp::resolver>(stream.get_executor());
      asio::steady_timer guard(stream.get_executor(), deadline);
      guard.async_wait([resolver](boost::system::error_code ec) {
        if (!ec)
          resolver->cancel();
      });
      auto endpoints = co_await resolver->async_resolve(
          url_.host, url_.port, asio::redirect_error(asio::use_awaitable, out.error));
      guard.cancel();
      if (out.error == asio::error::operation_aborted)
        out.error = beast::error::timeout;
      if (!out.error)
        co_await stream.async_connect(endpoints,
                                      asio::redirect_error(asio::use_awaitable, out.error));
    }
    if (out.error)
      co_return out;
    boost::system::error_code ignored;
    stream.socket().set_option(tcp::no_delay(true), ignored);
    conn.connected = true;
  }

  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, out.error));
  if (out.error)
    co_return out;
  http::response_parser<http::string_body> parser;
  parser.body_limit(response_body_limit);
  co_await http::async_read(stream, conn.buffer, parser,
                            asio::redirect_error(asio::use_awaitable, out.error));
  out.response_started = parser.got_some();
  if (out.error)
    co_return out;
  stream.expires_never();
  auto response = parser.release();
  out.status = response.result_int();
  out.keep_alive = response.keep_alive();
  out.body = std::move(response.body());
  co_return out;
}

asio::awaitable<exchange_result> http_payment_gateway::impl::attempt(
    const http::request<http::string_body>& req) {
  lease leased(*this, co_await acquire());
  // The clock starts once a connection is ours: waiting for a pool slot is bounded by the
  // other callers' deadlines, and must not turn a burst of orders into timeouts.
  auto deadline = steady_clock::now() + timeout_;
  bool reused = leased.get().connected;
  auto strand = leased.get().stream.get_executor();
  exchange_result result =
      co_await asio::co_spawn(strand, exchange(leased.get(), req, deadline), asio::use_awaitable);
  if (result.error && reused && !result.response_started && result.error != beast::error::timeout) {
    // The gateway most likely closed the idle connection just before we wrote: try once
    // more on a fresh one within the same deadline. The idempotency key makes this safe.
    leased.replace();
    strand = leased.get().stream.get_executor();
    result =
        co_await asio::co_spawn(strand, exchange(leased.get(), req, deadline), asio::use_awaitable);
  }
  leased.keep(!result.error && result.keep_alive);
  co_return result;
}

asio::awaitable<exchange_result> http_payment_gateway::impl::send(std::string path,
                                                                  std::string idempotency_key,
                                                                  std::string body, int& attempts) {
  http::request<http::string_body> req{http::verb::post, url_.prefix + path, 11};
  req.set(http::field::host, host_header_);
  req.set(http::field::user_agent, "order-pipeline");
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "application/json");
  req.set("Idempotency-Key", idempotency_key);
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();

  asio::steady_timer backoff(co_await asio::this_coro::executor);
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(first_backoff);
  for (attempts = 1;; ++attempts) {
    exchange_result result = co_await attempt(req);
    if (!is_transient(result) || attempts > max_retries_)
      co_return result;
    log::get("payments")
        ->debug("{} {}: attempt {} failed ({}), retrying in {} ms", path, idempotency_key, attempts,
                result.error ? result.error.message() : fmt::format("HTTP {}", result.status),
                delay.count());
    backoff.expires_after(delay);
    boost::system::error_code ignored;
    co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    delay = std::min<std::chrono::milliseconds>(delay * 2, max_backoff);
  }
}

asio::awaitable<charge_result> http_payment_gateway::impl::charge(charge_request request) {
  if (!safe_for_header(request.order_id))
    co_return charge_result{gateway_outcome::declined,
                            {},
                            "invalid_request",
                            "order id is empty or has control characters"};
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("orderId");
  writer.String(request.order_id.data(), static_cast<rapidjson::SizeType>(request.order_id.size()));
  writer.Key("amountCents");
  writer.Int64(request.amount_cents);
  writer.Key("currency");
  writer.String("USD");
  writer.Key("paymentMethod");
  writer.String(request.payment_method.data(),
                static_cast<rapidjson::SizeType>(request.payment_method.size()));
  writer.EndObject();

  int attempts = 0;
  // Named locals, not temporaries: see the coroutine argument rule in platform/runtime/asio.hpp.
  std::string path = "/v1/charges";
  std::string key = "charge-" + request.order_id;
  std::string body(buffer.GetString(), buffer.GetSize());
  exchange_result result =
      co_await send(std::move(path), std::move(key), std::move(body), attempts);
  charge_result out;
  if (is_transient(result)) {
    out.outcome = gateway_outcome::transient_failure;
    out.message = describe_failure(result, timeout_, attempts);
  } else if (result.status >= 200 && result.status < 300) {
    rapidjson::Document document;
    document.Parse<rapidjson::kParseIterativeFlag>(result.body.data(), result.body.size());
    if (!document.HasParseError() && string_field(document, "status") == "succeeded") {
      out.outcome = gateway_outcome::approved;
      out.charge_id = string_field(document, "id");
      out.message = "charge succeeded";
    } else {
      // We cannot tell what happened; a later retry replays the gateway's stored answer.
      out.outcome = gateway_outcome::transient_failure;
      out.message =
          "payment gateway answered " + std::to_string(result.status) + " with an unexpected body";
    }
  } else if (result.status == 402) {
    auto error = parse_error(result.body);
    out.outcome = gateway_outcome::declined;
    out.decline_code = !error.decline_code.empty() ? error.decline_code
                       : !error.code.empty()       ? error.code
                                                   : "generic_decline";
    out.message = error.message.empty() ? "card declined" : error.message;
  } else if (result.status >= 400 && result.status < 500) {
    auto error = parse_error(result.body);
    out.outcome = gateway_outcome::declined;
    out.decline_code = error.code.empty() ? "invalid_request" : error.code;
    out.message = rejection_message(result);
  } else {
    out.outcome = gateway_outcome::transient_failure;
    out.message = fmt::format("payment gateway answered unexpected HTTP {}", result.status);
  }
  co_return out;
}

asio::awaitable<refund_result> http_payment_gateway::impl::refund(std::string order_id) {
  if (!safe_for_header(order_id))
    co_return refund_result{gateway_outcome::declined, 0,
                            "order id is empty or has control characters"};
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("orderId");
  writer.String(order_id.data(), static_cast<rapidjson::SizeType>(order_id.size()));
  writer.EndObject();

  int attempts = 0;
  std::string path = "/v1/refunds";
  std::string key = "refund-" + order_id;
  std::string body(buffer.GetString(), buffer.GetSize());
  exchange_result result =
      co_await send(std::move(path), std::move(key), std::move(body), attempts);
  refund_result out;
  if (is_transient(result)) {
    out.outcome = gateway_outcome::transient_failure;
    out.message = describe_failure(result, timeout_, attempts);
  } else if (result.status >= 200 && result.status < 300) {
    rapidjson::Document document;
    document.Parse<rapidjson::kParseIterativeFlag>(result.body.data(), result.body.size());
    std::string status = document.HasParseError() ? "" : string_field(document, "status");
    auto amount = document.IsObject() ? document.FindMember("amountCents") : document.MemberEnd();
    bool has_amount =
        document.IsObject() && amount != document.MemberEnd() && amount->value.IsInt64();
    if (status == "succeeded" && has_amount) {
      out.outcome = gateway_outcome::approved;
      out.refunded_cents = amount->value.GetInt64();
      out.message = "refund succeeded";
    } else if (status == "no_charge") {
      out.outcome = gateway_outcome::approved;
      out.message = "nothing to refund: the order has no charge";
    } else {
      out.outcome = gateway_outcome::transient_failure;
      out.message =
          "payment gateway answered " + std::to_string(result.status) + " with an unexpected body";
    }
  } else if (result.status >= 400 && result.status < 500) {
    out.outcome = gateway_outcome::declined;
    out.message = rejection_message(result);
  } else {
    out.outcome = gateway_outcome::transient_failure;
    out.message = fmt::format("payment gateway answered unexpected HTTP {}", result.status);
  }
  co_return out;
}

http_payment_gateway::http_payment_gateway(asio::io_context& ioc, const std::string& base_url,
                                           std::chrono::milliseconds timeout, int max_retries,
                                           std::size_t max_connections)
    : impl_(std::make_unique<impl>(ioc, base_url, timeout, max_retries, max_connections)) {}

http_payment_gateway::~http_payment_gateway() = default;

asio::awaitable<charge_result> http_payment_gateway::charge(charge_request request) {
  co_return co_await impl_->charge(std::move(request));
}

asio::awaitable<refund_result> http_payment_gateway::refund(std::string order_id) {
  co_return co_await impl_->refund(std::move(order_id));
}

}  // namespace op::payments
