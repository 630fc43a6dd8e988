#include "platform/http/bearer_auth.hpp"

namespace op::http {
bool constant_time_equal(std::string_view presented, std::string_view expected) {
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    auto c = i < presented.size() ? presented[i] : 0;
    diff |= static_cast<unsigned char>(c ^ expected[i]);
  }
  return diff == 0;
}

std::optional<std::string_view> bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "Bearer";
  if (header.size() <= scheme.size() ||
      !equals_ignoring_case(header.substr(0, scheme.size()), scheme))
    return std::nullopt;
  auto rest = header.substr(scheme.size());
  if (rest.front() != ' ')
    return std::nullopt;
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  if (rest.empty())
    return std::nullopt;
  return rest;
}

std::optional<response> require_bearer(const request_context& ctx, const std::string& expected) {
  auto header = ctx.header("Authorization");
  std::string_view message;
  if (expected.empty())
    message = "the admin API is disabled: no admin token is configured (ADMIN_TOKEN)";
  else if (header.empty())
    message = "missing Authorization: Bearer <token> header";
  else if (auto token = bearer_token(header); !token || !constant_time_equal(*token, expected))
    message = "invalid admin token";
  else
    return std::nullopt;
  auto res = error_response(status::unauthorized, "unauthorized", "Authorization", message);
  res.set(beast_http::field::www_authenticate, "Bearer");
  return res;
}

}  // namespace op::http
