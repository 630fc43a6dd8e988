#pragma once
// Request and response types of the HTTP layer, and the JSON error shape every handler uses:
// {"error": <short code>, "field": <offending field or null>, "message": <human sentence>}.

#include <boost/beast/http.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "platform/json/json_body.hpp"

namespace op::http {

namespace beast_http = boost::beast::http;
using request = beast_http::request<beast_http::string_body>;
using response = beast_http::response<beast_http::string_body>;
using status = beast_http::status;
using verb = beast_http::verb;

// What a handler receives: the request plus what routing learnt about it.
struct request_context {
  const request& req;
  std::map<std::string, std::string> path_params;
  std::map<std::string, std::string> query;

  std::optional<std::string> query_param(const std::string& name) const {
    auto it = query.find(name);
    if (it == query.end())
      return std::nullopt;
    return it->second;
  }
  std::string_view header(std::string_view name) const {
    auto it = req.find(boost::beast::string_view(name.data(), name.size()));
    if (it == req.end())
      return {};
    return {it->value().data(), it->value().size()};
  }
};

response json_response(status code, std::string body);
response text_response(status code, std::string body);
response error_response(status code, std::string_view error, std::optional<std::string_view> field,
                        std::string_view message);
// 503 with `Retry-After: 1`: nothing was done, the same request may succeed in a second.
response retry_later_response(std::string_view error, std::optional<std::string_view> field,
                              std::string_view message);

// ASCII case-insensitive equality, as HTTP compares auth schemes and media types
// (Beast's iequals on std::string_view).
bool equals_ignoring_case(std::string_view a, std::string_view b);

// 400 for a body refused before its fields are read (see platform/json/json_body.hpp); a
// broken rule also carries the `violations` list every validation error has.
response refused_body_response(const json::body_problem& problem);

}  // namespace op::http
