#include "platform/http/bearer_auth.hpp"

namespace op::http {
namespace {
// Compares in time independent of where the first difference is.
bool same(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}
}  // namespace

std::optional<response> require_bearer(const request_context& ctx, const std::string& expected) {
  auto header = ctx.header("Authorization");
  constexpr std::string_view scheme = "Bearer ";
  std::string_view message;
  if (expected.empty())
    message = "the admin API is disabled: no admin token is configured (ADMIN_TOKEN)";
  else if (header.empty())
    message = "missing Authorization: Bearer <token> header";
  else if (header.substr(0, scheme.size()) != scheme ||
           !same(header.substr(scheme.size()), expected))
    message = "invalid admin token";
  else
    return std::nullopt;
  auto res = error_response(status::unauthorized, "unauthorized", "Authorization", message);
  res.set(beast_http::field::www_authenticate, "Bearer");
  return res;
}

}  // namespace op::http
