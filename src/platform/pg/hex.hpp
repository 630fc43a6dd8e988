#pragma once
// Bytes to and from hex text, for bytea columns: statements take decode($n, 'hex') and return
// encode(column, 'hex'), so arbitrary message bytes (NULs, invalid UTF-8) round-trip exactly.

#include <string>
#include <string_view>

namespace op::pg {

inline std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

// Expects what encode(..., 'hex') produces: an even number of lower- or upper-case digits.
inline std::string from_hex(std::string_view hex) {
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return 0;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(value(hex[i]) << 4 | value(hex[i + 1]));
  return out;
}

}  // namespace op::pg
