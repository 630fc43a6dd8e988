#pragma once
// Runs the program's event handlers (include/order_pipeline/event_handlers.hpp) on the
// pipeline's outcome events. Per handler and outcome topic, a kafka::partitioned_consumer in
// the handler's own group <group id>.handler.<name>, so each handler reads every event at its
// own pace and one that fails holds back no other. For each event of an outcome the handler
// wants: one PostgreSQL transaction that claims the event id
// (processed_events, consumer 'handler:<name>'), calls the handler and commits; the offset
// is stored after that. A handler that throws is run again in place with exponential
// backoff, then its message is dead-lettered (stage 'handler:<name>'); an undecodable
// message is dead-lettered at once; while PostgreSQL is unavailable, events wait.
//
// Owned by the composition root: construct, start() once, stop() once, from one thread.
// Every connection of `pool` must have the statements of orders::dead_letter_queue and of
// the outbox prepared (dead_letter_queue::prepare_statements, outbox::prepare_statements),
// as the server's pool has. Handlers run on the runtime's own threads.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "order_pipeline/event_handlers.hpp"
#include "orders/adapters/dead_letters.hpp"
#include "orders/domain/retry_policy.hpp"
#include "platform/kafka/partitioned_consumer.hpp"
#include "platform/pg/connection_pool.hpp"
#include "platform/runtime/asio.hpp"

namespace op::handlers {

struct outcome_topics {
  std::string confirmed = "orders.confirmed";  // app.kafka.topics.order-confirmed
  std::string failed = "orders.failed";        // app.kafka.topics.order-failed: cancelled, failed
};

struct runtime_settings {
  std::string bootstrap_servers;
  // The application's consumer group (app.kafka.consumer.group-id); a handler's group is
  // <group_id>.handler.<name>.
  std::string group_id;
  outcome_topics topics;
  // Runs of a throwing handler after its first failure, before the dead letter (app.retry.*).
  orders::retry_policy retry;
  // Handler transactions at once, over all handlers; each holds a connection of the pool.
  std::size_t threads = 2;
};

class event_handler_runtime {
 public:
  // Throws std::invalid_argument, naming the handler, for a malformed or repeated name, no
  // outcomes or no `handle`.
  event_handler_runtime(runtime_settings settings, pg::connection_pool& pool,
                        const orders::dead_letter_queue& dead_letters,
                        std::vector<order_pipeline::event_handler> handlers);
  ~event_handler_runtime();
  event_handler_runtime(const event_handler_runtime&) = delete;
  event_handler_runtime& operator=(const event_handler_runtime&) = delete;

  // Joins the handlers' consumer groups.
  void start();
  // Stops fetching and waits up to `drain` for the events in flight (retries included),
  // then commits the offsets of those finished and leaves the groups. An event still
  // unfinished (its handler retrying, or waiting for the database) is left uncommitted and
  // is delivered again to the group's next member.
  void stop(std::chrono::milliseconds drain);

  // The Kafka consumer group of handler `name`.
  static std::string group_of(const std::string& group_id, const std::string& name);
  // Its claims' consumer in processed_events, and its stage in dead_letters.
  static std::string consumer_of(const std::string& name);

 private:
  struct registered;

  asio::awaitable<void> on_message(const registered& handler,
                                   const kafka::consumed_message& message);
  asio::awaitable<void> dead_letter(const registered& handler,
                                    const kafka::consumed_message& message,
                                    std::optional<std::string> order_id, const char* error_class,
                                    std::string error, int attempts);
  // Sleeps `delay` unless the runtime is abandoning its work first; false then.
  asio::awaitable<bool> pause(std::chrono::milliseconds delay);

  runtime_settings settings_;
  pg::connection_pool& pool_;
  const orders::dead_letter_queue& dead_letters_;
  std::vector<std::unique_ptr<registered>> handlers_;
  // The partitions' strands and the backoff timers; the handlers' transactions.
  asio::thread_pool workers_{1};
  asio::thread_pool blocking_;
  std::vector<std::unique_ptr<kafka::partitioned_consumer>> consumers_;
  std::atomic<bool> abandoning_{false};
  bool stopped_ = false;
};

}  // namespace op::handlers
