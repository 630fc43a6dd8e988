#pragma once
// Wakes the requests that wait for an order's final state (GET /api/orders/{id}?waitFor=final)
// when the order's outcome event is published on orders.confirmed or orders.failed, whichever
// replica ran the step: every replica reads those topics whole, from their end, outside any
// consumer group (kafka::broadcast_consumer). The stages' transactions do nothing more for it.
//
// Owned by the composition root; start()/stop() from one thread.

#include <string>
#include <vector>

#include "platform/kafka/broadcast_consumer.hpp"
#include "platform/runtime/waiter_registry.hpp"

namespace op::orders {

class order_outcome_listener {
 public:
  // `outcome_topics`: the topics of the final events (orders.confirmed, orders.failed), whose
  // messages are keyed by order id.
  order_outcome_listener(const std::string& bootstrap_servers,
                         std::vector<std::string> outcome_topics, runtime::waiter_registry& waiters)
      : consumer_(bootstrap_servers, std::move(outcome_topics),
                  [&waiters](const kafka::consumed_message& m) { waiters.wake(m.key); }) {}

  void start() { consumer_.start(); }
  void stop() { consumer_.stop(); }
  bool listening() const { return consumer_.assigned(); }

 private:
  kafka::broadcast_consumer consumer_;
};

}  // namespace op::orders
