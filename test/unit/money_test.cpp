#include "orders/domain/money.hpp"

#include <catch2/catch.hpp>

using op::orders::money;
using op::orders::money_error;

namespace {
std::int64_t cents_of(const char* text) {
  auto parsed = money::parse(text);
  REQUIRE(parsed.error == money_error::none);
  return parsed.value->cents();
}
money_error error_of(const char* text) {
  return money::parse(text).error;
}
}  // namespace

TEST_CASE("money parses decimal JSON number text exactly", "[money]") {
  CHECK(cents_of("199.99") == 19999);
  CHECK(cents_of("0.10") == 10);
  CHECK(cents_of("0.1") == 10);
  CHECK(cents_of("5") == 500);
  CHECK(cents_of("0") == 0);
  CHECK(cents_of("-0") == 0);
  CHECK(cents_of("0.100") == 10);
  CHECK(cents_of("1.5e2") == 15000);
  CHECK(cents_of("1E1") == 1000);
  CHECK(cents_of("12345e-2") == 12345);
  CHECK(cents_of("999999999.99") == 99'999'999'999);
}

TEST_CASE("money rejects what is not an amount, naming the rule", "[money]") {
  CHECK(error_of("") == money_error::not_a_number);
  CHECK(error_of("abc") == money_error::not_a_number);
  CHECK(error_of("1.") == money_error::not_a_number);
  CHECK(error_of(".5") == money_error::not_a_number);
  CHECK(error_of("1e") == money_error::not_a_number);
  CHECK(error_of("1.2.3") == money_error::not_a_number);
  CHECK(error_of("-0.01") == money_error::negative);
  CHECK(error_of("-5") == money_error::negative);
  CHECK(error_of("0.001") == money_error::too_precise);
  CHECK(error_of("19.999") == money_error::too_precise);
  CHECK(error_of("1e-3") == money_error::too_precise);
  CHECK(error_of("1000000000") == money_error::too_large);
  CHECK(error_of("1e300") == money_error::too_large);
  CHECK(describe(money_error::too_precise) == "must have at most 2 decimal places");
}

TEST_CASE("money arithmetic is exact and refuses overflow", "[money]") {
  auto dime = money::from_cents(10);
  CHECK(dime.times(3)->to_string() == "0.30");
  CHECK(dime.times(3) == money::parse("0.30").value);
  CHECK(money::from_cents(19999).plus(money::from_cents(1))->to_string() == "200.00");
  CHECK(money::from_cents(5).to_string() == "0.05");
  CHECK(money::from_cents(0).to_string() == "0.00");
  CHECK_FALSE(money::from_cents(money::max_cents).plus(money::from_cents(1)).has_value());
  CHECK_FALSE(money::from_cents(money::max_cents).times(2).has_value());
  CHECK_FALSE(money::from_cents(1).times(-1).has_value());
}
