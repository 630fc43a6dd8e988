#include "platform/http/message.hpp"

#include "platform/json/json_escape.hpp"

namespace op::http {

response json_response(status code, std::string body) {
  response res{code, 11};
  res.set(beast_http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response text_response(status code, std::string body) {
  response res{code, 11};
  res.set(beast_http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response error_response(status code, std::string_view error, std::optional<std::string_view> field,
                        std::string_view message) {
  std::string body = R"({"error":")";
  json::append_escaped(error, body);
  body += R"(","field":)";
  if (field) {
    body += '"';
    json::append_escaped(*field, body);
    body += '"';
  } else {
    body += "null";
  }
  body += R"(,"message":")";
  json::append_escaped(message, body);
  body += "\"}";
  return json_response(code, std::move(body));
}

response retry_later_response(std::string_view error, std::optional<std::string_view> field,
                              std::string_view message) {
  auto res = error_response(status::service_unavailable, error, field, message);
  res.set(beast_http::field::retry_after, "1");
  return res;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return boost::beast::iequals(boost::beast::string_view(a.data(), a.size()),
                               boost::beast::string_view(b.data(), b.size()));
}

response refused_body_response(const json::body_problem& problem) {
  std::optional<std::string_view> field;
  if (!problem.field.empty())
    field = problem.field;
  auto res = error_response(status::bad_request, problem.error, field, problem.message());
  if (problem.error != "validation_failed")
    return res;
  // {"error":...,"message":"..."} + ,"violations":[{"field":...,"rule":...}]}
  auto& body = res.body();
  body.pop_back();
  body += R"(,"violations":[{"field":")";
  json::append_escaped(problem.field, body);
  body += R"(","rule":")";
  json::append_escaped(problem.rule, body);
  body += "\"}]}";
  res.prepare_payload();
  return res;
}

}  // namespace op::http
