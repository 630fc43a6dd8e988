#pragma once
#include <string>
#include <string_view>

namespace op::json {

// Appends `text` to `out` as the inside of a JSON string (quotes not included).
void append_escaped(std::string_view text, std::string& out);

// `text` as a complete JSON string literal, quotes included.
std::string quoted(std::string_view text);

}  // namespace op::json
