#pragma once
// One transaction of the saga engine, as the steps see it: the PostgreSQL transaction, the
// sagas it locked, and the parts the steps gather in it to be written together right before
// the commit (one statement for every order of a batch instead of one per order).

#include <memory>
#include <pqxx/pqxx>
#include <stdexcept>
#include <typeindex>
#include <utility>
#include <vector>

#include "saga/engine/saga_row.hpp"

namespace op::saga {

// What the steps of one transaction gather: reads shared by the batch's orders, writes made
// together at the end. Created on first use by transaction_scope::part.
class transaction_part {
 public:
  virtual ~transaction_part() = default;
  // After the sagas and their events are written, right before the commit: writes to hot rows
  // (the stock of a product every order touches) go last, so their locks are held briefly.
  virtual void before_commit(pqxx::work&) {}
};

// A decision made without a lock turned out wrong at the write (another transaction took the
// last units in between): the engine runs the step again alone, deciding under the lock.
struct decide_again_under_lock : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

  // The transaction's Part, made with Part(*this) on first use.
  template <class Part>
  Part& part() {
    for (auto& [type, existing] : parts_)
      if (type == typeid(Part))
        return static_cast<Part&>(*existing);
    auto made = std::make_unique<Part>(*this);
    auto& out = *made;
    parts_.emplace_back(typeid(Part), std::move(made));
    return out;
  }

  // Runs every part's before_commit, in the order they were made.
  void before_commit() {
    for (auto& [type, existing] : parts_)
      existing->before_commit(tx_);
  }

 private:
  pqxx::work& tx_;
  const std::vector<const saga_row*> rows_;
  const bool under_lock_;
  std::vector<std::pair<std::type_index, std::unique_ptr<transaction_part>>> parts_;
};

}  // namespace op::saga
