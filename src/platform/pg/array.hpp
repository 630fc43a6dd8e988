#pragma once
// PostgreSQL array literals for statement parameters ($n::text[], $n::bigint[]), so a set of
// rows travels in one statement (INSERT ... SELECT FROM unnest(...)) instead of one each.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace op::pg {

// {"a","b \"quoted\""}: every element quoted, so commas, braces, blanks and the word NULL
// are taken literally.
inline void append_quoted(std::string& out, std::string_view value) {
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

inline std::string text_array(const std::vector<std::string_view>& values) {
  std::string out = "{";
  for (auto value : values) {
    if (out.size() > 1)
      out += ',';
    append_quoted(out, value);
  }
  return out + '}';
}

// As text_array, with NULL for an empty optional.
inline std::string nullable_text_array(const std::vector<std::optional<std::string_view>>& values) {
  std::string out = "{";
  for (const auto& value : values) {
    if (out.size() > 1)
      out += ',';
    if (value)
      append_quoted(out, *value);
    else
      out += "NULL";
  }
  return out + '}';
}

template <typename Integer>
std::string integer_array(const std::vector<Integer>& values) {
  std::string out = "{";
  for (auto value : values) {
    if (out.size() > 1)
      out += ',';
    out += std::to_string(value);
  }
  return out + '}';
}

// As integer_array, with NULL for an empty optional.
template <typename Integer>
std::string nullable_integer_array(const std::vector<std::optional<Integer>>& values) {
  std::string out = "{";
  for (const auto& value : values) {
    if (out.size() > 1)
      out += ',';
    out += value ? std::to_string(*value) : "NULL";
  }
  return out + '}';
}

}  // namespace op::pg
