#pragma once
// A small blocking HTTP/1.1 client for tests (one connection per call). Thread-safe: each
// call has its own io_context. Throws on connection errors and when `timeout` passes.

#include <chrono>
#include <map>
#include <string>

namespace op::test {

struct http_reply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// A body is sent as application/json unless `headers` name another Content-Type; a header
// given with an empty value is not sent at all.
http_reply http_call(unsigned short port, const std::string& method, const std::string& target,
                     const std::string& body = "",
                     const std::map<std::string, std::string>& headers = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

inline http_reply http_get(unsigned short port, const std::string& target) {
  return http_call(port, "GET", target);
}

// The value of one sample line ("name{labels} value") of a Prometheus exposition; 0 when
// absent.
double metric_sample(const std::string& exposition, const std::string& series);

}  // namespace op::test
