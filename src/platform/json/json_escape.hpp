#pragma once
#include <string>
#include <string_view>

namespace op::json {

// Appends `text` to `out` as the inside of a JSON string (quotes not included). Bytes that
// are not well-formed UTF-8 are written as U+FFFD, one each, so the result is always valid
// JSON, whatever bytes `text` holds.
void append_escaped(std::string_view text, std::string& out);

// `text` as a complete JSON string literal, quotes included.
std::string quoted(std::string_view text);

// True when `text` is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

}  // namespace op::json
