#include "orders/domain/order_rules.hpp"

#include <algorithm>
#include <cctype>

namespace op::orders {

bool is_valid_id(std::string_view text) {
  if (text.empty() || text.size() > max_id_length)
    return false;
  return std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
  });
}

std::size_t character_count(std::string_view text) {
  // Every code point has exactly one byte that is not a continuation byte (10xxxxxx).
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

bool looks_like_email(std::string_view text) {
  if (text.size() < 3 || character_count(text) > max_email_length)
    return false;
  if (std::any_of(text.begin(), text.end(),
                  [](unsigned char c) { return std::isspace(c) || std::iscntrl(c); }))
    return false;
  auto at = text.find('@');
  if (at == std::string_view::npos || at == 0 || text.find('@', at + 1) != std::string_view::npos)
    return false;
  auto domain = text.substr(at + 1);
  auto dot = domain.rfind('.');
  return dot != std::string_view::npos && dot > 0 && dot + 1 < domain.size() &&
         domain.find("..") == std::string_view::npos;
}

std::vector<violation> check(const order_draft& draft, const order_limits& limits) {
  std::vector<violation> out;
  auto too_long = [](std::size_t n) {
    return "must be at most " + std::to_string(n) + " characters";
  };

  if (draft.customer_id.empty())
    out.push_back({"customerId", "is required"});
  else if (!is_valid_id(draft.customer_id))
    out.push_back({"customerId", "must be 1-64 characters of letters, digits, '-', '_', '.', ':'"});

  if (!draft.customer_email.empty() && !looks_like_email(draft.customer_email))
    out.push_back({"customerEmail", "must be an email address like name@example.com"});

  if (character_count(draft.shipping_address) > max_address_length)
    out.push_back({"shippingAddress", too_long(max_address_length)});

  if (!draft.payment_method.empty()) {
    if (character_count(draft.payment_method) > max_payment_method_length)
      out.push_back({"paymentMethod", too_long(max_payment_method_length)});
    else if (draft.payment_method.rfind("pm_", 0) != 0)
      out.push_back({"paymentMethod", "must be a payment method token starting with 'pm_'"});
  }

  if (draft.items.empty())
    out.push_back({"items", "must contain at least one item"});
  if (draft.items.size() > static_cast<std::size_t>(limits.max_items))
    out.push_back({"items", "must contain at most " + std::to_string(limits.max_items) + " items"});

  for (std::size_t i = 0; i < draft.items.size(); ++i) {
    const auto& item = draft.items[i];
    auto field = [&](const char* name) { return "items[" + std::to_string(i) + "]." + name; };
    if (item.product_id.empty())
      out.push_back({field("productId"), "is required"});
    else if (!is_valid_id(item.product_id))
      out.push_back(
          {field("productId"), "must be 1-64 characters of letters, digits, '-', '_', '.', ':'"});
    if (character_count(item.product_name) > max_name_length)
      out.push_back({field("productName"), too_long(max_name_length)});
    if (item.quantity < 1)
      out.push_back({field("quantity"), "must be a positive integer"});
    else if (item.quantity > limits.max_quantity)
      out.push_back({field("quantity"), "must be at most " + std::to_string(limits.max_quantity)});
  }
  return out;
}

}  // namespace op::orders
