#pragma once
// The inventory's part of the saga: the reserve step (all items or none), and the release and
// sale of a reservation, which the saga runs as the step's compensation (payment declined,
// cancelled, ...) and its finalizer (the order confirmed: the reserved units are sold).
//
// Product rows are the pipeline's hot rows: every order of a product writes the same row.
// Stock changes are therefore gathered in the transaction (stock_changes) and written last,
// one statement for all of its orders, right before the commit, so the row locks are held
// for two round trips. A reservation is taken after a plain read saw enough stock; if the
// stock ran out in between, the step runs again alone and decides under the lock.

#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "order_pipeline/step.hpp"

namespace op::inventory {

inline constexpr std::string_view out_of_stock_reason = "OUT_OF_STOCK";

class stock_changes final : public order_pipeline::transaction_part {
 public:
  enum class kind { reserve, release, commit };

  explicit stock_changes(order_pipeline::step_context&) {}

  // Changes the stock of every product of the order.
  void add(std::string order_id, kind change) {
    changes_.emplace_back(std::move(order_id), change);
  }

  // Throws order_pipeline::decide_again_under_lock when a reservation finds less stock than
  // the read it was decided on.
  void before_commit(pqxx::work& tx) override;

 private:
  std::vector<std::pair<std::string, kind>> changes_;
};

// The reserve step as the saga declares it (topic, deadline and retries come from the
// configuration).
order_pipeline::step reservation_step();

void prepare_reservation_statements(pqxx::connection& c);

}  // namespace op::inventory
