#pragma once
// One transaction of the saga engine: the PostgreSQL transaction, the sagas it locked, and the
// parts the steps share in it (order_pipeline::transaction_part), to be written together right
// before the commit (one statement for every order of a batch instead of one per order).

#include <memory>
#include <pqxx/pqxx>
#include <typeindex>
#include <utility>
#include <vector>

#include "order_pipeline/step.hpp"
#include "saga/engine/saga_row.hpp"

namespace op::saga {

class transaction_scope {
 public:
  // `rows`: the sagas of the batch the steps run for (empty for a compensation outside a
  // step). `under_lock`: the run after decide_again_under_lock.
  transaction_scope(pqxx::work& tx, std::vector<const saga_row*> rows, bool under_lock)
      : tx_(tx), rows_(std::move(rows)), under_lock_(under_lock) {}
  transaction_scope(const transaction_scope&) = delete;
  transaction_scope& operator=(const transaction_scope&) = delete;

  pqxx::work& tx() { return tx_; }
  const std::vector<const saga_row*>& rows() const { return rows_; }
  bool under_lock() const { return under_lock_; }

  // The batch's orders as the public API shows them, made once for the whole transaction.
  const std::vector<order_pipeline::order>& orders() {
    if (orders_.size() != rows_.size()) {
      orders_.clear();
      for (const auto* row : rows_)
        orders_.push_back(to_public_order(row->order));
    }
    return orders_;
  }

  order_pipeline::transaction_part* find_part(std::type_index type) {
    for (auto& [existing_type, part] : parts_)
      if (existing_type == type)
        return part.get();
    return nullptr;
  }
  order_pipeline::transaction_part& add_part(
      std::type_index type, std::unique_ptr<order_pipeline::transaction_part> part) {
    parts_.emplace_back(type, std::move(part));
    return *parts_.back().second;
  }

  // Runs every part's before_commit, in the order they were made.
  void before_commit() {
    for (auto& [type, part] : parts_)
      part->before_commit(tx_);
  }

 private:
  pqxx::work& tx_;
  const std::vector<const saga_row*> rows_;
  const bool under_lock_;
  std::vector<order_pipeline::order> orders_;
  std::vector<std::pair<std::type_index, std::unique_ptr<order_pipeline::transaction_part>>> parts_;
};

}  // namespace op::saga
