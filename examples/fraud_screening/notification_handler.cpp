#include "notification_handler.hpp"

#include <string>

namespace fraud_screening {

order_pipeline::event_handler notification_handler() {
  order_pipeline::event_handler handler;
  handler.name = "order-notifications";
  handler.outcomes = {order_pipeline::outcome::confirmed};
  handler.handle = [](pqxx::work& tx, const order_pipeline::order_event& event) {
    // The library drops a redelivered event before calling us; should one get through, the
    // order's key refuses a second notification and repeats_refused shows it.
    tx.exec_params(
        "INSERT INTO order_notifications (order_id, event_id, customer_id, message)"
        " VALUES ($1, $2::uuid, $3, $4)"
        " ON CONFLICT (order_id) DO UPDATE"
        " SET repeats_refused = order_notifications.repeats_refused + 1",
        event.order_id, event.event_id, event.customer_id,
        "Your order " + event.order_id + " of " + event.total_amount + " is confirmed.");
  };
  return handler;
}

}  // namespace fraud_screening
