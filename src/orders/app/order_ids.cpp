#include "orders/app/order_ids.hpp"

#include <chrono>
#include <random>

namespace op::orders {

std::string new_order_id() {
  static constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto millis = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count());
  std::uint64_t random_high = rng() & 0xFFFF;  // 16 bits
  std::uint64_t random_low = rng();            // 64 bits
  std::string out = "ORD-";
  out.resize(4 + 26);
  // 26 characters x 5 bits = 130 bits: 48 time bits, then 80 random bits, top 2 bits zero.
  for (int i = 9; i >= 0; --i) {
    out[4 + static_cast<std::size_t>(i)] = alphabet[millis & 31];
    millis >>= 5;
  }
  for (int i = 25; i >= 10; --i) {
    out[4 + static_cast<std::size_t>(i)] = alphabet[random_low & 31];
    random_low = (random_low >> 5) | ((random_high & 31) << 59);
    random_high >>= 5;
  }
  return out;
}

}  // namespace op::orders
