#include "orders/domain/money.hpp"

#include <cstdlib>

namespace op::orders {

std::string_view describe(money_error error) {
  switch (error) {
    case money_error::none:
      return "is valid";
    case money_error::not_a_number:
      return "must be a decimal number";
    case money_error::negative:
      return "must not be negative";
    case money_error::too_precise:
      return "must have at most 2 decimal places";
    case money_error::too_large:
      return "must not exceed 999999999.99";
  }
  return "is invalid";
}

money_parse_result money::parse(std::string_view text) {
  // JSON grammar: -? int frac? exp?
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && text[i] == '-') {
    negative = true;
    ++i;
  }
  std::string digits;         // every significant digit, integer part then fraction
  long long point_shift = 0;  // how many of `digits` are after the decimal point
  std::size_t int_start = i;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9')
    digits += text[i++];
  if (i == int_start)
    return {std::nullopt, money_error::not_a_number};
  if (i < text.size() && text[i] == '.') {
    ++i;
    std::size_t frac_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      digits += text[i++];
      ++point_shift;
    }
    if (i == frac_start)
      return {std::nullopt, money_error::not_a_number};
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-'))
      exp_negative = text[i++] == '-';
    std::size_t exp_start = i;
    long long exponent = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (exponent < 1000)
        exponent = exponent * 10 + (text[i] - '0');
      ++i;
    }
    if (i == exp_start)
      return {std::nullopt, money_error::not_a_number};
    point_shift += exp_negative ? exponent : -exponent;
  }
  if (i != text.size())
    return {std::nullopt, money_error::not_a_number};

  // Drop trailing zeros past the point; they do not add precision.
  while (point_shift > 0 && digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
    --point_shift;
  }
  std::size_t first = digits.find_first_not_of('0');
  bool is_zero = first == std::string::npos;
  if (is_zero)
    return {money(0), money_error::none};
  if (negative)
    return {std::nullopt, money_error::negative};
  if (point_shift > 2)
    return {std::nullopt, money_error::too_precise};
  // Scale to cents: append (2 - point_shift) zeros.
  long long zeros = 2 - point_shift;
  std::string significant = digits.substr(first);
  if (static_cast<long long>(significant.size()) + zeros > 11)
    return {std::nullopt, money_error::too_large};
  significant.append(static_cast<std::size_t>(zeros), '0');
  std::int64_t cents = std::strtoll(significant.c_str(), nullptr, 10);
  if (cents > max_cents)
    return {std::nullopt, money_error::too_large};
  return {money(cents), money_error::none};
}

std::string money::to_string() const {
  std::int64_t whole = cents_ / 100;
  std::int64_t frac = cents_ % 100;
  std::string out = std::to_string(whole);
  out += '.';
  out += static_cast<char>('0' + frac / 10);
  out += static_cast<char>('0' + frac % 10);
  return out;
}

std::optional<money> money::times(std::int64_t quantity) const {
  if (quantity < 0)
    return std::nullopt;
  if (quantity != 0 && cents_ > max_cents / quantity)
    return std::nullopt;
  return money(cents_ * quantity);
}

std::optional<money> money::plus(money other) const {
  if (cents_ > max_cents - other.cents_)
    return std::nullopt;
  return money(cents_ + other.cents_);
}

}  // namespace op::orders
