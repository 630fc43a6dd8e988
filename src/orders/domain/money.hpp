#pragma once
// Exact money: an amount in minor units (cents) of the shop's single currency. Parsed from
// the decimal text of the request, never through binary floating point, so 0.10 x 3 is
// exactly 0.30.

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace op::orders {

enum class money_error {
  none,
  not_a_number,  // not a decimal number
  negative,      // below zero
  too_precise,   // more than two decimal places
  too_large,     // above money::max
};

// The rule a money_error breaks, as a sentence fragment: "must not be negative".
std::string_view describe(money_error error);

class money {
 public:
  // 999,999,999.99: room for any order total while quantity x price stays in 64 bits.
  static constexpr std::int64_t max_cents = 99'999'999'999;

  constexpr money() = default;
  static constexpr money from_cents(std::int64_t cents) { return money(cents); }

  // Accepts JSON number text: "199.99", "5", "0.10", "1.5e2", "2.50" (trailing zeros past
  // the second decimal are fine: "0.100"). Rejects negatives and sub-cent precision.
  static struct money_parse_result parse(std::string_view text);

  constexpr std::int64_t cents() const { return cents_; }

  // "199.99": always two decimals.
  std::string to_string() const;

  // nullopt when the product would exceed max_cents.
  std::optional<money> times(std::int64_t quantity) const;
  std::optional<money> plus(money other) const;

  constexpr auto operator<=>(const money&) const = default;

 private:
  constexpr explicit money(std::int64_t cents) : cents_(cents) {}
  std::int64_t cents_ = 0;
};

struct money_parse_result {
  std::optional<money> value;
  money_error error = money_error::none;
};

}  // namespace op::orders
