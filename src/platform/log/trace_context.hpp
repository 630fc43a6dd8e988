#pragma once
// W3C Trace Context (traceparent: 00-<32 hex trace id>-<16 hex span id>-<flags>) and the
// per-thread log context that puts an order's id and trace id on every log line written
// while its work runs synchronously on that thread.

#include <optional>
#include <string>
#include <string_view>

namespace op::log {

std::string new_trace_id();  // 32 lowercase hex digits, never all zero
std::string new_span_id();   // 16 lowercase hex digits, never all zero

// The trace id of a valid traceparent header; nullopt for anything malformed.
std::optional<std::string> trace_id_of(std::string_view traceparent);

// A traceparent for `trace_id` with a fresh span id, sampled.
std::string make_traceparent(const std::string& trace_id);

struct log_context {
  std::string order_id;
  std::string trace_id;
};

// The context of the current thread (empty fields when none is set).
const log_context& current_context();

// Sets the thread's context for its lifetime, then restores the previous one.
class scoped_context {
 public:
  scoped_context(std::string order_id, std::string trace_id);
  ~scoped_context();
  scoped_context(const scoped_context&) = delete;
  scoped_context& operator=(const scoped_context&) = delete;

 private:
  log_context previous_;
};

}  // namespace op::log
