#include "payments/steps/refund_worker.hpp"

#include <string>
#include <vector>

#include "orders/domain/money.hpp"
#include "platform/log/logging.hpp"

namespace op::payments {

using std::chrono::milliseconds;

void refund_worker::prepare_statements(pqxx::connection& c) {
  c.prepare("saga_pending_refunds",
            "SELECT order_id, charge_id = '', refund_checks FROM payments"
            " WHERE refund_state = 'PENDING' AND next_refund_at <= now() ORDER BY order_id"
            " LIMIT 100");
  c.prepare("saga_refund_recheck",
            "UPDATE payments SET refund_checks = refund_checks + 1,"
            " next_refund_at = now() + make_interval(secs => $2)"
            " WHERE order_id = $1 AND refund_state = 'PENDING' AND charge_id = ''");
  c.prepare("saga_refund_done",
            "UPDATE payments SET refund_state = 'REFUNDED', refunded_cents = $2,"
            " refunded_at = now() WHERE order_id = $1 AND refund_state = 'PENDING'");
}

void refund_worker::start(asio::io_context& ioc) {
  thread_ = std::thread([this, &ioc] { run(ioc); });
}

void refund_worker::stop() {
  stopping_ = true;
  if (thread_.joinable())
    thread_.join();
}

void refund_worker::run(asio::io_context& ioc) {
  auto logger = log::get("payments");
  while (!stopping_) {
    auto pause = milliseconds(500);
    try {
      struct pending_refund {
        std::string order_id;
        bool capture_unknown;  // no capture recorded: a timed-out charge may still land
        int checks;
      };
      std::vector<pending_refund> pending;
      pool_.with_connection([&](pqxx::connection& c) {
        pqxx::work tx(c);
        for (const auto& r : tx.exec_prepared("saga_pending_refunds"))
          pending.push_back({r[0].as<std::string>(), r[1].as<bool>(), r[2].as<int>()});
      });
      for (const auto& [order_id, capture_unknown, checks] : pending) {
        if (stopping_)
          break;
        auto result = asio::co_spawn(ioc, gateway_.refund(order_id), asio::use_future).get();
        if (result.outcome == gateway_outcome::unavailable) {
          // The gateway's circuit is open: try the whole batch again once it may be back.
          pause = std::max(pause, result.retry_after);
          logger->info("refunds wait {} ms for the payment gateway", pause.count());
          break;
        }
        if (result.outcome == gateway_outcome::transient_failure) {
          logger->warn("refund of order {} failed, will retry: {}", order_id, result.message);
          continue;
        }
        if (result.refunded_cents == 0 && capture_unknown &&
            checks < settings_.late_charge_checks) {
          // Nothing captured yet. A charge the gateway still holds (our call timed out)
          // would land later: look again after twice the call timeout, then doubling.
          auto wait = settings_.late_charge_wait * (2 << checks);
          pool_.with_connection([&](pqxx::connection& c) {
            pqxx::work tx(c);
            tx.exec_prepared("saga_refund_recheck", order_id,
                             static_cast<double>(wait.count()) / 1000.0);
            tx.commit();
          });
          logger->debug("order {}: nothing to refund yet; checking again in {} ms", order_id,
                        wait.count());
          continue;
        }
        pool_.with_connection([&](pqxx::connection& c) {
          pqxx::work tx(c);
          tx.exec_prepared("saga_refund_done", order_id, result.refunded_cents);
          tx.commit();
        });
        logger->info("order {} refunded {}", order_id,
                     orders::money::from_cents(result.refunded_cents).to_string());
      }
    } catch (const std::exception& e) {
      logger->warn("refund worker: {}", e.what());
    }
    for (auto waited = milliseconds(0); waited < pause && !stopping_; waited += milliseconds(100))
      std::this_thread::sleep_for(milliseconds(100));
  }
}

}  // namespace op::payments
