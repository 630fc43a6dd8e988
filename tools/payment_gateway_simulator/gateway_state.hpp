#pragma once
// The simulator's in-memory ledger: charges and refunds per order, the answers stored under
// each idempotency key, counters, and the fault settings set through /control.
//
// Shared by every connection; all members lock one mutex, so any thread may call them.

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

namespace op::payment_simulator {

struct fault_settings {
  std::int64_t latency_ms = 0;
  std::int64_t jitter_ms = 0;
  double failure_rate = 0.0;    // share of charges and refunds answered 500 without effect
  bool outage = false;          // every /v1 call answers 503
  std::int64_t timeout_ms = 0;  // every /v1 response is held this long after its work
};

// An HTTP answer before it is put on the wire.
struct gateway_reply {
  unsigned status = 200;
  std::string body;
};

struct charge_input {
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::string currency;
  std::string payment_method;
};

class gateway_state {
 public:
  explicit gateway_state(fault_settings initial);

  fault_settings settings() const;
  void update_settings(const fault_settings& settings);
  // Forgets every charge, refund, key and counter; settings go back to the start-up values.
  void reset();

  // Counts one /v1 request and draws the latency to add to it (latency + 0..jitter).
  std::chrono::milliseconds begin_request();

  gateway_reply charge(const std::string& idempotency_key, const charge_input& input);
  gateway_reply refund(const std::string& idempotency_key, const std::string& order_id);
  gateway_reply order_summary(const std::string& order_id) const;
  gateway_reply stats() const;

 private:
  struct order_record {
    std::int64_t charges = 0;  // succeeded ones
    std::int64_t captured_cents = 0;
    std::int64_t refunded_cents = 0;
    std::int64_t charge_attempts = 0;
    std::optional<gateway_reply> refund_answer;  // the answer of the order's refund
  };
  struct stored_answer {
    std::string fingerprint;  // the request the key was first used with
    gateway_reply reply;
  };

  // Both assume mutex_ is held.
  std::optional<gateway_reply> injected_fault();
  std::string next_id(const char* prefix);

  const fault_settings initial_;
  mutable std::mutex mutex_;
  fault_settings settings_;
  std::mt19937_64 random_;
  std::uint64_t id_sequence_ = 0;
  std::unordered_map<std::string, order_record> orders_;
  std::unordered_map<std::string, stored_answer> charge_keys_;
  std::unordered_map<std::string, stored_answer> refund_keys_;
  std::int64_t charges_ = 0;
  std::int64_t refunds_ = 0;
  std::int64_t captured_cents_ = 0;
  std::int64_t refunded_cents_ = 0;
  std::int64_t requests_ = 0;
};

// The error body the simulator uses, shaped like well-known gateways' errors:
// {"error":{"type":..., "code":..., "message":...}} plus "declineCode" when given.
gateway_reply error_reply(unsigned status, const std::string& type, const std::string& code,
                          const std::string& message, const std::string& decline_code = {});

}  // namespace op::payment_simulator
