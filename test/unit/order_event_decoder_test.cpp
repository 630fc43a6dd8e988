#include "handlers/order_event_decoder.hpp"

#include <catch2/catch.hpp>

#include "orders/adapters/order_json.hpp"

using namespace op;
using order_pipeline::outcome;

namespace {

const std::string event_id = "0f8e5a52-3c1d-4b7e-9a21-6d5c4b3a2f10";

// The envelope exactly as the outbox relay writes it around an order's JSON.
std::string envelope(const std::string& event_type, const std::string& order_id,
                     const std::string& payload) {
  return R"({"eventId":")" + event_id + R"(","eventType":")" + event_type + R"(","orderId":")" +
         order_id + R"(","occurredAt":"2026-12-01T09:15:02.118Z","payload":)" + payload + "}";
}

orders::order_view confirmed_order() {
  orders::order_view o;
  o.order_id = "ORD-01M8A2Q7ZK3V9T5W6X8Y0B1C2D";
  o.customer_id = "CUST-001";
  o.customer_email = "ada@example.com";
  o.shipping_address = "1 Analytical Way";
  o.payment_method = "CREDIT_CARD";
  o.status = "CONFIRMED";
  o.total_amount = orders::money::from_cents(5990);
  o.items = {{"PROD-001", "Wireless Mouse", 2, orders::money::from_cents(1995)},
             {"PROD-002", "Mouse Pad", 1, orders::money::from_cents(2000)}};
  o.created_at = "2026-12-01T09:15:01.900Z";
  o.updated_at = "2026-12-01T09:15:02.118Z";
  return o;
}

// A confirmed order's event with `from` replaced by `to` (which must occur once).
std::string confirmed_with(const std::string& from, const std::string& to) {
  auto o = confirmed_order();
  auto text = envelope("OrderConfirmed", o.order_id, orders::order_json(o));
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(text.find(from, at + 1) == std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("a confirmed order's event as the pipeline publishes it is decoded", "[handlers]") {
  auto o = confirmed_order();
  auto payload = orders::order_json(o);
  auto event = handlers::decode_order_event(envelope("OrderConfirmed", o.order_id, payload));
  REQUIRE(event);
  CHECK(event->event_id == event_id);
  CHECK(event->event_type == "OrderConfirmed");
  CHECK(event->occurred_at == "2026-12-01T09:15:02.118Z");
  CHECK(event->order_id == o.order_id);
  CHECK(event->customer_id == "CUST-001");
  CHECK(event->result == outcome::confirmed);
  CHECK(event->status == "CONFIRMED");
  CHECK(event->reason.empty());
  CHECK(event->detail.empty());
  CHECK(event->total_cents == 5990);
  CHECK(event->total_amount == "59.90");
  REQUIRE(event->items.size() == 2);
  CHECK(event->items[0].product_id == "PROD-001");
  CHECK(event->items[0].product_name == "Wireless Mouse");
  CHECK(event->items[0].quantity == 2);
  CHECK(event->items[0].price_cents == 1995);
  CHECK(event->items[1].price_cents == 2000);
  // The order's own JSON, numbers as written ("59.90", not 59.9), for the other fields.
  CHECK(event->payload_json == payload);
}

TEST_CASE("a cancelled order's event carries its reason and detail", "[handlers]") {
  auto o = confirmed_order();
  o.status = "CANCELLED";
  o.cancel_reason = "PAYMENT_DECLINED";
  o.cancel_detail = "card declined: insufficient funds";
  auto event =
      handlers::decode_order_event(envelope("OrderFailed", o.order_id, orders::order_json(o)));
  REQUIRE(event);
  CHECK(event->result == outcome::cancelled);
  CHECK(event->status == "CANCELLED");
  CHECK(event->event_type == "OrderFailed");
  CHECK(event->reason == "PAYMENT_DECLINED");
  CHECK(event->detail == "card declined: insufficient funds");

  o.status = "FAILED";
  o.cancel_reason.clear();
  o.cancel_detail.clear();
  auto failed =
      handlers::decode_order_event(envelope("OrderFailed", o.order_id, orders::order_json(o)));
  REQUIRE(failed);
  CHECK(failed->result == outcome::failed);
  CHECK(failed->reason.empty());
}

TEST_CASE("events that are not a final order's are rejected", "[handlers]") {
  // The unchanged event decodes: each case below breaks exactly one thing.
  REQUIRE(handlers::decode_order_event(confirmed_with("CUST-001", "CUST-002")));

  CHECK_FALSE(handlers::decode_order_event(""));
  CHECK_FALSE(handlers::decode_order_event("not json"));
  CHECK_FALSE(handlers::decode_order_event("[]"));
  CHECK_FALSE(handlers::decode_order_event(R"({"eventId":")" + event_id + R"(","orderId":"O"})"));
  // The envelope.
  CHECK_FALSE(handlers::decode_order_event(confirmed_with(event_id, "not-a-uuid")));
  CHECK_FALSE(handlers::decode_order_event(confirmed_with(R"("eventType":"OrderConfirmed",)", "")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("occurredAt":"2026-12-01T09:15:02.118Z")", R"("occurredAt":5)")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("eventType":"OrderConfirmed")",
                     R"("eventType":"OrderConfirmed","eventType":"OrderFailed")")));
  // The order inside.
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("status":"CONFIRMED")", R"("status":"PAYMENT_PROCESSED")")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("status":"CONFIRMED")", R"("status":"confirmed")")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("orderId":"ORD-01M8A2Q7ZK3V9T5W6X8Y0B1C2D","customerId")",
                     R"("orderId":"ORD-OTHER","customerId")")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("customerId":"CUST-001",)", R"("customerId":"",)")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("totalAmount":59.90)", R"("totalAmount":"59.90")")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("totalAmount":59.90)", R"("totalAmount":59.905)")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("totalAmount":59.90)", R"("totalAmount":-59.90)")));
  CHECK_FALSE(handlers::decode_order_event(confirmed_with(R"("quantity":2)", R"("quantity":0)")));
  CHECK_FALSE(handlers::decode_order_event(confirmed_with(R"("quantity":2)", R"("quantity":1.5)")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("productId":"PROD-002",)", R"("productId":7,)")));
  CHECK_FALSE(handlers::decode_order_event(confirmed_with(R"("price":19.95)", R"("price":null)")));
  CHECK_FALSE(handlers::decode_order_event(confirmed_with(R"("items":[{)", R"("items":[5,{)")));
  CHECK_FALSE(handlers::decode_order_event(
      confirmed_with(R"("paymentMethod")", R"("reason":3,"paymentMethod")")));
}
