#pragma once
// `Authorization: Bearer <token>` for the admin API.

#include <optional>
#include <string>

#include "platform/http/message.hpp"

namespace op::http {

// nullopt when the request carries the expected token; otherwise the 401 to answer.
// An empty expected token refuses everything: the admin API is off.
std::optional<response> require_bearer(const request_context& ctx, const std::string& expected);

}  // namespace op::http
