#include "platform/http/event_stream.hpp"

namespace op::http {

std::string sse_event(std::string_view name, std::string_view data) {
  std::string out;
  out.reserve(name.size() + data.size() + 32);
  out.append("event: ").append(name).append("\n");
  for (;;) {
    auto newline = data.find('\n');
    out.append("data: ").append(data.substr(0, newline)).append("\n");
    if (newline == std::string_view::npos)
      break;
    data.remove_prefix(newline + 1);
  }
  out.append("\n");
  return out;
}

}  // namespace op::http
