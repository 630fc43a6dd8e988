#pragma once
// Server-sent events (text/event-stream, as browsers' EventSource reads them). A stream
// route (router::add_event_stream) answers with an event_source; the server then writes the
// headers and every event the source yields on that connection until the source ends, the
// client goes away or the server drains. A stream is not cut by server.read-timeout (it
// reads nothing after the request); a client that stops reading is, after that long.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "platform/http/message.hpp"
#include "platform/runtime/asio.hpp"

namespace op::http {

// Yields the events of one stream. Owned by the connection and called only on its strand.
class event_source {
 public:
  virtual ~event_source() = default;
  // Waits for the next event, already framed by sse_event(); nullopt ends the stream.
  virtual asio::awaitable<std::optional<std::string>> next() = 0;
};

// What a stream route answers: a source to stream from, or else a plain answer (e.g. 503 when
// too many clients are streaming).
struct stream_answer {
  std::unique_ptr<event_source> source;
  std::optional<response> refusal;
};

// One event: "event: <name>\n", a "data: " line per line of `data`, then a blank line.
std::string sse_event(std::string_view name, std::string_view data);

}  // namespace op::http
