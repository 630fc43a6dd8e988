#include "handlers/event_handler_runtime.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>

#include "handlers/order_event_decoder.hpp"
#include "platform/log/logging.hpp"
#include "platform/metrics/registry.hpp"
#include "platform/pg/pg_errors.hpp"
#include "platform/runtime/offload.hpp"

namespace op::handlers {

using std::chrono::milliseconds;

struct event_handler_runtime::registered {
  order_pipeline::event_handler handler;
  std::string consumer;  // handler:<name>
  metrics::counter& handled;
  metrics::counter& duplicate;
  metrics::counter& dead_lettered;
};

namespace {

metrics::counter& events_counter(const std::string& handler, const char* outcome) {
  return metrics::global().get_counter(
      "pipeline_handler_events_total",
      "Outcome events by event handler: handled, duplicate (handled before) or dead_lettered.",
      {{"handler", handler}, {"outcome", outcome}});
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] < 'a' || name[0] > 'z')
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

double unit_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

// Waits for the database grow to 5 s between tries: an outage may last a while.
milliseconds unavailable_delay(int waits) {
  return milliseconds(std::min(5000, 100 << std::min(waits, 6)));
}

const char* to_string(order_pipeline::outcome o) {
  switch (o) {
    case order_pipeline::outcome::confirmed:
      return "confirmed";
    case order_pipeline::outcome::cancelled:
      return "cancelled";
    case order_pipeline::outcome::failed:
      return "failed";
  }
  return "unknown";
}

}  // namespace

std::string event_handler_runtime::group_of(const std::string& group_id, const std::string& name) {
  return group_id + ".handler." + name;
}

std::string event_handler_runtime::consumer_of(const std::string& name) {
  return "handler:" + name;
}

event_handler_runtime::event_handler_runtime(runtime_settings settings, pg::connection_pool& pool,
                                             const orders::dead_letter_queue& dead_letters,
                                             std::vector<order_pipeline::event_handler> handlers)
    : settings_(std::move(settings)),
      pool_(pool),
      dead_letters_(dead_letters),
      blocking_(std::max<std::size_t>(1, settings_.threads)) {
  std::set<std::string> names;
  for (auto& h : handlers) {
    if (!valid_name(h.name))
      throw std::invalid_argument(fmt::format(
          "event handler '{}': the name must match [a-z][a-z0-9-]* and be at most 64 characters",
          h.name));
    if (!names.insert(h.name).second)
      throw std::invalid_argument(fmt::format("event handler '{}' is registered twice", h.name));
    if (h.outcomes.empty())
      throw std::invalid_argument(fmt::format("event handler '{}' wants no outcome", h.name));
    if (!h.handle)
      throw std::invalid_argument(fmt::format("event handler '{}' has no handle function", h.name));
    auto name = h.name;
    // Every series exists from the start, at zero, so rates and alerts work at once.
    handlers_.push_back(std::make_unique<registered>(
        registered{std::move(h), consumer_of(name), events_counter(name, "handled"),
                   events_counter(name, "duplicate"), events_counter(name, "dead_lettered")}));
  }
  using order_pipeline::outcome;
  for (const auto& r : handlers_) {
    const auto& wanted = r->handler.outcomes;
    std::vector<std::string> topics;
    if (wanted.count(outcome::confirmed))
      topics.push_back(settings_.topics.confirmed);
    if (wanted.count(outcome::cancelled) || wanted.count(outcome::failed))
      topics.push_back(settings_.topics.failed);
    // One consumer per topic, as the stages have: members of one group may read different
    // topics. Per order, only one outcome event is ever published, so nothing is lost by the
    // two topics being read independently.
    for (const auto& topic : topics)
      consumers_.push_back(std::make_unique<kafka::partitioned_consumer>(
          kafka::consumer_settings{settings_.bootstrap_servers,
                                   group_of(settings_.group_id, r->handler.name), topic, 256},
          workers_, [this, handler = r.get()](const kafka::consumed_message& m) {
            return on_message(*handler, m);
          }));
  }
}

event_handler_runtime::~event_handler_runtime() {
  stop(milliseconds(0));
}

void event_handler_runtime::start() {
  for (auto& consumer : consumers_)
    consumer->start();
}

void event_handler_runtime::stop(milliseconds drain) {
  if (stopped_)
    return;
  stopped_ = true;
  auto deadline = std::chrono::steady_clock::now() + drain;
  for (auto& consumer : consumers_)
    consumer->stop(std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(
                                                 deadline - std::chrono::steady_clock::now())));
  // The offsets are committed: what still retries or waits is delivered again later.
  abandoning_ = true;
  workers_.join();
  blocking_.join();
}

asio::awaitable<bool> event_handler_runtime::pause(milliseconds delay) {
  // In short slices, so that stop() need not wait out a long backoff.
  auto until = std::chrono::steady_clock::now() + delay;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!abandoning_) {
    auto left = until - std::chrono::steady_clock::now();
    if (left <= milliseconds(0))
      co_return true;
    timer.expires_after(std::min<std::chrono::steady_clock::duration>(left, milliseconds(100)));
    co_await timer.async_wait(asio::use_awaitable);
  }
  co_return false;
}

asio::awaitable<void> event_handler_runtime::on_message(const registered& handler,
                                                        const kafka::consumed_message& message) {
  if (abandoning_)
    co_return;  // stopping: not committed, delivered again later
  auto logger = log::get("handlers");
  auto event = decode_order_event(message.value);
  if (!event) {
    // Named locals, not temporaries, as coroutine arguments (see platform/runtime/asio.hpp).
    std::optional<std::string> no_order;
    std::string problem =
        "not an order outcome event (an envelope with a UUID eventId, an orderId and a final"
        " order as payload)";
    co_await dead_letter(handler, message, std::move(no_order), orders::error_undecodable,
                         std::move(problem), 1);
    co_return;
  }
  if (!handler.handler.outcomes.count(event->result)) {
    logger->debug("{}: order {} is {}: not wanted", handler.consumer, event->order_id,
                  to_string(event->result));
    co_return;
  }
  // The claim, the handler's effects and the commit in one transaction: a duplicate finds
  // the claim of a committed transaction (or waits on that of one in flight) and does nothing.
  std::function<bool()> claim_and_handle = [&] {
    return pool_.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      if (tx.exec_params("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)"
                         " ON CONFLICT DO NOTHING",
                         handler.consumer, event->event_id)
              .affected_rows() == 0)
        return false;
      handler.handler.handle(tx, *event);
      tx.commit();
      return true;
    });
  };
  for (int failures = 0, waits = 0;;) {
    std::string error;
    bool unavailable = false;
    try {
      bool handled = co_await runtime::offload(blocking_, claim_and_handle);
      (handled ? handler.handled : handler.duplicate).inc();
      co_return;
    } catch (const std::exception& e) {
      error = e.what();
      unavailable = pg::is_unavailable(e);
    } catch (...) {
      error = "an exception of an unknown type";
    }
    if (unavailable) {
      // Not the handler's fault, and not counted: an outage would dead-letter every event.
      auto delay = unavailable_delay(++waits);
      logger->warn("{}: order {} waits {} ms for the database: {}", handler.consumer,
                   event->order_id, delay.count(), error);
      if (!co_await pause(delay))
        co_return;
      continue;
    }
    ++failures;
    if (auto delay = orders::retry_delay(settings_.retry, failures, unit_random())) {
      logger->warn("{}: order {} runs again in {} ms (failed attempts: {}): {}", handler.consumer,
                   event->order_id, delay->count(), failures, error);
      if (!co_await pause(*delay))
        co_return;
      continue;
    }
    std::optional<std::string> order_id = event->order_id;
    co_await dead_letter(handler, message, std::move(order_id), orders::error_retries_exhausted,
                         std::move(error), failures);
    co_return;
  }
}

asio::awaitable<void> event_handler_runtime::dead_letter(const registered& handler,
                                                         const kafka::consumed_message& message,
                                                         std::optional<std::string> order_id,
                                                         const char* error_class, std::string error,
                                                         int attempts) {
  orders::failed_message failed{handler.consumer, std::move(order_id), &message,
                                error_class,      std::move(error),    attempts,
                                std::nullopt};
  std::function<bool()> park = [&] {
    return pool_.with_connection([&](pqxx::connection& c) {
      pqxx::work tx(c);
      dead_letters_.park(tx, failed);
      tx.commit();
      return true;
    });
  };
  // Until it is parked: moving on without would lose the message.
  for (int waits = 1;; ++waits) {
    std::string problem;
    try {
      co_await runtime::offload(blocking_, park);
      handler.dead_lettered.inc();
      co_return;
    } catch (const std::exception& e) {
      if (!pg::is_unavailable(e))
        problem = e.what();
    } catch (...) {
      problem = "an exception of an unknown type";
    }
    if (!problem.empty())
      log::get("handlers")
          ->error("{}: cannot dead-letter {}[{}]@{}, trying again: {}", handler.consumer,
                  message.topic, message.partition, message.offset, problem);
    if (!co_await pause(unavailable_delay(waits)))
      co_return;
  }
}

}  // namespace op::handlers
