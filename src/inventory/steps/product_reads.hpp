#pragma once
// The catalog and stock of the products a saga transaction's orders name, read once for all of
// them (one statement) on first use, plainly or locked. Shared by the validate and reserve
// steps' transactions (order_pipeline::step_context::shared).

#include <cstdint>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

#include "order_pipeline/step.hpp"

namespace op::inventory {

class product_reads final : public order_pipeline::transaction_part {
 public:
  struct product {
    std::int64_t price_cents = 0;
    bool active = false;
    std::int64_t available = 0;  // less what earlier orders of this transaction reserved
  };

  // Locked from the start when the step decides under lock.
  explicit product_reads(order_pipeline::step_context& context);

  // Null for an unknown product.
  const product* find(const std::string& product_id);

  bool locked() const { return locked_; }

  // Reads the products again, locked in product order (so concurrent transactions cannot
  // deadlock): what they show is then certain until the commit.
  void lock();

  // Takes a reservation off the stock the later orders of the transaction see.
  void take(const std::string& product_id, std::int64_t quantity);

  static void prepare_statements(pqxx::connection& c);

  // A WITH item `stock_locks` (one row per lock) that takes a transaction-long advisory lock
  // per product of the text array `product_ids`, in one fixed order: every statement that
  // changes stock or reads it to decide takes them first, so two transactions cannot
  // deadlock on product rows. Unlike SELECT ... FOR UPDATE, an advisory lock writes no WAL and
  // no row lock into the product's page. A statement must evaluate it (reference it in an
  // initplan) before it reads or changes any product.
  static std::string stock_locks(std::string_view product_ids);

 private:
  void read();

  pqxx::work& tx_;
  std::vector<std::string> product_ids_;
  bool locked_;
  std::optional<std::map<std::string, product>> products_;
  std::map<std::string, std::int64_t> taken_;
};

}  // namespace op::inventory
