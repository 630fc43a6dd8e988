#include "platform/log/trace_context.hpp"

#include <random>

namespace op::log {
namespace {

thread_local log_context context;

std::string random_hex(std::size_t digits) {
  static constexpr char hex[] = "0123456789abcdef";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out(digits, '0');
  while (out.find_first_not_of('0') == std::string::npos) {
    for (std::size_t i = 0; i < digits; i += 16) {
      auto bits = rng();
      for (std::size_t j = i; j < digits && j < i + 16; ++j, bits >>= 4)
        out[j] = hex[bits & 15];
    }
  }
  return out;
}

bool is_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

}  // namespace

std::string new_trace_id() {
  return random_hex(32);
}
std::string new_span_id() {
  return random_hex(16);
}

std::optional<std::string> trace_id_of(std::string_view tp) {
  // version "-" trace-id "-" parent-id "-" flags
  if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
    return std::nullopt;
  auto version = tp.substr(0, 2), trace = tp.substr(3, 32), span = tp.substr(36, 16),
       flags = tp.substr(53, 2);
  if (!is_hex(version) || version == "ff" || !is_hex(trace) || !is_hex(span) || !is_hex(flags))
    return std::nullopt;
  if (trace.find_first_not_of('0') == std::string_view::npos ||
      span.find_first_not_of('0') == std::string_view::npos)
    return std::nullopt;
  return std::string(trace);
}

std::string make_traceparent(const std::string& trace_id) {
  return "00-" + trace_id + "-" + new_span_id() + "-01";
}

const log_context& current_context() {
  return context;
}

scoped_context::scoped_context(std::string order_id, std::string trace_id)
    : previous_(std::move(context)) {
  context = {std::move(order_id), std::move(trace_id)};
}

scoped_context::~scoped_context() {
  context = std::move(previous_);
}

}  // namespace op::log
