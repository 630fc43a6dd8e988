// A replica that runs no saga stage (app.stages.enabled empty) but the public API: it takes
// orders, is ready, and leaves them on Kafka for the replicas that run the stages.

#include <catch2/catch.hpp>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/kafka_test_consumer.hpp"
#include "support/pipeline_fixture.hpp"
#include "support/replica_probe.hpp"

using namespace op;
using namespace std::chrono_literals;

TEST_CASE("a replica with no stages accepts orders, is ready, and processes none of them",
          "[stages]") {
  // The fixture waits until the replica is ready.
  test::pipeline_fixture p(std::map<std::string, std::string>{{"APP_STAGES_ENABLED", ""}});

  CHECK(test::enabled_stages(p.port()).empty());
  CHECK_FALSE(test::has_health_component(p.port(), "paymentGateway"));
  for (const char* stage : {"validate", "reserve", "pay", "confirm"}) {
    INFO(stage);
    CHECK(test::find_metric_sample(
              p.port(), std::string("pipeline_stage_enabled{stage=\"") + stage + "\"}") == 0.0);
  }

  auto product = p.product("5.00", 4);
  auto id = p.order_of(product, 1, "5.00", "5.00");
  // Its event is on Kafka (every replica relays its outbox), yet nothing here consumes it.
  test::kafka_test_consumer placed("orders.placed");
  REQUIRE(placed.wait_for_key(id, 1, 30s).size() == 1);
  CHECK(p.status_of(id) == "PLACED");
  auto stock = test::get_stock(p.port(), product);
  CHECK(stock.available == 4);
  CHECK(stock.reserved == 0);
  CHECK(test::http_get(p.port(), "/actuator/health/readiness").status == 200);

  // A replica that runs the stages takes the waiting order from Kafka to the end.
  p.restart_server({{"APP_STAGES_ENABLED", "validate,reserve,pay,confirm"}});
  CHECK(test::enabled_stages(p.port()) ==
        std::vector<std::string>{"validate", "reserve", "pay", "confirm"});
  CHECK(p.wait_final(id).status == "CONFIRMED");
  CHECK(test::get_stock(p.port(), product).sold == 1);
  CHECK(p.charged_cents(id) == 500);
}
