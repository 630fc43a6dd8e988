// The step list a program declares with order_pipeline::pipeline, before it runs.

#include "order_pipeline/pipeline.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

using order_pipeline::pipeline;

namespace {

order_pipeline::step named(std::string name) {
  order_pipeline::step s;
  s.name = std::move(name);
  s.action = [](order_pipeline::step_context&) { return order_pipeline::decision::proceed(); };
  return s;
}

}  // namespace

TEST_CASE("a pipeline starts with the built-in saga", "[pipeline]") {
  CHECK(pipeline().step_names() ==
        std::vector<std::string>{"validate", "reserve", "pay", "confirm"});
}

TEST_CASE("a shop's steps go exactly where the program puts them", "[pipeline]") {
  pipeline shop;
  shop.insert_after("reserve", named("screen"));
  shop.insert_before("validate", named("enrich"));
  shop.insert_after("confirm", named("archive"));
  CHECK(shop.step_names() == std::vector<std::string>{"enrich", "validate", "reserve", "screen",
                                                      "pay", "confirm", "archive"});
  shop.remove("pay");
  CHECK(shop.step_names() ==
        std::vector<std::string>{"enrich", "validate", "reserve", "screen", "confirm", "archive"});
}

TEST_CASE("an unknown anchor or a name taken is refused, naming it", "[pipeline]") {
  pipeline shop;
  CHECK_THROWS_WITH(shop.insert_after("ship", named("screen")), Catch::Contains("'ship'"));
  CHECK_THROWS_WITH(shop.insert_before("ship", named("screen")), Catch::Contains("'ship'"));
  CHECK_THROWS_WITH(shop.insert_after("reserve", named("pay")), Catch::Contains("'pay'"));
  CHECK_THROWS_WITH(shop.remove("ship"), Catch::Contains("'ship'"));
  CHECK(shop.step_names() == std::vector<std::string>{"validate", "reserve", "pay", "confirm"});
}
