#pragma once
// `Authorization: Bearer <token>` for the admin API.

#include <optional>
#include <string>
#include <string_view>

#include "platform/http/message.hpp"

namespace op::http {

// Whether `presented` equals `expected`, in a time that depends only on `expected`'s length:
// no branch or memory access depends on either token's bytes or on where they first differ
// (test/unit/constant_time_check.cpp checks this under Valgrind).
bool constant_time_equal(std::string_view presented, std::string_view expected);

// The token of an `Authorization` value in the Bearer scheme, whose name is case-insensitive
// (RFC 9110, 11.1); nullopt for another scheme or no token.
std::optional<std::string_view> bearer_token(std::string_view header);

// nullopt when the request carries the expected token; otherwise the 401 to answer.
// An empty expected token refuses everything: the admin API is off.
std::optional<response> require_bearer(const request_context& ctx, const std::string& expected);

}  // namespace op::http
