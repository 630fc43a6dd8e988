#pragma once
// The inventory's part of the saga: the reserve step (all items or none), and the release
// and commit of a reservation, which the saga asks for as compensation (payment declined,
// cancelled, ...) and when the order is confirmed (the reserved units are sold).
//
// Product rows are the pipeline's hot rows: every order of a product writes the same row.
// Stock changes are therefore gathered in the transaction (stock_changes) and written last,
// one statement for all of its orders, right before the commit, so the row locks are held
// for two round trips. A reservation is taken after a plain read saw enough stock; if the
// stock ran out in between, the step runs again alone and decides under the lock.

#include <pqxx/pqxx>
#include <string_view>
#include <utility>
#include <vector>

#include "saga/engine/step_engine.hpp"

namespace op::inventory {

class stock_changes final : public saga::transaction_part {
 public:
  enum class kind { reserve, release, commit };

  explicit stock_changes(saga::transaction_scope&) {}

  // Changes the stock of every product of the order.
  void add(std::string_view order_id, kind change) { changes_.emplace_back(order_id, change); }

  // Throws saga::decide_again_under_lock when a reservation finds less stock than the read
  // it was decided on.
  void before_commit(pqxx::work& tx) override;

 private:
  std::vector<std::pair<std::string_view, kind>> changes_;  // order ids of the scope's rows
};

// The reserve step's decision.
saga::step_effect reservation();

// The saga's commands on a reservation.
void release_reservation(saga::transaction_scope& scope, const saga::saga_row& row);
void commit_reservation(saga::transaction_scope& scope, const saga::saga_row& row);

void prepare_reservation_statements(pqxx::connection& c);

}  // namespace op::inventory
