#pragma once
// Reads an outcome event as the outbox relay publishes it on orders.confirmed and
// orders.failed: the envelope {"eventId","eventType","orderId","occurredAt","payload":{order}}
// around the order JSON of the orders API. Apart from Kafka and PostgreSQL, so it can be
// unit-tested and fuzzed.

#include <optional>
#include <string_view>

#include "order_pipeline/event_handlers.hpp"

namespace op::handlers {

// nullopt for anything that is not such an event (a poison pill): not JSON, no UUID event
// id, no order, an order whose status is not final, an amount that is not exact money, ...
std::optional<order_pipeline::order_event> decode_order_event(std::string_view value);

}  // namespace op::handlers
