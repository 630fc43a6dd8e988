#pragma once
// Order events in the outbox by reference: a saga step's event stores only what the step
// changed (status, cancel reason and detail, updatedAt), and the relay renders the payload
// when it publishes, from the order and its items read in the relay's transaction. An order's
// other fields never change after its placement, so the payload is the one the step saw, and
// the outbox row is a fifth of its size (most of an order's WAL was its events' payloads).

#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "orders/app/ports.hpp"
#include "platform/outbox/outbox.hpp"
#include "platform/outbox/outbox_relay.hpp"

namespace op::orders {

// The name the relay knows the renderer by (the outbox's render_with).
inline constexpr const char* order_payload_renderer = "order";

// What an event of `order` stores: its status, reason, detail and updatedAt.
outbox::rendered_payload order_payload_reference(const order_view& order);

// The renderer: each request's order read with its items, with the stored fields over it,
// as order_json writes it.
std::vector<std::string> render_order_payloads(pqxx::work& tx,
                                               const std::vector<outbox::render_request>& requests);

}  // namespace op::orders
