#include "gateway_state.hpp"

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace op::payment_simulator {

namespace {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

template <class Fill>
std::string json_object(Fill fill) {
  rapidjson::StringBuffer buffer;
  json_writer writer(buffer);
  writer.StartObject();
  fill(writer);
  writer.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

void put(json_writer& writer, const char* key, const std::string& value) {
  writer.Key(key);
  writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void put(json_writer& writer, const char* key, std::int64_t value) {
  writer.Key(key);
  writer.Int64(value);
}

std::string fingerprint(const charge_input& input) {
  return fmt::format("{}\n{}\n{}\n{}", input.order_id, input.amount_cents, input.currency,
                     input.payment_method);
}

gateway_reply idempotency_conflict(const std::string& key) {
  return error_reply(409, "idempotency_error", "idempotency_key_in_use",
                     "Keys for idempotent requests can only be used with the same parameters "
                     "they were first used with; key: " +
                         key);
}

}  // namespace

gateway_reply error_reply(unsigned status, const std::string& type, const std::string& code,
                          const std::string& message, const std::string& decline_code) {
  return {status, json_object([&](json_writer& w) {
            w.Key("error");
            w.StartObject();
            put(w, "type", type);
            put(w, "code", code);
            if (!decline_code.empty())
              put(w, "declineCode", decline_code);
            put(w, "message", message);
            w.EndObject();
          })};
}

gateway_state::gateway_state(fault_settings initial)
    : initial_(initial), settings_(initial), random_(std::random_device{}()) {}

fault_settings gateway_state::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

void gateway_state::update_settings(const fault_settings& settings) {
  std::lock_guard lock(mutex_);
  settings_ = settings;
}

void gateway_state::reset() {
  std::lock_guard lock(mutex_);
  settings_ = initial_;
  orders_.clear();
  charge_keys_.clear();
  refund_keys_.clear();
  charges_ = refunds_ = captured_cents_ = refunded_cents_ = requests_ = 0;
}

std::chrono::milliseconds gateway_state::begin_request() {
  std::lock_guard lock(mutex_);
  ++requests_;
  std::int64_t delay = settings_.latency_ms;
  if (settings_.jitter_ms > 0)
    delay += std::uniform_int_distribution<std::int64_t>(0, settings_.jitter_ms)(random_);
  return std::chrono::milliseconds(delay);
}

std::optional<gateway_reply> gateway_state::injected_fault() {
  if (settings_.outage)
    return error_reply(503, "api_error", "service_unavailable",
                       "The gateway is unavailable (simulated outage).");
  if (settings_.failure_rate > 0 &&
      std::uniform_real_distribution<double>(0.0, 1.0)(random_) < settings_.failure_rate)
    return error_reply(500, "api_error", "internal_error",
                       "The gateway failed to process the request (simulated failure).");
  return std::nullopt;
}

std::string gateway_state::next_id(const char* prefix) {
  // Unique across resets and restarts of the simulator: a sequence plus random bits.
  return fmt::format("{}_{:012x}{:08x}", prefix, ++id_sequence_,
                     static_cast<std::uint32_t>(random_()));
}

gateway_reply gateway_state::charge(const std::string& idempotency_key, const charge_input& input) {
  std::lock_guard lock(mutex_);
  ++orders_[input.order_id].charge_attempts;
  if (auto fault = injected_fault())
    return *fault;

  auto key = charge_keys_.find(idempotency_key);
  if (key != charge_keys_.end()) {
    if (key->second.fingerprint != fingerprint(input))
      return idempotency_conflict(idempotency_key);
    return key->second.reply;
  }

  gateway_reply reply;
  const std::string& method = input.payment_method;
  if (method == "pm_card_visa") {
    order_record& order = orders_[input.order_id];
    ++order.charges;
    order.captured_cents += input.amount_cents;
    ++charges_;
    captured_cents_ += input.amount_cents;
    reply = {200, json_object([&](json_writer& w) {
               put(w, "id", next_id("ch"));
               put(w, "status", std::string("succeeded"));
               put(w, "orderId", input.order_id);
               put(w, "amountCents", input.amount_cents);
               put(w, "currency", input.currency);
             })};
  } else if (method == "pm_card_chargeDeclined") {
    reply = error_reply(402, "card_error", "card_declined", "Your card was declined.",
                        "generic_decline");
  } else if (method == "pm_card_chargeDeclinedInsufficientFunds") {
    reply = error_reply(402, "card_error", "card_declined", "Your card has insufficient funds.",
                        "insufficient_funds");
  } else {
    reply = error_reply(402, "card_error", "invalid_payment_method",
                        "No such payment method: '" + method + "'.");
  }
  // Declines are stored too: asking again with the same key gets the same decline.
  charge_keys_[idempotency_key] = {fingerprint(input), reply};
  return reply;
}

gateway_reply gateway_state::refund(const std::string& idempotency_key,
                                    const std::string& order_id) {
  std::lock_guard lock(mutex_);
  if (auto fault = injected_fault())
    return *fault;

  auto key = refund_keys_.find(idempotency_key);
  if (key != refund_keys_.end()) {
    if (key->second.fingerprint != order_id)
      return idempotency_conflict(idempotency_key);
    return key->second.reply;
  }

  auto found = orders_.find(order_id);
  if (found == orders_.end() || found->second.captured_cents == 0) {
    // Not stored under the key: should a charge still land later, a retried compensating
    // refund with the same key must refund it rather than replay "no_charge".
    return {200, json_object([&](json_writer& w) {
              put(w, "status", std::string("no_charge"));
              put(w, "orderId", order_id);
              put(w, "amountCents", std::int64_t{0});
            })};
  }
  order_record& order = found->second;
  std::int64_t refundable = order.captured_cents - order.refunded_cents;
  if (refundable > 0) {
    order.refunded_cents += refundable;
    ++refunds_;
    refunded_cents_ += refundable;
    order.refund_answer = gateway_reply{200, json_object([&](json_writer& w) {
                                          put(w, "id", next_id("re"));
                                          put(w, "status", std::string("succeeded"));
                                          put(w, "orderId", order_id);
                                          put(w, "amountCents", refundable);
                                        })};
  }
  // An order is refunded once: another key gets the first refund back, not a second one.
  refund_keys_[idempotency_key] = {order_id, *order.refund_answer};
  return *order.refund_answer;
}

gateway_reply gateway_state::order_summary(const std::string& order_id) const {
  std::lock_guard lock(mutex_);
  order_record order;
  if (auto found = orders_.find(order_id); found != orders_.end())
    order = found->second;
  return {200, json_object([&](json_writer& w) {
            put(w, "orderId", order_id);
            put(w, "charges", order.charges);
            put(w, "capturedCents", order.captured_cents);
            put(w, "refundedCents", order.refunded_cents);
            put(w, "chargeAttempts", order.charge_attempts);
          })};
}

gateway_reply gateway_state::stats() const {
  std::lock_guard lock(mutex_);
  return {200, json_object([&](json_writer& w) {
            put(w, "charges", charges_);
            put(w, "refunds", refunds_);
            put(w, "capturedCents", captured_cents_);
            put(w, "refundedCents", refunded_cents_);
            put(w, "requests", requests_);
          })};
}

}  // namespace op::payment_simulator
