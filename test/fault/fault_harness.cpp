#include "fault/fault_harness.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/test_environment.hpp"

namespace op::fault {

using namespace std::chrono_literals;

long env_number(const char* name, long fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtol(value, nullptr, 10) : fallback;
}

std::string money_text(std::int64_t cents) {
  return fmt::format("{}.{:02}", cents / 100, cents % 100);
}

const char* to_string(order_kind k) {
  switch (k) {
    case order_kind::valid:
      return "valid";
    case order_kind::declined:
      return "declined card";
    case order_kind::invalid_total:
      return "invalid total";
    case order_kind::scarce:
      return "scarce product";
  }
  return "?";
}

order_record make_order(std::mt19937_64& rng, std::size_t index, const std::string& run,
                        const std::vector<product>& plenty, const std::vector<product>& scarce,
                        const std::vector<std::string>& customers) {
  auto pick = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  order_record o;
  auto roll = pick(100);
  o.kind = roll < 60   ? order_kind::valid
           : roll < 72 ? order_kind::declined
           : roll < 85 ? order_kind::invalid_total
                       : order_kind::scarce;
  o.key = fmt::format("{}-{}", run, index);
  std::vector<std::pair<const product*, int>> lines;
  auto add_plenty = [&](std::size_t count) {
    auto first = pick(plenty.size());
    for (std::size_t i = 0; i < count; ++i)
      lines.emplace_back(&plenty[(first + i) % plenty.size()], 1 + static_cast<int>(pick(3)));
  };
  if (o.kind == order_kind::scarce) {
    lines.emplace_back(&scarce[pick(scarce.size())], 1 + static_cast<int>(pick(2)));
    if (pick(2) == 0)
      add_plenty(1);
  } else {
    add_plenty(1 + pick(3));
  }
  std::int64_t total = 0;
  std::string items;
  for (const auto& [p, quantity] : lines) {
    total += p->price_cents * quantity;
    items += fmt::format(R"({}{{"productId":"{}","quantity":{},"price":{}}})",
                         items.empty() ? "" : ",", p->id, quantity, money_text(p->price_cents));
  }
  if (o.kind == order_kind::invalid_total)
    total += 1;
  o.body = fmt::format(
      R"({{"customerId":"{}","customerEmail":"buyer@example.com","totalAmount":{},"paymentMethod":"{}","items":[{}]}})",
      customers[pick(customers.size())], money_text(total),
      o.kind == order_kind::declined ? "pm_card_chargeDeclined" : "pm_card_visa", items);
  return o;
}

void place(order_record& o, steady::time_point give_up, std::mt19937& rng) {
  for (int attempt = 1; attempt <= 8; ++attempt) {
    o.attempts = attempt;
    try {
      auto reply =
          test::http_call(lb_port, "POST", "/api/orders", o.body, {{"Idempotency-Key", o.key}}, 5s);
      if (reply.status == 200) {
        o.order_id = test::json_field(reply.body, "orderId");
        o.result = o.order_id.empty() ? outcome::unknown : outcome::accepted;
        if (o.order_id.empty())
          o.last_error = "200 without orderId: " + reply.body;
        return;
      }
      o.last_error = fmt::format("HTTP {} {}", reply.status, reply.body);
      o.failures.push_back(fmt::format("HTTP {}", reply.status));
      if (reply.status < 500 && reply.status != 408 && reply.status != 429) {
        o.result = outcome::rejected;
        return;
      }
    } catch (const std::exception& e) {
      o.last_error = e.what();
      o.failures.push_back(e.what());
    }
    if (steady::now() > give_up)
      break;
    auto backoff = std::min(3000, 200 << (attempt - 1)) + static_cast<int>(rng() % 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
  }
  o.result = outcome::unknown;
}

bool gateway_control(const std::string& json) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    try {
      if (test::http_call(gateway_port, "POST", "/control", json, {}, 2s).status == 200)
        return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(250ms);
  }
  return false;
}

gateway_ledger ledger_of(const std::string& order_id) {
  gateway_ledger out;
  try {
    auto reply = test::http_call(gateway_port, "GET", "/v1/orders/" + order_id, "", {}, 5s);
    if (reply.status != 200)
      return out;
    rapidjson::Document doc;
    doc.Parse(reply.body.c_str());
    if (!doc.IsObject())
      return out;
    auto number = [&doc](const char* name) {
      return doc.HasMember(name) && doc[name].IsInt64() ? doc[name].GetInt64() : 0;
    };
    out.charges = number("charges");
    out.captured = number("capturedCents");
    out.refunded = number("refundedCents");
    out.attempts = number("chargeAttempts");
    out.read = true;
  } catch (const std::exception&) {
  }
  return out;
}

bool is_final(const std::string& status) {
  return status == "CONFIRMED" || status == "CANCELLED" || status == "FAILED";
}

std::map<std::string, db_order> read_orders() {
  return with_db([](pqxx::work& tx) {
    std::map<std::string, db_order> out;
    for (const auto& r :
         tx.exec("SELECT o.order_id, o.status, coalesce(o.cancel_reason, ''),"
                 " coalesce(o.cancel_detail, ''), o.total_cents, o.step_index,"
                 " extract(epoch FROM now() - o.updated_at)::float8 FROM orders o")) {
      out[r[0].as<std::string>()] = {r[1].as<std::string>(), r[2].as<std::string>(),
                                     r[3].as<std::string>(), r[4].as<std::int64_t>(),
                                     r[5].as<int>(),         r[6].as<double>()};
    }
    return out;
  });
}

std::map<std::string, std::string> replica_settings(const std::string& gateway_url) {
  return {
      {"DB_URL", db_url},
      {"KAFKA_BROKERS", kafka_brokers},
      {"KAFKA_GROUP_ID", "order-pipeline-fault"},
      {"PAYMENT_GATEWAY_URL", gateway_url},
      {"ADMIN_TOKEN", test::test_admin_token},
      {"DB_POOL_SIZE", "8"},
      {"SHUTDOWN_TIMEOUT", "3000"},
      {"APP_HEALTH_INTERVAL", "200"},
      {"APP_RETRY_BACKOFF_DELAY", "200"},
      // One attempt and two retries of 1 s each: the pay stage gives up after about 3.2 s.
      {"APP_PAYMENT_TIMEOUT", "1000"},
      {"APP_PAYMENT_MAX_RETRIES", "2"},
      {"APP_PAYMENT_CIRCUIT_BREAKER_WAIT_DURATION_IN_OPEN_STATE", "2000"},
      {"APP_SAGA_DEADLINE_VALIDATION", "60000"},
      {"APP_SAGA_DEADLINE_RESERVATION", "60000"},
      {"APP_SAGA_DEADLINE_PAYMENT", "30000"},
      {"APP_SAGA_DEADLINE_CONFIRMATION", "60000"},
      {"APP_SAGA_SWEEP_INTERVAL", "1000"},
  };
}

std::size_t count_lines_with(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);)
    n += line.find(needle) != std::string::npos;
  return n;
}

outcome_counts check_outcomes(std::vector<order_record>& orders,
                              const std::map<std::string, std::int64_t>& initial_stock,
                              timeline& events) {
  outcome_counts counts;
  auto& sent = counts.sent;
  auto& accepted = counts.accepted;
  auto& unknown = counts.unknown;
  auto& resolved = counts.resolved;
  auto& rejected = counts.rejected;
  auto& retried = counts.retried;
  auto& by_final = counts.by_final;
  auto& db = counts.db;
  // --- what the clients know ------------------------------------------------------------
  {
    std::map<std::string, std::string> order_of_key;
    with_db([&](pqxx::work& tx) {
      for (const auto& r : tx.exec("SELECT idempotency_key, order_id FROM idempotency_keys"))
        order_of_key[r[0].as<std::string>()] = r[1].as<std::string>();
      return 0;
    });
    for (auto& o : orders) {
      if (o.result == outcome::not_sent)
        continue;
      ++sent;
      if (o.result == outcome::accepted) {
        ++accepted;
        auto it = order_of_key.find(o.key);
        INFO("key " << o.key << " answered order " << o.order_id);
        CHECK((it != order_of_key.end() && it->second == o.order_id));
      } else if (o.result == outcome::unknown) {
        ++unknown;
        // The client never heard back: the database says whether the order was created.
        if (auto it = order_of_key.find(o.key); it != order_of_key.end()) {
          o.order_id = it->second;
          ++resolved;
        }
      } else {
        ++rejected;
      }
    }
    events.note(fmt::format(
        "clients: {} orders sent, {} accepted, {} outcome unknown ({} of them created), "
        "{} rejected",
        sent, accepted, unknown, resolved, rejected));
  }
  int shown = 0;
  for (const auto& o : orders)
    if (o.result == outcome::rejected && shown++ < 10) {
      INFO("a well-formed " << to_string(o.kind) << " order (key " << o.key
                            << ") was refused: " << o.last_error);
      CHECK(o.result != outcome::rejected);
    }
  CHECK(rejected == 0);
  std::map<std::string, int> retry_reasons;
  for (const auto& o : orders) {
    retried += !o.failures.empty();
    for (const auto& f : o.failures)
      ++retry_reasons[f];
  }
  {
    std::string reasons;
    for (const auto& [why, n] : retry_reasons)
      reasons += fmt::format("; {} x {}", n, why);
    events.note(fmt::format("{} orders needed more than one attempt{}", retried, reasons));
  }

  // --- every order reaches a final state ------------------------------------------------
  {
    const auto drain_deadline = steady::now() + 150s;
    auto last_report = steady::now() - 1h;
    for (;;) {
      try {
        db = read_orders();
      } catch (const std::exception& e) {
        events.note(std::string("reading orders failed: ") + e.what());
      }
      std::map<std::string, int> by_status;
      for (const auto& [id, o] : db)
        ++by_status[o.status];
      std::size_t open = 0;
      for (const auto& [status, n] : by_status)
        if (!is_final(status))
          open += static_cast<std::size_t>(n);
      if (open == 0 || steady::now() > drain_deadline || steady::now() - last_report > 10s) {
        std::string counts;
        for (const auto& [status, n] : by_status)
          counts += fmt::format(" {}={}", status, n);
        events.note(fmt::format("orders in the database:{}", counts));
        last_report = steady::now();
      }
      if (open == 0 || steady::now() > drain_deadline)
        break;
      std::this_thread::sleep_for(1s);
    }
  }

  // Every order in the database belongs to exactly one Idempotency-Key the clients used.
  std::map<std::string, const order_record*> record_of;
  for (const auto& o : orders)
    if (!o.order_id.empty())
      record_of[o.order_id] = &o;
  for (const auto& [id, o] : db) {
    INFO("order " << id << " (" << o.status << ") exists without a client's key: a duplicate?");
    CHECK(record_of.count(id) == 1);
  }
  for (const auto& [id, o] : record_of) {
    INFO("order " << id << " (key " << o->key << ") was answered but is not in the database");
    CHECK(db.count(id) == 1);
  }

  // --- refunds settle: no PENDING refund, no money kept for a cancelled order -----------
  std::map<std::string, db_payment> payments;
  std::map<std::string, gateway_ledger> ledgers;
  {
    const auto refund_deadline = steady::now() + 60s;
    for (;;) {
      payments.clear();
      try {
        with_db([&](pqxx::work& tx) {
          for (const auto& r : tx.exec("SELECT order_id, amount_cents,"
                                       " coalesce(refund_state, ''), refunded_cents FROM payments"))
            payments[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<std::string>(),
                                                r[3].as<std::int64_t>()};
          return 0;
        });
      } catch (const std::exception& e) {
        events.note(std::string("reading payments failed: ") + e.what());
      }
      std::size_t pending = 0, kept = 0;
      for (const auto& [id, p] : payments)
        pending += p.refund_state == "PENDING";
      for (const auto& [id, o] : db) {
        if (o.status == "CONFIRMED" && ledgers.count(id) && ledgers[id].read)
          continue;  // a confirmed order's charge does not change any more
        auto ledger = ledger_of(id);
        ledgers[id] = ledger;
        kept += o.status != "CONFIRMED" && ledger.captured != ledger.refunded;
      }
      if ((pending == 0 && kept == 0) || steady::now() > refund_deadline) {
        events.note(
            fmt::format("refunds: {} pending in the database, {} cancelled orders with money kept",
                        pending, kept));
        break;
      }
      std::this_thread::sleep_for(2s);
    }
  }

  // --- per order: final, charged at most once, money matches the outcome ----------------
  std::size_t stuck = 0, double_charged = 0, money_wrong = 0, unexpected = 0, failed_no_dlq = 0;
  bool dlq_table = with_db([](pqxx::work& tx) {
    return !tx.exec("SELECT to_regclass('dead_letters')")[0][0].is_null();
  });
  std::int64_t confirmed_cents = 0;
  const int show = 20;  // per kind of problem: enough to debug, not a flood
  for (const auto& [id, o] : db) {
    const auto* rec = record_of.count(id) ? record_of[id] : nullptr;
    const char* kind = rec ? to_string(rec->kind) : "unknown kind";
    auto status_text = o.status + (o.reason.empty() ? "" : "/" + o.reason);
    ++by_final[status_text];
    const auto& ledger = ledgers[id];
    INFO("order " << id << " (" << kind << "): status " << status_text << " saga step "
                  << o.saga_step_index << ", detail '" << o.detail << "', total " << o.total_cents
                  << ", gateway charges " << ledger.charges << " attempts " << ledger.attempts
                  << " captured " << ledger.captured << " refunded " << ledger.refunded);
    if (!is_final(o.status)) {
      if (stuck++ < show)
        FAIL_CHECK("order " << id << " is stuck in " << o.status << " (saga step "
                            << o.saga_step_index << ", unchanged for "
                            << static_cast<int>(o.age_seconds) << " s)");
      continue;
    }
    if (o.status == "FAILED") {
      std::int64_t letters = 0;
      if (dlq_table)
        letters = with_db([&id](pqxx::work& tx) {
          return tx.exec_params("SELECT count(*) FROM dead_letters WHERE order_id = $1", id)[0][0]
              .as<std::int64_t>();
        });
      if (letters == 0 && failed_no_dlq++ < show)
        FAIL_CHECK("order " << id << " is FAILED without an entry in dead_letters"
                            << (dlq_table ? "" : " (the table does not exist)"));
    }
    if (!ledger.read) {
      if (money_wrong++ < show)
        FAIL_CHECK("the gateway's ledger of order " << id << " could not be read");
      continue;
    }
    if (ledger.charges > 1 && double_charged++ < show)
      FAIL_CHECK("order " << id << " was charged " << ledger.charges << " times");
    auto payment = payments.find(id);
    if (o.status == "CONFIRMED") {
      confirmed_cents += o.total_cents;
      bool ok = ledger.charges == 1 && ledger.captured == o.total_cents && ledger.refunded == 0 &&
                payment != payments.end() && payment->second.amount_cents == o.total_cents &&
                payment->second.refund_state.empty();
      if (!ok && money_wrong++ < show)
        FAIL_CHECK("confirmed order "
                   << id << " did not have exactly its total captured once ("
                   << "payments row: "
                   << (payment == payments.end() ? std::string("none")
                                                 : fmt::format("amount {} refund_state '{}'",
                                                               payment->second.amount_cents,
                                                               payment->second.refund_state))
                   << ")");
    } else {
      bool kept = ledger.captured != ledger.refunded;
      bool refund_recorded =
          payment != payments.end() && payment->second.refund_state == "REFUNDED";
      if ((kept || (ledger.captured > 0 && !refund_recorded)) && money_wrong++ < show)
        FAIL_CHECK(
            o.status << " order " << id << " was charged " << ledger.captured << " and refunded "
                     << ledger.refunded << " at the gateway; payments"
                     << " refund_state '"
                     << (payment == payments.end() ? "(no row)" : payment->second.refund_state)
                     << "'");
    }
    // Outcomes the order's content decides, whatever the faults.
    if (rec) {
      bool fits = true;
      if (rec->kind == order_kind::invalid_total)
        fits = o.status == "CANCELLED" && o.reason == "VALIDATION_FAILED";
      else if (rec->kind == order_kind::declined)
        fits = o.status != "CONFIRMED";
      else
        fits = o.reason != "VALIDATION_FAILED";
      if (!fits && unexpected++ < show)
        FAIL_CHECK("a " << kind << " order " << id << " ended " << status_text);
    }
  }
  CHECK(stuck == 0);
  CHECK(failed_no_dlq == 0);
  CHECK(double_charged == 0);
  CHECK(money_wrong == 0);
  CHECK(unexpected == 0);

  // --- the gateway's books and the stock reconcile ----------------------------------------
  std::int64_t net_captured = 0;
  {
    auto reply = test::http_call(gateway_port, "GET", "/v1/stats", "", {}, 5s);
    REQUIRE(reply.status == 200);
    rapidjson::Document doc;
    doc.Parse(reply.body.c_str());
    REQUIRE(doc.IsObject());
    net_captured = doc["capturedCents"].GetInt64() - doc["refundedCents"].GetInt64();
    INFO("gateway stats " << reply.body);
    CHECK(net_captured == confirmed_cents);
  }
  std::map<std::string, std::int64_t> sold_by_confirmed;
  std::map<std::string, test::stock_levels> stock;
  with_db([&](pqxx::work& tx) {
    for (const auto& r : tx.exec("SELECT i.product_id, sum(i.quantity)::bigint FROM orders o"
                                 " CROSS JOIN LATERAL unnest(o.items) AS i"
                                 " WHERE o.status = 'CONFIRMED' GROUP BY i.product_id"))
      sold_by_confirmed[r[0].as<std::string>()] = r[1].as<std::int64_t>();
    for (const auto& r : tx.exec("SELECT product_id, available, reserved, sold FROM products"))
      stock[r[0].as<std::string>()] = {r[1].as<std::int64_t>(), r[2].as<std::int64_t>(),
                                       r[3].as<std::int64_t>()};
    return 0;
  });
  for (const auto& [id, initial] : initial_stock) {
    auto s = stock[id];
    INFO("product " << id << ": stocked " << initial << ", available " << s.available
                    << " reserved " << s.reserved << " sold " << s.sold
                    << ", confirmed orders hold " << sold_by_confirmed[id]);
    CHECK(s.available + s.reserved + s.sold == initial);
    CHECK(s.reserved == 0);
    CHECK(s.sold == sold_by_confirmed[id]);
  }
  return counts;
}

}  // namespace op::fault
