// Fuzz target: the body of POST /api/orders, as the route reads it (parse_order_draft), checks
// it (check) and handles its amounts (money).
//
// Properties, beyond not crashing:
// - the parse answer has one shape: refused (malformed, a duplicate key or U+0000, with a
//   rule, and a field unless the body as a whole is at fault), or a draft, or errors, each
//   naming a field and a rule; parsing the same bytes twice gives the same answer;
// - no violation of a draft has an empty field or rule, and each names a field of the order;
// - an accepted draft keeps every promise of the README (ids, counts, quantities, lengths);
// - an accepted draft written back as JSON parses to the same draft;
// - a parsed amount prints as text that parses to the same amount, agrees with strtod, and
//   quantity x price and sums are either exact or refused above money::max_cents;
// - the bytes themselves, read as an amount, are refused exactly when they are not a JSON
//   number, and when accepted have the value strtod gives.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "orders/adapters/order_json.hpp"
#include "orders/domain/money.hpp"
#include "orders/domain/order_rules.hpp"
#include "platform/json/json_escape.hpp"

using namespace op::orders;

namespace {

// JSON's number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
bool is_json_number(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      ++i;
    return i - start;
  };
  if (i < s.size() && s[i] == '-')
    ++i;
  std::size_t int_start = i;
  std::size_t n = digits();
  if (n == 0 || (n > 1 && s[int_start] == '0'))
    return false;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0)
      return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-'))
      ++i;
    if (digits() == 0)
      return false;
  }
  return i == s.size();
}

std::string text_of(const money& m) {
  return std::to_string(m.cents()) + " cents";
}

// An amount, whatever its origin: prints back to itself, stays in range, agrees with strtod.
void check_money(const money& m, std::string_view origin) {
  FUZZ_CHECK(m.cents() >= 0 && m.cents() <= money::max_cents, text_of(m));
  auto printed = m.to_string();
  auto again = money::parse(printed);
  FUZZ_CHECK(again.value && *again.value == m && again.error == money_error::none,
             "'" + printed + "' from " + text_of(m));
  FUZZ_CHECK(printed.size() >= 4 && printed[printed.size() - 3] == '.', printed);
  if (!origin.empty() && origin.size() < 400) {
    double d = std::strtod(std::string(origin).c_str(), nullptr);
    FUZZ_CHECK(std::fabs(d - static_cast<double>(m.cents()) / 100.0) <= 1e-6 * std::max(1.0, d),
               std::string(origin) + " read as " + printed);
  }
}

// The amount read from arbitrary text: refused as not_a_number exactly when the text is no
// JSON number (or a longer form money accepts: leading zeros), otherwise consistent.
void check_money_text(std::string_view text) {
  auto parsed = money::parse(text);
  FUZZ_CHECK(parsed.value.has_value() == (parsed.error == money_error::none), std::string(text));
  if (is_json_number(text))
    FUZZ_CHECK(parsed.error != money_error::not_a_number, std::string(text));
  if (parsed.value) {
    check_money(*parsed.value, text);
    return;
  }
  if (text.size() >= 400)
    return;
  double d = std::strtod(std::string(text).c_str(), nullptr);
  switch (parsed.error) {
    case money_error::negative:
      FUZZ_CHECK(std::signbit(d), std::string(text));
      break;
    case money_error::too_large:
      FUZZ_CHECK(d > 999999999.985, std::string(text));
      break;
    default:
      break;
  }
}

// Arithmetic the validation stage does on amounts: exact, or refused past max_cents.
void check_arithmetic(const order_draft& d) {
  __int128 exact_total = 0;
  std::optional<money> total = money::from_cents(0);
  for (const auto& item : d.items) {
    auto line = item.price.times(item.quantity);
    __int128 exact = static_cast<__int128>(item.price.cents()) * item.quantity;
    if (item.quantity < 0 || exact > money::max_cents) {
      FUZZ_CHECK(!line, std::to_string(item.quantity) + " x " + text_of(item.price));
      total.reset();
      continue;
    }
    FUZZ_CHECK(line && line->cents() == exact,
               std::to_string(item.quantity) + " x " + text_of(item.price));
    exact_total += exact;
    if (total) {
      auto sum = total->plus(*line);
      FUZZ_CHECK(sum.has_value() == (exact_total <= money::max_cents), text_of(*line));
      if (sum)
        FUZZ_CHECK(sum->cents() == exact_total, text_of(*sum));
      total = sum;
    }
  }
}

bool is_order_field(const std::string& field, const order_draft& d) {
  for (const char* top :
       {"customerId", "customerEmail", "shippingAddress", "paymentMethod", "totalAmount", "items"})
    if (field == top)
      return true;
  constexpr std::string_view prefix = "items[";
  if (field.rfind(prefix, 0) != 0)
    return false;
  auto close = field.find(']');
  if (close == std::string::npos || close == prefix.size())
    return false;
  auto index =
      std::strtoull(field.substr(prefix.size(), close - prefix.size()).c_str(), nullptr, 10);
  if (index >= d.items.size())
    return false;
  auto rest = field.substr(close + 1);
  return rest == ".productId" || rest == ".productName" || rest == ".quantity" || rest == ".price";
}

// The draft as JSON, the way a client would write it.
std::string to_json(const order_draft& d) {
  using op::json::quoted;
  std::string out = "{\"customerId\":" + quoted(d.customer_id) +
                    ",\"customerEmail\":" + quoted(d.customer_email) +
                    ",\"shippingAddress\":" + quoted(d.shipping_address) +
                    ",\"paymentMethod\":" + quoted(d.payment_method) +
                    ",\"totalAmount\":" + d.total_amount.to_string() + ",\"items\":[";
  for (std::size_t i = 0; i < d.items.size(); ++i) {
    const auto& item = d.items[i];
    if (i)
      out += ',';
    out += "{\"productId\":" + quoted(item.product_id) +
           ",\"productName\":" + quoted(item.product_name) +
           ",\"quantity\":" + std::to_string(item.quantity) +
           ",\"price\":" + item.price.to_string() + "}";
  }
  return out + "]}";
}

bool same(const order_draft& a, const order_draft& b) {
  if (a.customer_id != b.customer_id || a.customer_email != b.customer_email ||
      a.shipping_address != b.shipping_address || a.payment_method != b.payment_method ||
      a.total_amount != b.total_amount || a.items.size() != b.items.size())
    return false;
  for (std::size_t i = 0; i < a.items.size(); ++i)
    if (a.items[i].product_id != b.items[i].product_id ||
        a.items[i].product_name != b.items[i].product_name ||
        a.items[i].quantity != b.items[i].quantity || a.items[i].price != b.items[i].price)
      return false;
  return true;
}

bool same(const draft_parse_result& a, const draft_parse_result& b) {
  if (a.refused.has_value() != b.refused.has_value() ||
      (a.refused && (a.refused->error != b.refused->error || a.refused->field != b.refused->field ||
                     a.refused->rule != b.refused->rule)) ||
      a.draft.has_value() != b.draft.has_value() || a.errors.size() != b.errors.size())
    return false;
  for (std::size_t i = 0; i < a.errors.size(); ++i)
    if (a.errors[i].field != b.errors[i].field || a.errors[i].rule != b.errors[i].rule)
      return false;
  return !a.draft || same(*a.draft, *b.draft);
}

void check_accepted(const order_draft& d, const order_limits& limits) {
  FUZZ_CHECK(is_valid_id(d.customer_id), d.customer_id);
  FUZZ_CHECK(!d.items.empty() && d.items.size() <= static_cast<std::size_t>(limits.max_items),
             std::to_string(d.items.size()) + " items");
  FUZZ_CHECK(d.customer_email.empty() || d.customer_email.find('@') != std::string::npos,
             d.customer_email);
  FUZZ_CHECK(op::fuzz::utf8_length(d.shipping_address) <= max_address_length, "address");
  FUZZ_CHECK(d.payment_method.empty() || d.payment_method.rfind("pm_", 0) == 0, d.payment_method);
  for (const auto& item : d.items) {
    FUZZ_CHECK(is_valid_id(item.product_id), item.product_id);
    FUZZ_CHECK(item.quantity >= 1 && item.quantity <= limits.max_quantity,
               std::to_string(item.quantity));
    FUZZ_CHECK(op::fuzz::utf8_length(item.product_name) <= max_name_length, "product name");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  check_money_text(body);

  auto parsed = parse_order_draft(body);
  FUZZ_CHECK(same(parsed, parse_order_draft(body)), "two parses of one body differ");
  if (parsed.refused) {
    const auto& refused = *parsed.refused;
    FUZZ_CHECK(!parsed.draft && parsed.errors.empty() && !refused.rule.empty(), refused.message());
    FUZZ_CHECK(refused.error == "malformed_json" || refused.error == "duplicate_key" ||
                   refused.error == "validation_failed",
               refused.error);
    FUZZ_CHECK(refused.error == "malformed_json" || !refused.field.empty(), refused.message());
    return 0;
  }
  FUZZ_CHECK(parsed.draft.has_value() == parsed.errors.empty(),
             std::to_string(parsed.errors.size()) + " errors");
  for (const auto& e : parsed.errors)
    FUZZ_CHECK(!e.field.empty() && !e.rule.empty(), e.field + ": " + e.rule);
  if (!parsed.draft)
    return 0;
  const auto& draft = *parsed.draft;
  // Every string read is valid UTF-8 (what PostgreSQL's text columns take).
  std::vector<const std::string*> texts = {&draft.customer_id, &draft.customer_email,
                                           &draft.shipping_address, &draft.payment_method};
  for (const auto& item : draft.items) {
    texts.push_back(&item.product_id);
    texts.push_back(&item.product_name);
  }
  for (const auto* text : texts)
    FUZZ_CHECK(op::fuzz::is_utf8(*text), "not UTF-8: " + *text);

  check_money(draft.total_amount, {});
  for (const auto& item : draft.items)
    check_money(item.price, {});
  check_arithmetic(draft);

  for (const order_limits& limits : {order_limits{}, order_limits{5, 3}}) {
    auto violations = check(draft, limits);
    for (const auto& v : violations) {
      FUZZ_CHECK(!v.field.empty() && !v.rule.empty(), v.field + ": " + v.rule);
      FUZZ_CHECK(is_order_field(v.field, draft), v.field);
    }
    if (violations.empty())
      check_accepted(draft, limits);
  }

  // Written back as JSON, the draft reads the same.
  auto json = to_json(draft);
  auto reread = parse_order_draft(json);
  FUZZ_CHECK(reread.draft && same(*reread.draft, draft),
             json + (reread.refused ? " is refused: " + reread.refused->message() : ""));
  return 0;
}
