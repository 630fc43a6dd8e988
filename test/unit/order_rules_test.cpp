#include "orders/domain/order_rules.hpp"

#include <catch2/catch.hpp>

#include "orders/adapters/order_json.hpp"

using namespace op::orders;

namespace {
order_draft valid_draft() {
  order_draft d;
  d.customer_id = "cust-123";
  d.customer_email = "john@example.com";
  d.total_amount = money::from_cents(19999);
  d.items.push_back({"prod-456", "Wireless Headphones", 1, money::from_cents(19999)});
  return d;
}

std::vector<std::string> fields_of(const std::vector<violation>& vs) {
  std::vector<std::string> out;
  for (const auto& v : vs)
    out.push_back(v.field + ": " + v.rule);
  return out;
}

std::vector<std::string> parse_errors(const std::string& body) {
  auto parsed = parse_order_draft(body);
  return fields_of(parsed.errors);
}
}  // namespace

TEST_CASE("a complete order breaks no rule", "[rules]") {
  CHECK(check(valid_draft(), {}).empty());
}

TEST_CASE("each order rule names its field", "[rules]") {
  order_limits limits{5, 2};
  auto d = valid_draft();
  d.customer_id = "";
  CHECK(fields_of(check(d, limits)) == std::vector<std::string>{"customerId: is required"});
  d = valid_draft();
  d.customer_id = "bad id!";
  CHECK(check(d, limits).at(0).field == "customerId");
  d = valid_draft();
  d.customer_id = std::string(65, 'a');
  CHECK(check(d, limits).at(0).field == "customerId");
  d = valid_draft();
  d.customer_email = "john.example.com";
  CHECK(check(d, limits).at(0).field == "customerEmail");
  d = valid_draft();
  d.shipping_address = std::string(501, 'a');
  CHECK(fields_of(check(d, limits)) ==
        std::vector<std::string>{"shippingAddress: must be at most 500 characters"});
  d = valid_draft();
  d.payment_method = "visa";
  CHECK(check(d, limits).at(0).field == "paymentMethod");
  d = valid_draft();
  d.items.clear();
  CHECK(fields_of(check(d, limits)) ==
        std::vector<std::string>{"items: must contain at least one item"});
  d = valid_draft();
  d.items.assign(3, d.items[0]);
  CHECK(fields_of(check(d, limits)) ==
        std::vector<std::string>{"items: must contain at most 2 items"});
  d = valid_draft();
  d.items[0].quantity = 0;
  CHECK(fields_of(check(d, limits)) ==
        std::vector<std::string>{"items[0].quantity: must be a positive integer"});
  d.items[0].quantity = 6;
  CHECK(fields_of(check(d, limits)) ==
        std::vector<std::string>{"items[0].quantity: must be at most 5"});
  d = valid_draft();
  d.items[0].product_id = "";
  CHECK(check(d, limits).at(0).field == "items[0].productId");
  d = valid_draft();
  d.items[0].product_name = std::string(201, 'n');
  CHECK(check(d, limits).at(0).field == "items[0].productName");
}

TEST_CASE("emails are checked for their shape", "[rules]") {
  CHECK(looks_like_email("john@example.com"));
  CHECK(looks_like_email("a.b+c@sub.example.co"));
  CHECK_FALSE(looks_like_email("john@"));
  CHECK_FALSE(looks_like_email("@example.com"));
  CHECK_FALSE(looks_like_email("john@example"));
  CHECK_FALSE(looks_like_email("jo hn@example.com"));
  CHECK_FALSE(looks_like_email("a@b@example.com"));
  CHECK_FALSE(looks_like_email("john@example..com"));
}

TEST_CASE("the request JSON is read exactly and typed strictly", "[rules][json]") {
  auto parsed = parse_order_draft(
      R"({"customerId":"c","totalAmount":0.30,"items":[{"productId":"p","quantity":3,"price":0.10}]})");
  REQUIRE(parsed.draft);
  CHECK(parsed.draft->total_amount.cents() == 30);
  CHECK(parsed.draft->items[0].price.cents() == 10);
  CHECK(parsed.draft->items[0].quantity == 3);

  CHECK(parse_order_draft("{oops").refused->error == "malformed_json");
  CHECK(parse_order_draft("[]").refused->error == "malformed_json");
  CHECK(parse_order_draft("").refused->error == "malformed_json");
  CHECK(parse_errors(R"({"customerId":1,"totalAmount":1,"items":[]})") ==
        std::vector<std::string>{"customerId: must be a string"});
  CHECK(parse_errors(R"({"customerId":"c","totalAmount":"1","items":[]})") ==
        std::vector<std::string>{"totalAmount: must be a number"});
  CHECK(parse_errors(R"({"customerId":"c","totalAmount":1.001,"items":[]})") ==
        std::vector<std::string>{"totalAmount: must have at most 2 decimal places"});
  CHECK(parse_errors(R"({"customerId":"c","totalAmount":1})") ==
        std::vector<std::string>{"items: is required"});
  CHECK(parse_errors(R"({"customerId":"c","totalAmount":1,"items":{}})") ==
        std::vector<std::string>{"items: must be an array"});
  CHECK(parse_errors(R"({"customerId":"c","totalAmount":1,"items":[5]})") ==
        std::vector<std::string>{"items[0]: must be an object"});
  CHECK(
      parse_errors(
          R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":2.5,"price":1}]})") ==
      std::vector<std::string>{"items[0].quantity: must be a positive integer"});
  CHECK(
      parse_errors(
          R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":1,"price":-2}]})") ==
      std::vector<std::string>{"items[0].price: must not be negative"});
}

TEST_CASE("a body whose meaning would be ambiguous is refused, naming the field", "[rules][json]") {
  // Which of two customerIds counts would be unspecified.
  auto twice = parse_order_draft(
      R"({"customerId":"cust-123","customerId":"cust-456","totalAmount":1,"items":[]})");
  REQUIRE(twice.refused);
  CHECK(twice.refused->error == "duplicate_key");
  CHECK(twice.refused->field == "customerId");
  CHECK_FALSE(twice.draft);

  auto nested = parse_order_draft(
      R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","quantity":1,"quantity":2,"price":1}]})");
  REQUIRE(nested.refused);
  CHECK(nested.refused->field == "items[0].quantity");

  // PostgreSQL text cannot hold U+0000; it used to reach the database and answer 500.
  for (
      auto [body, field] : std::vector<std::pair<std::string, std::string>>{
          {R"({"customerId":"c","totalAmount":1,"shippingAddress":"a\u0000b","items":[]})",
           "shippingAddress"},
          {R"({"customerId":"c","totalAmount":1,"paymentMethod":"pm_\u0000","items":[]})",
           "paymentMethod"},
          {R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p","productName":"x\u0000"}]})",
           "items[0].productName"}}) {
    auto parsed = parse_order_draft(body);
    REQUIRE(parsed.refused);
    CHECK(parsed.refused->error == "validation_failed");
    CHECK(parsed.refused->field == field);
    CHECK(parsed.refused->message() == field + " must not contain the NUL character (U+0000)");
  }

  // Nesting is bounded before it can cost stack: a deep body is refused, not parsed on.
  std::string deep =
      R"({"customerId":"c","items":)" + std::string(10000, '[') + std::string(10000, ']') + "}";
  auto too_deep = parse_order_draft(deep);
  REQUIRE(too_deep.refused);
  CHECK(too_deep.refused->error == "malformed_json");
  std::string brackets(1 << 20, '[');
  CHECK(parse_order_draft(brackets).refused->error == "malformed_json");

  // Members the API does not read are ignored, whatever they hold.
  auto extra = parse_order_draft(
      R"({"customerId":"c","note":"a\u0000b","note":1,"x\u0000":{"y":[[[[[]]]]]},"totalAmount":1,"items":[{"productId":"p","quantity":1,"price":1,"gift":"\u0000"}]})");
  CHECK_FALSE(extra.refused);
  CHECK(extra.draft);
}

TEST_CASE("length limits count characters, not UTF-8 bytes", "[rules]") {
  CHECK(character_count("") == 0);
  CHECK(character_count("abc") == 3);
  CHECK(character_count("\xc3\xa9") == 1);      // é
  CHECK(character_count("\xe2\x82\xac") == 1);  // €
  CHECK(character_count("\xf0\x9f\x98\x80"
                        "a") == 2);  // 😀a

  std::string e_acute = "\xc3\xa9";
  auto repeat = [](const std::string& text, int n) {
    std::string out;
    for (int i = 0; i < n; ++i)
      out += text;
    return out;
  };
  auto draft = valid_draft();
  draft.shipping_address = repeat(e_acute, 500);  // 1000 bytes, 500 characters
  draft.items[0].product_name = repeat(e_acute, 200);
  CHECK(check(draft, {}).empty());
  draft.shipping_address = repeat(e_acute, 501);
  draft.items[0].product_name = repeat(e_acute, 201);
  CHECK(fields_of(check(draft, {})) ==
        std::vector<std::string>{"shippingAddress: must be at most 500 characters",
                                 "items[0].productName: must be at most 200 characters"});
}

// Found by fuzz/order_body: a quantity that is no number and no string was read as a string
// (RapidJSON's GetString on a bool, object or array: an assertion, undefined behaviour
// without one).
TEST_CASE("a quantity of another JSON type is refused, never read as text", "[rules][json]") {
  for (const char* quantity : {"true", "false", "{}", "[]", "{\"5\":5}", "[5]", "\"5\""})
    CHECK(parse_errors(
              std::string(R"({"customerId":"c","totalAmount":1,"items":[{"productId":"p",)") +
              R"("price":1,"quantity":)" + quantity + "}]}") ==
          std::vector<std::string>{"items[0].quantity: must be a positive integer"});
}

// Found by fuzz/order_body: a lone low surrogate escape passed RapidJSON's encoding check and
// became bytes that are not UTF-8, which PostgreSQL refuses (a 500 instead of a 400).
TEST_CASE("a string that decodes to bytes that are not UTF-8 is refused", "[rules][json]") {
  CHECK(parse_errors(R"({"customerId":"c","shippingAddress":"x\udc00","totalAmount":1,)"
                     R"("items":[{"productId":"p","productName":"\ud41d\ude00","quantity":1,)"
                     R"("price":1}]})") ==
        std::vector<std::string>{"shippingAddress: must be valid Unicode text",
                                 "items[0].productName: must be valid Unicode text"});
  auto ok = parse_order_draft(
      R"({"customerId":"c","shippingAddress":"\ud83d\ude00","totalAmount":1,"items":[]})");
  REQUIRE(ok.draft);
  CHECK(ok.draft->shipping_address == "\xf0\x9f\x98\x80");
}

TEST_CASE("the placement answer carries the seed's message", "[json]") {
  CHECK(
      placement_json("ORD-1", "PLACED") ==
      R"({"message":"Order placed successfully. Order ID: ORD-1","orderId":"ORD-1","status":"PLACED"})");
}
