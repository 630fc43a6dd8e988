// load-generator: places orders on a running order-pipeline over HTTP/1.1 keep-alive
// connections, open-loop at a fixed rate (latency from each request's intended send time) or
// closed-loop with N concurrent clients, then measures end-to-end latency from the orders'
// histories and the completed-orders throughput from the server's Prometheus counters (or its
// /api/admin/metrics status counts). See bench/README.md.

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "platform/runtime/asio.hpp"

namespace {

namespace asio = op::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
using asio::awaitable;
using asio::use_awaitable;

// ---------------------------------------------------------------------------------------------
// Options

struct options {
  std::string host = "127.0.0.1";
  long port = 18080;
  long rate = 0;         // open loop: orders per second
  long concurrency = 0;  // closed loop: clients each with one request in flight
  long connections = 64;
  long duration_s = 20;
  long customers = 100;
  long products = 200;
  long max_items = 5;
  double invalid_share = 0.05;
  double decline_share = 0.05;
  long drain_timeout_s = 60;
  long request_timeout_ms = 5000;
  long sample = 2000;
  long server_pid = 0;
  long seed = 42;
  std::string admin_token = "bench-token";
  bool counts_from_admin = false;  // --counts-from admin
  std::string json_path;
  std::string label;
};

void print_usage(std::ostream& out) {
  out << "usage: load-generator (--rate N | --concurrency N) [options]\n"
         "  --rate N               open loop: N orders/s at fixed intended send times\n"
         "  --concurrency N        closed loop: N clients, each sends when its answer came\n"
         "  --connections N        keep-alive connection pool of the open loop (default 64)\n"
         "  --duration S           seconds of load, 1-600 (default 20)\n"
         "  --host H --port P      server (default 127.0.0.1:18080)\n"
         "  --admin-token T        admin API token (default bench-token)\n"
         "  --customers N          customers created before the load (default 100)\n"
         "  --products N           products created before the load (default 200)\n"
         "  --max-items N          items per order are 1..N (default 5)\n"
         "  --invalid-share F      share of orders with a wrong total (default 0.05)\n"
         "  --decline-share F      share paid with pm_card_chargeDeclined (default 0.05)\n"
         "  --drain-timeout S      max seconds to wait after the load for orders to finish (60)\n"
         "  --counts-from SOURCE   completed and in-flight orders from `metrics` (the server's\n"
         "                         Prometheus counters: one replica, cheap; default) or `admin`\n"
         "                         (GET /api/admin/metrics: every replica, counts every saga)\n"
         "  --request-timeout-ms N POST deadline; also how late a queued send may be (5000)\n"
         "  --sample N             orders whose history is read for end-to-end latency (2000)\n"
         "  --server-pid PID       report the server's CPU time and peak RSS (VmHWM)\n"
         "  --seed N               random seed (default 42)\n"
         "  --json PATH            write the results as JSON\n"
         "  --label TEXT           free text copied into the JSON (e.g. the command line)\n";
}

bool parse_long(const char* text, long min, long max, long& out) {
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, out);
  return ec == std::errc() && ptr == end && out >= min && out <= max;
}

bool parse_share(const char* text, double& out) {
  char* end = nullptr;
  out = std::strtod(text, &end);
  return end && *end == '\0' && end != text && out >= 0.0 && out <= 1.0;
}

// ---------------------------------------------------------------------------------------------
// HTTP client on one keep-alive connection

struct connection {
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  bool open = false;
  explicit connection(const asio::any_io_executor& ex) : stream(ex) {}
  void close() {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.close();
    buffer.clear();
    open = false;
  }
};

struct reply {
  beast::error_code ec;
  unsigned status = 0;
  std::string body;
};

awaitable<reply> exchange(connection& conn, const tcp::endpoint& endpoint,
                          http::request<http::string_body>& req,
                          std::chrono::milliseconds timeout) {
  reply out;
  beast::error_code ec;
  conn.stream.expires_after(timeout);
  if (!conn.open) {
    co_await conn.stream.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      out.ec = ec;
      conn.close();
      co_return out;
    }
    conn.stream.socket().set_option(tcp::no_delay(true), ec);
    conn.open = true;
  }
  co_await http::async_write(conn.stream, req, asio::redirect_error(use_awaitable, ec));
  http::response<http::string_body> res;
  if (!ec)
    co_await http::async_read(conn.stream, conn.buffer, res,
                              asio::redirect_error(use_awaitable, ec));
  if (ec) {
    out.ec = ec;
    conn.close();
    co_return out;
  }
  conn.stream.expires_never();
  out.status = res.result_int();
  out.body = std::move(res.body());
  if (!res.keep_alive())
    conn.close();
  co_return out;
}

http::request<http::string_body> make_request(http::verb verb, const std::string& target,
                                              const std::string& host, std::string body,
                                              const std::string& bearer) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, host);
  req.keep_alive(true);
  if (!bearer.empty())
    req.set(http::field::authorization, "Bearer " + bearer);
  if (verb == http::verb::post || verb == http::verb::put) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
  }
  return req;
}

// ---------------------------------------------------------------------------------------------
// Catalog and order mix

std::string money(std::int64_t cents) {
  return fmt::format("{}.{:02}", cents / 100, cents % 100);
}

struct product {
  std::string id;
  std::string name;
  std::int64_t price_cents;
};

enum class order_kind { valid, invalid_total, declined };

struct placed_order {
  std::string id;
  order_kind kind;
};

// ---------------------------------------------------------------------------------------------
// Shared state (one thread: no locking)

struct latency_stats {
  std::vector<double> ms;
  double percentile(double p) const {
    if (ms.empty())
      return 0.0;
    std::vector<double> sorted = ms;
    std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()));
    rank = std::min(rank, sorted.size() - 1);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(rank), sorted.end());
    return sorted[rank];
  }
  double max() const { return ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end()); }
  double mean() const {
    double sum = 0;
    for (double v : ms)
      sum += v;
    return ms.empty() ? 0.0 : sum / static_cast<double>(ms.size());
  }
};

// The raw counts of one poll: orders in each final state, and orders not final yet.
struct order_counts {
  long confirmed = 0, cancelled = 0, failed = 0, not_final = 0;
};

// Orders that reached each final state since the load started, and orders not final yet.
struct metrics_point {
  double t_s;  // since load start
  long confirmed = 0, cancelled = 0, failed = 0;
  long in_flight = 0;
  long completed() const { return confirmed + cancelled + failed; }
};

struct run_state {
  options opts;
  tcp::endpoint endpoint;
  std::string host_header;
  std::mt19937_64 rng;
  std::vector<std::string> customers;
  std::vector<product> products;

  clock_type::time_point start;
  clock_type::time_point load_end;
  clock_type::time_point last_post_done;
  std::deque<clock_type::time_point> pending;  // open loop: intended send times not yet sent
  std::unique_ptr<asio::steady_timer> wake;    // idle workers wait on it; cancel_one wakes one
  bool dispatch_done = false;
  long workers_running = 0;
  bool load_done = false;

  long attempted = 0;
  long ok = 0;
  long http_errors = 0;
  long timeouts = 0;
  long conn_errors = 0;
  long dropped_late = 0;  // open loop: could not be sent within the request timeout
  std::map<unsigned, long> status_counts;
  std::map<order_kind, long> accepted_by_kind;
  latency_stats post_latency;
  std::vector<placed_order> accepted;
  std::vector<metrics_point> timeline;
  order_counts baseline;  // the counts before the load
};

std::string order_body(run_state& s, order_kind kind) {
  std::uniform_int_distribution<std::size_t> pick_customer(0, s.customers.size() - 1);
  std::uniform_int_distribution<std::size_t> pick_product(0, s.products.size() - 1);
  std::uniform_int_distribution<long> items_n(1, s.opts.max_items);
  std::uniform_int_distribution<long> qty(1, 3);
  const std::string& customer = s.customers[pick_customer(s.rng)];
  long n = items_n(s.rng);
  std::string items;
  std::int64_t total = 0;
  std::vector<std::size_t> chosen;
  for (long i = 0; i < n; ++i) {
    std::size_t p = pick_product(s.rng);
    if (std::find(chosen.begin(), chosen.end(), p) != chosen.end())
      continue;  // one line per product
    chosen.push_back(p);
    long q = qty(s.rng);
    const product& prod = s.products[p];
    total += prod.price_cents * q;
    if (!items.empty())
      items += ',';
    items += fmt::format(R"({{"productId":"{}","productName":"{}","quantity":{},"price":{}}})",
                         prod.id, prod.name, q, money(prod.price_cents));
  }
  if (kind == order_kind::invalid_total)
    total += 1;  // one cent off: VALIDATION_FAILED in the validate stage
  const char* method = kind == order_kind::declined ? "pm_card_chargeDeclined" : "pm_card_visa";
  return fmt::format(
      R"({{"customerId":"{}","customerEmail":"{}@bench.example","totalAmount":{},)"
      R"("shippingAddress":"1 Bench Street, Loadtown","paymentMethod":"{}","items":[{}]}})",
      customer, customer, money(total), method, items);
}

order_kind pick_kind(run_state& s) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double x = u(s.rng);
  if (x < s.opts.invalid_share)
    return order_kind::invalid_total;
  if (x < s.opts.invalid_share + s.opts.decline_share)
    return order_kind::declined;
  return order_kind::valid;
}

std::optional<std::string> order_id_of(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject())
    return std::nullopt;
  auto it = doc.FindMember("orderId");
  if (it == doc.MemberEnd() || !it->value.IsString())
    return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

// Places one order whose send was intended at `intended` and records the outcome.
awaitable<void> place_one(run_state& s, connection& conn, clock_type::time_point intended) {
  order_kind kind = pick_kind(s);
  std::string target = "/api/orders";
  std::string token;
  auto req = make_request(http::verb::post, target, s.host_header, order_body(s, kind), token);
  ++s.attempted;
  auto timeout = std::chrono::milliseconds(s.opts.request_timeout_ms);
  reply r = co_await exchange(conn, s.endpoint, req, timeout);
  auto done = clock_type::now();
  s.last_post_done = std::max(s.last_post_done, done);
  double ms = std::chrono::duration<double, std::milli>(done - intended).count();
  if (r.ec) {
    if (r.ec == beast::error::timeout)
      ++s.timeouts;
    else
      ++s.conn_errors;
    co_return;
  }
  ++s.status_counts[r.status];
  s.post_latency.ms.push_back(ms);  // latency of every answered request, errors included
  if (r.status != 200) {
    ++s.http_errors;
    co_return;
  }
  auto id = order_id_of(r.body);
  if (!id) {
    ++s.http_errors;
    co_return;
  }
  ++s.ok;
  ++s.accepted_by_kind[kind];
  s.accepted.push_back(placed_order{std::move(*id), kind});
}

awaitable<void> dispatcher(run_state& s) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto period = std::chrono::nanoseconds(1'000'000'000LL / s.opts.rate);
  for (std::int64_t i = 0;; ++i) {
    auto intended = s.start + period * i;
    if (intended >= s.load_end)
      break;
    timer.expires_at(intended);
    beast::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    s.pending.push_back(intended);
    s.wake->cancel_one();
  }
  s.dispatch_done = true;
  s.wake->cancel();
}

awaitable<void> open_loop_worker(run_state& s) {
  connection conn(co_await asio::this_coro::executor);
  auto late_limit = std::chrono::milliseconds(s.opts.request_timeout_ms);
  for (;;) {
    while (s.pending.empty() && !s.dispatch_done) {
      beast::error_code ec;
      co_await s.wake->async_wait(asio::redirect_error(use_awaitable, ec));
    }
    if (s.pending.empty())
      break;
    auto intended = s.pending.front();
    s.pending.pop_front();
    if (clock_type::now() - intended > late_limit) {
      ++s.attempted;
      ++s.dropped_late;  // the client could not even send it in time: counts as a timeout
      continue;
    }
    co_await place_one(s, conn, intended);
  }
  conn.close();
  if (--s.workers_running == 0)
    s.load_done = true;
}

awaitable<void> closed_loop_worker(run_state& s) {
  connection conn(co_await asio::this_coro::executor);
  while (clock_type::now() < s.load_end) {
    auto intended = clock_type::now();
    co_await place_one(s, conn, intended);
  }
  conn.close();
  if (--s.workers_running == 0)
    s.load_done = true;
}

// ---------------------------------------------------------------------------------------------
// Admin: catalog and metrics

awaitable<bool> put_json(run_state& s, connection& conn, const std::string& target,
                         const std::string& body) {
  auto req = make_request(http::verb::put, target, s.host_header, body, s.opts.admin_token);
  std::chrono::milliseconds admin_timeout(10000);
  reply r = co_await exchange(conn, s.endpoint, req, admin_timeout);
  if (r.ec || r.status / 100 != 2) {
    std::cerr << "PUT " << target
              << " failed: " << (r.ec ? r.ec.message() : std::to_string(r.status) + " " + r.body)
              << "\n";
    co_return false;
  }
  co_return true;
}

awaitable<bool> create_catalog(run_state& s) {
  connection conn(co_await asio::this_coro::executor);
  std::uniform_int_distribution<std::int64_t> price(100, 20000);
  for (long i = 0; i < s.opts.customers; ++i) {
    std::string id = fmt::format("bench-cust-{:04}", i);
    std::string target = "/api/admin/customers/" + id;
    std::string body = fmt::format(
        R"({{"email":"{}@bench.example","name":"Bench Customer {}","active":true}})", id, i);
    if (!co_await put_json(s, conn, target, body))
      co_return false;
    s.customers.push_back(id);
  }
  for (long i = 0; i < s.opts.products; ++i) {
    product p{fmt::format("bench-prod-{:04}", i), fmt::format("Bench Product {}", i), price(s.rng)};
    std::string target = "/api/admin/products/" + p.id;
    std::string body = fmt::format(R"({{"name":"{}","price":{},"stock":100000000,"active":true}})",
                                   p.name, money(p.price_cents));
    if (!co_await put_json(s, conn, target, body))
      co_return false;
    s.products.push_back(std::move(p));
  }
  conn.close();
  co_return true;
}

// Sums every series of the counters named in `wanted` in a Prometheus text exposition.
std::map<std::string, double> sum_counters(const std::string& text,
                                           const std::vector<std::string>& wanted) {
  std::map<std::string, double> sums;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos)
      end = text.size();
    std::string_view line(text.data() + at, end - at);
    at = end + 1;
    if (line.empty() || line.front() == '#')
      continue;
    auto name_end = line.find_first_of("{ ");
    auto value_at = line.rfind(' ');
    if (name_end == std::string_view::npos || value_at == std::string_view::npos)
      continue;
    std::string name(line.substr(0, name_end));
    if (std::find(wanted.begin(), wanted.end(), name) != wanted.end())
      sums[name] += std::strtod(std::string(line.substr(value_at + 1)).c_str(), nullptr);
  }
  return sums;
}

awaitable<std::optional<order_counts>> read_counts(run_state& s, connection& conn) {
  std::string target = s.opts.counts_from_admin ? "/api/admin/metrics" : "/metrics";
  auto req = make_request(http::verb::get, target, s.host_header, "", s.opts.admin_token);
  std::chrono::milliseconds admin_timeout(10000);
  reply r = co_await exchange(conn, s.endpoint, req, admin_timeout);
  if (r.ec || r.status != 200)
    co_return std::nullopt;
  order_counts c;
  if (!s.opts.counts_from_admin) {
    auto sums = sum_counters(r.body, {"orders_placed_total", "orders_confirmed_total",
                                      "orders_cancelled_total", "orders_failed_total"});
    c.confirmed = static_cast<long>(sums["orders_confirmed_total"]);
    c.cancelled = static_cast<long>(sums["orders_cancelled_total"]);
    c.failed = static_cast<long>(sums["orders_failed_total"]);
    c.not_final =
        static_cast<long>(sums["orders_placed_total"]) - c.confirmed - c.cancelled - c.failed;
    co_return c;
  }
  rapidjson::Document doc;
  doc.Parse(r.body.data(), r.body.size());
  if (doc.HasParseError() || !doc.IsArray())
    co_return std::nullopt;
  for (const auto& row : doc.GetArray()) {
    if (!row.IsObject() || !row.HasMember("status") || !row.HasMember("count"))
      continue;
    if (!row["status"].IsString() || !row["count"].IsInt64())
      continue;
    std::string status = row["status"].GetString();
    auto count = static_cast<long>(row["count"].GetInt64());
    if (status == "CONFIRMED")
      c.confirmed = count;
    else if (status == "CANCELLED")
      c.cancelled = count;
    else if (status == "FAILED")
      c.failed = count;
    else
      c.not_final += count;
  }
  co_return c;
}

// Final states reached since the baseline; in flight as the server sees it now.
awaitable<std::optional<metrics_point>> read_metrics(run_state& s, connection& conn) {
  auto counts = co_await read_counts(s, conn);
  if (!counts)
    co_return std::nullopt;
  metrics_point p;
  p.t_s = std::chrono::duration<double>(clock_type::now() - s.start).count();
  p.confirmed = counts->confirmed - s.baseline.confirmed;
  p.cancelled = counts->cancelled - s.baseline.cancelled;
  p.failed = counts->failed - s.baseline.failed;
  p.in_flight = counts->not_final;
  co_return p;
}

// Polls once per second from the start of the load until the load is over and no order is
// in flight any more, or the drain timeout passed.
awaitable<void> metrics_poller(run_state& s) {
  connection conn(co_await asio::this_coro::executor);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto next = s.start;
  std::optional<clock_type::time_point> drain_deadline;
  for (;;) {
    next += std::chrono::seconds(1);
    timer.expires_at(next);
    beast::error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    auto point = co_await read_metrics(s, conn);
    if (point) {
      s.timeline.push_back(*point);
      fmt::print(stderr, "t={:5.1f}s posted={} completed={} in-flight={}\n", point->t_s, s.ok,
                 point->completed(), point->in_flight);
    }
    if (s.load_done) {
      if (!drain_deadline)
        drain_deadline = clock_type::now() + std::chrono::seconds(s.opts.drain_timeout_s);
      if (point && point->in_flight <= 0)
        break;
      if (clock_type::now() >= *drain_deadline)
        break;
    }
  }
  conn.close();
}

// ---------------------------------------------------------------------------------------------
// End-to-end latency from the orders' histories

std::optional<std::int64_t> parse_rfc3339_ms(const std::string& text) {
  // 2026-11-24T16:41:32.688Z
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

struct e2e_result {
  latency_stats all;
  latency_stats confirmed;
  latency_stats cancelled;
  long read = 0;
  long not_final = 0;
  long errors = 0;
  std::optional<std::int64_t> last_final_ms;
};

awaitable<void> history_reader(run_state& s, std::vector<placed_order>& sample, std::size_t& next,
                               e2e_result& out) {
  connection conn(co_await asio::this_coro::executor);
  while (next < sample.size()) {
    const placed_order& order = sample[next++];
    std::string target = "/api/orders/" + order.id + "/events";
    std::string token;
    auto req = make_request(http::verb::get, target, s.host_header, "", token);
    std::chrono::milliseconds admin_timeout(10000);
    reply r = co_await exchange(conn, s.endpoint, req, admin_timeout);
    if (r.ec || r.status != 200) {
      ++out.errors;
      continue;
    }
    rapidjson::Document doc;
    doc.Parse(r.body.data(), r.body.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("events") ||
        !doc["events"].IsArray()) {
      ++out.errors;
      continue;
    }
    ++out.read;
    std::optional<std::int64_t> placed_at, final_at;
    std::string final_status;
    for (const auto& e : doc["events"].GetArray()) {
      if (!e.IsObject() || !e.HasMember("status") || !e.HasMember("at") ||
          !e["status"].IsString() || !e["at"].IsString())
        continue;
      std::string status = e["status"].GetString();
      auto at = parse_rfc3339_ms(e["at"].GetString());
      if (!at)
        continue;
      if (status == "PLACED" && !placed_at)
        placed_at = at;
      if (status == "CONFIRMED" || status == "CANCELLED") {
        final_at = at;
        final_status = status;
      }
    }
    if (!placed_at || !final_at) {
      ++out.not_final;
      continue;
    }
    double ms = static_cast<double>(*final_at - *placed_at);
    out.all.ms.push_back(ms);
    (final_status == "CONFIRMED" ? out.confirmed : out.cancelled).ms.push_back(ms);
    out.last_final_ms = std::max(out.last_final_ms.value_or(0), *final_at);
  }
  conn.close();
}

// ---------------------------------------------------------------------------------------------
// Process statistics of the server

struct proc_sample {
  double cpu_s = 0;
  long vm_hwm_kib = 0;
  long vm_rss_kib = 0;
  bool ok = false;
};

proc_sample read_proc(long pid) {
  proc_sample out;
  if (pid <= 0)
    return out;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    return out;
  auto close_paren = line.rfind(')');
  if (close_paren == std::string::npos)
    return out;
  std::vector<std::string> fields;
  std::string field;
  for (std::size_t i = close_paren + 2; i <= line.size(); ++i) {
    if (i == line.size() || line[i] == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += line[i];
    }
  }
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  if (fields.size() < 13)
    return out;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  out.cpu_s = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0)
      out.vm_hwm_kib = std::atol(line.c_str() + 6);
    if (line.rfind("VmRSS:", 0) == 0)
      out.vm_rss_kib = std::atol(line.c_str() + 6);
  }
  out.ok = true;
  return out;
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string json_latency(const latency_stats& l) {
  return fmt::format(
      R"({{"count":{},"p50_ms":{:.3f},"p95_ms":{:.3f},"p99_ms":{:.3f},"max_ms":{:.3f},"mean_ms":{:.3f}}})",
      l.ms.size(), l.percentile(50), l.percentile(95), l.percentile(99), l.max(), l.mean());
}

std::string json_escape(const std::string& in) {
  std::string out;
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<int>(c));
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(std::cout);
      return 0;
    }
    if (i + 1 >= argc) {
      std::cerr << "missing value for " << arg << "\n";
      print_usage(std::cerr);
      return 64;
    }
    const char* v = argv[++i];
    bool good = true;
    if (arg == "--rate")
      good = parse_long(v, 1, 100000, opts.rate);
    else if (arg == "--concurrency")
      good = parse_long(v, 1, 4096, opts.concurrency);
    else if (arg == "--connections")
      good = parse_long(v, 1, 4096, opts.connections);
    else if (arg == "--duration")
      good = parse_long(v, 1, 600, opts.duration_s);
    else if (arg == "--host")
      opts.host = v;
    else if (arg == "--port")
      good = parse_long(v, 1, 65535, opts.port);
    else if (arg == "--admin-token")
      opts.admin_token = v;
    else if (arg == "--customers")
      good = parse_long(v, 1, 100000, opts.customers);
    else if (arg == "--products")
      good = parse_long(v, 1, 100000, opts.products);
    else if (arg == "--max-items")
      good = parse_long(v, 1, 100, opts.max_items);
    else if (arg == "--invalid-share")
      good = parse_share(v, opts.invalid_share);
    else if (arg == "--decline-share")
      good = parse_share(v, opts.decline_share);
    else if (arg == "--counts-from") {
      good = std::strcmp(v, "metrics") == 0 || std::strcmp(v, "admin") == 0;
      opts.counts_from_admin = std::strcmp(v, "admin") == 0;
    } else if (arg == "--drain-timeout")
      good = parse_long(v, 0, 3600, opts.drain_timeout_s);
    else if (arg == "--request-timeout-ms")
      good = parse_long(v, 1, 600000, opts.request_timeout_ms);
    else if (arg == "--sample")
      good = parse_long(v, 0, 1000000, opts.sample);
    else if (arg == "--server-pid")
      good = parse_long(v, 1, 1L << 30, opts.server_pid);
    else if (arg == "--seed")
      good = parse_long(v, 0, 1L << 62, opts.seed);
    else if (arg == "--json")
      opts.json_path = v;
    else if (arg == "--label")
      opts.label = v;
    else {
      std::cerr << "unknown argument: " << arg << "\n";
      print_usage(std::cerr);
      return 64;
    }
    if (!good) {
      std::cerr << "invalid value for " << arg << ": " << v << "\n";
      return 64;
    }
  }
  if ((opts.rate > 0) == (opts.concurrency > 0)) {
    std::cerr << "give exactly one of --rate and --concurrency\n";
    print_usage(std::cerr);
    return 64;
  }
  if (opts.invalid_share + opts.decline_share > 1.0) {
    std::cerr << "--invalid-share + --decline-share must not exceed 1\n";
    return 64;
  }

  asio::io_context io(1);
  run_state s;
  s.opts = opts;
  s.rng.seed(static_cast<std::uint64_t>(opts.seed));
  s.host_header = fmt::format("{}:{}", opts.host, opts.port);
  {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(opts.host, ec);
    if (ec) {
      tcp::resolver resolver(io);
      auto results = resolver.resolve(opts.host, std::to_string(opts.port), ec);
      if (ec || results.empty()) {
        std::cerr << "cannot resolve " << opts.host << "\n";
        return 1;
      }
      s.endpoint = *results.begin();
    } else {
      s.endpoint = tcp::endpoint(addr, static_cast<unsigned short>(opts.port));
    }
  }
  s.wake = std::make_unique<asio::steady_timer>(io);
  s.wake->expires_after(std::chrono::hours(24 * 365));

  bool catalog_ok = false;
  e2e_result e2e;
  proc_sample proc_before, proc_after;
  double self_cpu_before = 0, self_cpu_after = 0;
  std::vector<placed_order> sample;

  auto main_flow = [&]() -> awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    fmt::print(stderr, "creating {} customers and {} products...\n", opts.customers, opts.products);
    catalog_ok = co_await create_catalog(s);
    if (!catalog_ok)
      co_return;
    {
      connection conn(ex);
      if (auto counts = co_await read_counts(s, conn))
        s.baseline = *counts;
      conn.close();
    }
    proc_before = read_proc(opts.server_pid);
    self_cpu_before = self_cpu_s();
    s.start = clock_type::now() + std::chrono::milliseconds(10);
    s.load_end = s.start + std::chrono::seconds(opts.duration_s);
    s.last_post_done = s.start;
    if (opts.rate > 0) {
      fmt::print(stderr, "open loop: {} orders/s for {} s over {} connections\n", opts.rate,
                 opts.duration_s, opts.connections);
      s.workers_running = opts.connections;
      asio::co_spawn(ex, dispatcher(s), asio::detached);
      for (long i = 0; i < opts.connections; ++i)
        asio::co_spawn(ex, open_loop_worker(s), asio::detached);
    } else {
      fmt::print(stderr, "closed loop: {} clients for {} s\n", opts.concurrency, opts.duration_s);
      s.workers_running = opts.concurrency;
      asio::steady_timer until_start(ex);
      until_start.expires_at(s.start);
      co_await until_start.async_wait(use_awaitable);
      for (long i = 0; i < opts.concurrency; ++i)
        asio::co_spawn(ex, closed_loop_worker(s), asio::detached);
    }
    co_await metrics_poller(s);
    proc_after = read_proc(opts.server_pid);
    self_cpu_after = self_cpu_s();

    // End-to-end: histories of a random sample of the accepted orders.
    sample = s.accepted;
    std::shuffle(sample.begin(), sample.end(), s.rng);
    if (sample.size() > static_cast<std::size_t>(opts.sample))
      sample.resize(static_cast<std::size_t>(opts.sample));
    fmt::print(stderr, "reading the history of {} orders...\n", sample.size());
    std::size_t next = 0;
    auto readers = std::make_shared<long>(8);
    asio::steady_timer readers_done(ex);
    readers_done.expires_after(std::chrono::hours(1));
    for (int i = 0; i < 8; ++i)
      asio::co_spawn(ex, history_reader(s, sample, next, e2e), [&, readers](std::exception_ptr) {
        if (--*readers == 0)
          readers_done.cancel();
      });
    beast::error_code ec;
    co_await readers_done.async_wait(asio::redirect_error(use_awaitable, ec));
  };
  asio::co_spawn(io, main_flow(), [](std::exception_ptr e) {
    if (e)
      std::rethrow_exception(e);
  });
  io.run();
  if (!catalog_ok) {
    std::cerr << "could not create the catalog (is the server up, is the admin token right?)\n";
    return 1;
  }

  // ---- Figures
  double load_s = static_cast<double>(opts.duration_s);
  double post_window_s = std::chrono::duration<double>(s.last_post_done - s.start).count();
  double post_rate = post_window_s > 0 ? static_cast<double>(s.ok) / post_window_s : 0.0;
  double post_success =
      s.attempted ? 100.0 * static_cast<double>(s.ok) / static_cast<double>(s.attempted) : 0.0;

  long completed = 0, in_flight_left = 0, confirmed = 0, cancelled = 0;
  double last_completion_s = 0, completed_in_window = 0, window_t = 0;
  if (!s.timeline.empty()) {
    const auto& last = s.timeline.back();
    completed = last.completed();
    in_flight_left = last.in_flight;
    confirmed = last.confirmed;
    cancelled = last.cancelled;
    for (const auto& p : s.timeline)
      if (p.completed() == completed) {
        last_completion_s = p.t_s;  // first poll that saw the final count (1 s resolution)
        break;
      }
    for (const auto& p : s.timeline)
      if (p.t_s <= load_s + 0.5) {
        completed_in_window = static_cast<double>(p.completed());
        window_t = p.t_s;
      }
  }
  double completed_rate = last_completion_s > 0 ? completed / last_completion_s : 0.0;
  double window_rate = window_t > 0 ? completed_in_window / window_t : 0.0;
  double completion_share =
      s.ok ? 100.0 * static_cast<double>(completed) / static_cast<double>(s.ok) : 0.0;
  long expected_cancel =
      s.accepted_by_kind[order_kind::invalid_total] + s.accepted_by_kind[order_kind::declined];
  double server_cpu = proc_before.ok && proc_after.ok && last_completion_s > 0
                          ? (proc_after.cpu_s - proc_before.cpu_s) /
                                std::max(last_completion_s, s.timeline.back().t_s)
                          : -1.0;
  double gen_cpu = (self_cpu_after - self_cpu_before) /
                   std::max(1.0, s.timeline.empty() ? load_s : s.timeline.back().t_s);

  std::string mode = opts.rate > 0
                         ? fmt::format(
                               "open loop, {} orders/s intended over {} "
                               "connections",
                               opts.rate, opts.connections)
                         : fmt::format("closed loop, {} concurrent clients", opts.concurrency);
  fmt::print(
      "\nLoad: {}, {} s; {} customers, {} products, 1-{} items/order; invalid share {:.2f},"
      " decline share {:.2f}\n\n",
      mode, opts.duration_s, opts.customers, opts.products, opts.max_items, opts.invalid_share,
      opts.decline_share);
  fmt::print(
      "| Operation | Throughput | Latency (p50) | Latency (p95) | Latency (p99) | Latency (max) "
      "| Success Rate |\n");
  fmt::print("|---|---|---|---|---|---|---|\n");
  fmt::print(
      "| Place order (POST /api/orders) | {:.1f} orders/s | {:.2f} ms | {:.2f} ms | {:.2f} "
      "ms | {:.2f} ms | {:.2f}% ({}/{}) |\n",
      post_rate, s.post_latency.percentile(50), s.post_latency.percentile(95),
      s.post_latency.percentile(99), s.post_latency.max(), post_success, s.ok, s.attempted);
  fmt::print(
      "| Order end-to-end (PLACED -> CONFIRMED/CANCELLED) | {:.1f} completed/s | {:.0f} ms "
      "| {:.0f} ms | {:.0f} ms | {:.0f} ms | {:.2f}% ({}/{} reached a final state) |\n",
      completed_rate, e2e.all.percentile(50), e2e.all.percentile(95), e2e.all.percentile(99),
      e2e.all.max(), completion_share, completed, s.ok);
  fmt::print(
      "|   of which CONFIRMED | {} orders | {:.0f} ms | {:.0f} ms | {:.0f} ms | {:.0f} ms | |\n",
      confirmed, e2e.confirmed.percentile(50), e2e.confirmed.percentile(95),
      e2e.confirmed.percentile(99), e2e.confirmed.max());
  fmt::print(
      "|   of which CANCELLED | {} orders (expected {}) | {:.0f} ms | {:.0f} ms | {:.0f} ms | "
      "{:.0f} ms | |\n",
      cancelled, expected_cancel, e2e.cancelled.percentile(50), e2e.cancelled.percentile(95),
      e2e.cancelled.percentile(99), e2e.cancelled.max());
  fmt::print("\n");
  fmt::print(
      "POST: attempted {}, accepted {}, HTTP errors {}, timeouts {} (of which not sent in "
      "time {}), connection errors {}",
      s.attempted, s.ok, s.http_errors, s.timeouts + s.dropped_late, s.dropped_late, s.conn_errors);
  for (auto [status, count] : s.status_counts)
    fmt::print(", HTTP {}: {}", status, count);
  fmt::print("\n");
  fmt::print(
      "Completed orders: {} in {:.1f} s from the first POST to the last completion "
      "(1 s poll resolution) = {:.1f}/s; during the load window {:.1f}/s; still in flight "
      "at the end: {}\n",
      completed, last_completion_s, completed_rate, window_rate, in_flight_left);
  fmt::print("End-to-end sample: {} histories read, {} not final, {} read errors\n", e2e.read,
             e2e.not_final, e2e.errors);
  if (proc_after.ok)
    fmt::print(
        "Server (pid {}): peak RSS (VmHWM) {:.1f} MiB, RSS now {:.1f} MiB, CPU {:.2f} "
        "cores on average over the run\n",
        opts.server_pid, proc_after.vm_hwm_kib / 1024.0, proc_after.vm_rss_kib / 1024.0,
        server_cpu);
  fmt::print("Load generator CPU: {:.2f} cores on average\n", gen_cpu);

  if (!opts.json_path.empty()) {
    std::string timeline;
    for (const auto& p : s.timeline) {
      if (!timeline.empty())
        timeline += ',';
      timeline += fmt::format(R"({{"t_s":{:.2f},"completed":{},"in_flight":{}}})", p.t_s,
                              p.completed(), p.in_flight);
    }
    std::string statuses;
    for (auto [status, count] : s.status_counts) {
      if (!statuses.empty())
        statuses += ',';
      statuses += fmt::format(R"("{}":{})", status, count);
    }
    std::ofstream out(opts.json_path);
    out << fmt::format(
        R"({{"label":"{}","mode":"{}","rate":{},"concurrency":{},"connections":{},"duration_s":{},)"
        R"("customers":{},"products":{},"max_items":{},"invalid_share":{},"decline_share":{},)"
        R"("post":{{"attempted":{},"accepted":{},"http_errors":{},"timeouts":{},"not_sent_in_time":{},)"
        R"("connection_errors":{},"status_counts":{{{}}},"accepted_per_s":{:.2f},"success_rate":{:.4f},)"
        R"("latency":{}}},)"
        R"("end_to_end":{{"sampled":{},"not_final":{},"read_errors":{},"latency":{},)"
        R"("confirmed_latency":{},"cancelled_latency":{}}},)"
        R"("completed":{{"total":{},"confirmed":{},"cancelled":{},"expected_cancelled":{},)"
        R"("in_flight_at_end":{},"seconds_first_post_to_last_completion":{:.2f},"per_s":{:.2f},)"
        R"("per_s_during_load":{:.2f},"timeline":[{}]}},)"
        R"("server":{{"pid":{},"peak_rss_kib":{},"rss_kib":{},"cpu_cores_avg":{:.3f}}},)"
        R"("load_generator_cpu_cores_avg":{:.3f}}})",
        json_escape(opts.label), opts.rate > 0 ? "open" : "closed", opts.rate, opts.concurrency,
        opts.connections, opts.duration_s, opts.customers, opts.products, opts.max_items,
        opts.invalid_share, opts.decline_share, s.attempted, s.ok, s.http_errors,
        s.timeouts + s.dropped_late, s.dropped_late, s.conn_errors, statuses, post_rate,
        post_success / 100.0, json_latency(s.post_latency), e2e.read, e2e.not_final, e2e.errors,
        json_latency(e2e.all), json_latency(e2e.confirmed), json_latency(e2e.cancelled), completed,
        confirmed, cancelled, expected_cancel, in_flight_left, last_completion_s, completed_rate,
        window_rate, timeline, opts.server_pid, proc_after.vm_hwm_kib, proc_after.vm_rss_kib,
        server_cpu, gen_cpu);
    out << "\n";
    if (!out) {
      std::cerr << "could not write " << opts.json_path << "\n";
      return 1;
    }
    fmt::print("JSON written to {}\n", opts.json_path);
  }
  return 0;
}
