#include "orders/adapters/event_envelope.hpp"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>

#include "platform/json/json_escape.hpp"
#include "platform/outbox/outbox.hpp"

using namespace op;
using namespace op::orders;

namespace {
const std::string event_id = "6b1d3c1e-8f0a-4c52-9a57-3f1c2d4e5f60";

std::string envelope_with_order_id(const std::string& order_id_json) {
  return R"({"eventId":")" + event_id + R"(","eventType":"OrderPlaced","orderId":)" +
         order_id_json + R"(,"occurredAt":"2026-11-24T16:41:32.688Z","payload":{}})";
}

bool valid_json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.c_str(), text.size());
  return !doc.HasParseError();
}
}  // namespace

TEST_CASE("an envelope as the outbox relay writes it is decoded", "[envelope]") {
  auto decoded =
      decode_event_envelope(envelope_with_order_id(R"("ORD-01M876Y78F8WTPWKCBNVBT8T27")"));
  REQUIRE(decoded);
  CHECK(decoded->event_id == event_id);
  CHECK(decoded->order_id == "ORD-01M876Y78F8WTPWKCBNVBT8T27");

  CHECK_FALSE(decode_event_envelope("not json"));
  CHECK_FALSE(decode_event_envelope(R"({"eventId":"x","orderId":"ORD-1"})"));
  CHECK_FALSE(decode_event_envelope(envelope_with_order_id(R"("")")));
  CHECK_FALSE(decode_event_envelope(envelope_with_order_id(R"(5)")));
}

// Found by fuzz/kafka_envelope: the order id was read up to its first U+0000, so
// "ORD-1\u0000ORD-2" was taken for order ORD-1.
TEST_CASE("an order id is read whole, and one PostgreSQL cannot store is refused", "[envelope]") {
  CHECK_FALSE(decode_event_envelope(envelope_with_order_id(R"("ORD-1\u0000ORD-2")")));
  CHECK_FALSE(decode_event_envelope(envelope_with_order_id("\"ORD-\xff\"")));
  auto accented = decode_event_envelope(envelope_with_order_id(R"("ORD-\u00e9")"));
  REQUIRE(accented);
  CHECK(accented->order_id == "ORD-\xc3\xa9");
}

TEST_CASE("stored headers are read back whole, strings only", "[envelope]") {
  using headers = std::vector<std::pair<std::string, std::string>>;
  CHECK(decode_headers_json(R"({"event-id":"e","n":5,"dlq-entry-id":"7","a":"x\u0000y"})") ==
        headers{{"event-id", "e"}, {"dlq-entry-id", "7"}, {"a", std::string("x\0y", 3)}});
  CHECK(decode_headers_json("[]").empty());
  CHECK(decode_headers_json("{").empty());
}

// Found by fuzz/kafka_envelope: header bytes that are not UTF-8, or a NUL, made the headers'
// JSON something PostgreSQL's jsonb refuses, so such a message could be neither retried nor
// dead-lettered.
TEST_CASE("any header bytes make JSON that jsonb takes", "[envelope][json]") {
  std::vector<std::pair<std::string, std::string>> plain = {{"event-id", event_id},
                                                            {"x-name", "caf\xc3\xa9"}};
  CHECK(decode_headers_json(outbox::headers_json(plain)) == plain);

  std::vector<std::pair<std::string, std::string>> binary = {
      {"x-bin", std::string("\xff\xfe\x00\x01", 4)}, {std::string("k\x80", 2), "v"}};
  auto json = outbox::headers_json(binary);
  CHECK(valid_json(json));
  CHECK(json.find("\\u0000") == std::string::npos);
  auto back = decode_headers_json(json);
  REQUIRE(back.size() == 2);
  CHECK(back[0].second == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\x01");
  CHECK(back[1].first == "k\xef\xbf\xbd");
}

TEST_CASE("an envelope nested a million levels deep is undecodable, not a stack overflow",
          "[envelope]") {
  std::string deep = R"({"eventId":"00000000-0000-0000-0000-000000000000","orderId":"ORD-1","x":)" +
                     std::string(1'000'000, '[');
  CHECK_FALSE(op::orders::decode_event_envelope(deep));
  CHECK(op::orders::decode_headers_json(std::string(1'000'000, '[')).empty());
}
