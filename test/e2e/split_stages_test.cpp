// One stage scaled on its own: two replicas of the real binary share PostgreSQL, Kafka and
// the consumer group, but each runs only some stages (app.stages.enabled). Replica A takes
// the orders (the public API) and validates and reserves them; replica B, a worker without
// the API (app.http.api-enabled=false), pays and confirms them.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/pipeline_fixture.hpp"
#include "support/replica_probe.hpp"
#include "support/server_process.hpp"
#include "support/test_environment.hpp"

using namespace op;
using namespace std::chrono_literals;

namespace {

using test::eventually;

using stage_list = std::vector<std::string>;

std::optional<double> stage_enabled(unsigned short port, const std::string& stage) {
  return test::find_metric_sample(port,
                                  fmt::format(R"(pipeline_stage_enabled{{stage="{}"}})", stage));
}

double messages(unsigned short port, const std::string& stage, const std::string& outcome) {
  return test::metric_sample(
      port, fmt::format(R"(pipeline_messages_total{{outcome="{}",stage="{}"}})", outcome, stage));
}

double applied(unsigned short port, const std::string& stage) {
  return messages(port, stage, "applied");
}

}  // namespace

TEST_CASE(
    "orders placed at an API replica running validate and reserve are paid and confirmed "
    "by a worker replica running pay and confirm",
    "[saga][stages]") {
  test::pipeline_fixture a(
      std::map<std::string, std::string>{{"APP_STAGES_ENABLED", "validate,reserve"}});
  test::server_process b({{"PAYMENT_GATEWAY_URL", a.gateway.url()},
                          {"APP_STAGES_ENABLED", "pay,confirm"},
                          {"APP_HTTP_API_ENABLED", "false"}});
  b.start();
  b.wait_until_ready();

  // Each replica says what it runs; only the one that pays shows the payment gateway.
  CHECK(test::enabled_stages(a.port()) == stage_list{"validate", "reserve"});
  CHECK(test::enabled_stages(b.port()) == stage_list{"pay", "confirm"});
  CHECK_FALSE(test::has_health_component(a.port(), "paymentGateway"));
  CHECK(test::has_health_component(b.port(), "paymentGateway"));
  for (const std::string stage : {"validate", "reserve", "pay", "confirm"}) {
    INFO(stage);
    const bool on_a = stage == "validate" || stage == "reserve";
    CHECK(stage_enabled(a.port(), stage) == (on_a ? 1.0 : 0.0));
    CHECK(stage_enabled(b.port(), stage) == (on_a ? 0.0 : 1.0));
  }

  // The worker serves probes and metrics, and no public API.
  CHECK(test::http_get(b.port(), "/actuator/health/readiness").status == 200);
  CHECK(test::http_get(b.port(), "/actuator/health/liveness").status == 200);
  auto list = test::http_get(b.port(), "/api/orders");
  CHECK(list.status == 404);
  CHECK(test::json_field(list.body, "error") == "not_found");
  CHECK(test::http_call(b.port(), "POST", "/api/orders", R"({"customerId":"c"})").status == 404);
  CHECK(test::http_get(b.port(), "/api/orders/health").status == 404);
  CHECK(test::http_get(b.port(), "/openapi.yaml").status == 404);
  auto admin = test::http_call(b.port(), "GET", "/api/admin/dlq", "",
                               {{"Authorization", "Bearer " + test::test_admin_token}});
  CHECK(admin.status == 404);

  auto product = a.product("12.50", 10);
  const double a_paid_before = applied(a.port(), "pay");
  const double b_paid_before = applied(b.port(), "pay");
  auto approved = a.order_of(product, 2, "12.50", "25.00");
  auto declined = a.order_of(product, 3, "12.50", "37.50", "pm_card_chargeDeclined");

  auto confirmed = a.wait_final(approved);
  CHECK(confirmed.status == "CONFIRMED");
  auto cancelled = a.wait_final(declined);
  CHECK(cancelled.status == "CANCELLED");
  CHECK(cancelled.reason == "PAYMENT_DECLINED");

  // Two sold; the declined order's three back on the shelf.
  auto stock = test::get_stock(a.port(), product);
  CHECK(stock.available == 8);
  CHECK(stock.reserved == 0);
  CHECK(stock.sold == 2);
  // Charged once, and only the confirmed order.
  CHECK(a.gateway.order(approved, "charges") == 1);
  CHECK(a.charged_cents(approved) == 2500);
  CHECK(a.charged_cents(declined) == 0);
  // The worker paid both; the API replica paid nothing.
  CHECK(applied(b.port(), "pay") - b_paid_before >= 2);
  CHECK(applied(a.port(), "pay") - a_paid_before == 0);

  CHECK(b.terminate() == 0);
  CHECK(a.server->terminate() == 0);
}

TEST_CASE(
    "a pay retry left by a dead payment worker is run by the next one, never by the API "
    "replica",
    "[saga][stages][retry]") {
  // The API replica has the gateway's address too: only app.stages.enabled keeps it from
  // the pay retries. The retry falls due while no payment worker runs.
  test::pipeline_fixture a(
      std::map<std::string, std::string>{{"APP_STAGES_ENABLED", "validate,reserve"},
                                         {"APP_RETRY_BACKOFF_DELAY", "300"},
                                         {"APP_PAYMENT_MAX_RETRIES", "0"}});
  const std::map<std::string, std::string> worker_env = {{"PAYMENT_GATEWAY_URL", a.gateway.url()},
                                                         {"APP_STAGES_ENABLED", "pay,confirm"},
                                                         {"APP_HTTP_API_ENABLED", "false"},
                                                         {"APP_RETRY_BACKOFF_DELAY", "300"},
                                                         {"APP_PAYMENT_MAX_RETRIES", "0"}};
  auto worker = std::make_unique<test::server_process>(worker_env);
  worker->start();
  worker->wait_until_ready();

  auto product = a.product("8.00", 3);
  const double scheduled = messages(worker->port(), "pay", "retry_scheduled");
  a.gateway.control(R"({"failureRate":1})");
  auto id = a.order_of(product, 1, "8.00", "8.00");
  REQUIRE(
      eventually([&] { return messages(worker->port(), "pay", "retry_scheduled") > scheduled; }));
  // The Kafka offset has moved on: only the database remembers the retry.
  worker->kill();
  a.gateway.control(R"({"failureRate":0})");
  CHECK(a.status_of(id) == "INVENTORY_RESERVED");

  auto next_worker = std::make_unique<test::server_process>(worker_env);
  next_worker->start();
  next_worker->wait_until_ready();
  auto done = a.wait_final(id);
  CHECK(done.status == "CONFIRMED");
  CHECK(a.gateway.order(id, "charges") == 1);
  CHECK(a.charged_cents(id) == 800);
  CHECK(test::get_stock(a.port(), product).sold == 1);
  // No pay outcome of any kind on the API replica: it never claimed the retry.
  for (const char* outcome : {"applied", "duplicate", "rejected", "skipped", "retry_scheduled",
                              "dead_lettered", "failed"}) {
    INFO(outcome);
    CHECK_FALSE(test::find_metric_sample(
        a.port(), fmt::format(R"(pipeline_messages_total{{outcome="{}",stage="pay"}})", outcome)));
  }

  CHECK(next_worker->terminate() == 0);
  CHECK(a.server->terminate() == 0);
}
