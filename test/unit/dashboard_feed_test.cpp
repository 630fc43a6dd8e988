// The dashboard's feed: one snapshot per interval whoever watches, the same text for every
// viewer, the database read only while someone watches, and at most max_clients streams.

#include "dashboard/dashboard_feed.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "platform/metrics/registry.hpp"
#include "platform/runtime/asio.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

// A viewer's connection: its stream runs on one io_context for its whole life, as on the
// server's connection strand.
struct viewer {
  explicit viewer(std::unique_ptr<http::event_source> s) : source(std::move(s)) {}
  // Declared first so that it is destroyed last: the stream's timer belongs to it.
  asio::io_context ioc;
  std::unique_ptr<http::event_source> source;

  std::optional<std::string> next_event() {
    std::optional<std::string> out;
    ioc.restart();
    asio::co_spawn(
        ioc, [&]() -> asio::awaitable<void> { out = co_await source->next(); }, asio::detached);
    ioc.run();
    return out;
  }
};

}  // namespace

TEST_CASE("every viewer gets the same snapshot, read from the database once per interval",
          "[dashboard]") {
  metrics::registry registry;
  std::atomic<int> database_reads{0};
  dashboard::dashboard_feed feed(
      {"host-a:8080", 50ms, 2}, registry,
      [] { return std::array<double, dashboard::stage_names.size()>{}; },
      [&] {
        ++database_reads;
        return std::vector<dashboard::order_row>{};
      });
  feed.start();
  std::this_thread::sleep_for(200ms);
  CHECK(database_reads == 0);  // nobody watches: no query

  viewer first(feed.subscribe());
  viewer second(feed.subscribe());
  REQUIRE(first.source);
  REQUIRE(second.source);
  CHECK_FALSE(feed.subscribe());  // max_clients = 2
  CHECK(feed.viewers() == 2);

  auto a = first.next_event();
  REQUIRE(a);
  auto b = second.next_event();
  REQUIRE(b);
  CHECK(a->rfind("event: snapshot\ndata: {\"replica\":\"host-a:8080\"", 0) == 0);
  // The second viewer either got the very same snapshot or the next one; never a render of
  // its own: the reads follow the interval, not the viewers.
  auto reads_before = database_reads.load();
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    REQUIRE(first.next_event());
    REQUIRE(second.next_event());
  }
  auto intervals = (std::chrono::steady_clock::now() - started) / 50ms;
  auto reads = database_reads.load() - reads_before;
  CHECK(reads >= 4);              // a fresh snapshot per event
  CHECK(reads <= intervals + 2);  // one per interval, not one per viewer (10 events sent)

  first.source.reset();
  CHECK(feed.viewers() == 1);
  CHECK(feed.subscribe());  // a place came free (and is given back at once)

  feed.stop();
  CHECK_FALSE(second.next_event());  // a stopped feed ends its streams
}
