#include "support/http_client.hpp"

#include <algorithm>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sstream>

#include "platform/runtime/asio.hpp"

namespace op::test {

namespace beast = boost::beast;
namespace http = beast::http;

http_reply http_call(unsigned short port, const std::string& method, const std::string& target,
                     const std::string& body, const std::map<std::string, std::string>& headers,
                     std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(timeout);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  bool typed = false;
  for (const auto& [name, value] : headers) {
    typed = typed || beast::iequals(name, "Content-Type");
    if (!value.empty())
      req.set(name, value);
  }
  if (!body.empty() && !typed)
    req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  parser.skip(req.method() == http::verb::head);  // its Content-Length announces no body
  http::read(stream, buffer, parser);
  auto res = parser.release();
  http_reply out;
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  for (const auto& field : res) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    out.headers[name] = std::string(field.value());
  }
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  return out;
}

double metric_sample(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  }
  return 0;
}

}  // namespace op::test
