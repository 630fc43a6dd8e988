#include "fraud_settings.hpp"

#include <cstdlib>
#include <stdexcept>

namespace fraud_screening {
namespace {

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

std::int64_t whole_number(const char* name, std::int64_t fallback, std::int64_t minimum) {
  const char* text = variable(name);
  if (!text)
    return fallback;
  char* end = nullptr;
  long long value = std::strtoll(text, &end, 10);
  if (*end != '\0' || value < minimum)
    throw std::invalid_argument(std::string(name) + "='" + text +
                                "': expected a whole number of at least " +
                                std::to_string(minimum));
  return value;
}

double factor(const char* name, double fallback) {
  const char* text = variable(name);
  if (!text)
    return fallback;
  char* end = nullptr;
  double value = std::strtod(text, &end);
  if (*end != '\0' || !(value >= 1.0))
    throw std::invalid_argument(std::string(name) + "='" + text +
                                "': expected a number of at least 1");
  return value;
}

}  // namespace

fraud_settings fraud_settings::from_environment() {
  fraud_settings s;
  s.max_first_order_cents = whole_number("FRAUD_MAX_FIRST_ORDER_CENTS", s.max_first_order_cents, 0);
  s.screen_retry.max_retries =
      static_cast<int>(whole_number("FRAUD_SCREEN_MAX_RETRIES", s.screen_retry.max_retries, 0));
  s.screen_retry.backoff = std::chrono::milliseconds(
      whole_number("FRAUD_SCREEN_BACKOFF_MS", s.screen_retry.backoff.count(), 1));
  s.screen_retry.multiplier = factor("FRAUD_SCREEN_BACKOFF_MULTIPLIER", s.screen_retry.multiplier);
  const char* url = variable("DB_URL");
  if (!url)
    throw std::invalid_argument(
        "DB_URL is not set: the example keeps its tables in the "
        "pipeline's database and needs its URL");
  s.database_url = url;
  // The pipeline accepts the seed's JDBC form; libpq does not.
  if (s.database_url.rfind("jdbc:", 0) == 0)
    s.database_url.erase(0, 5);
  return s;
}

}  // namespace fraud_screening
