#include "platform/http/router.hpp"

#include <catch2/catch.hpp>

#include "dispatch.hpp"
#include "platform/metrics/registry.hpp"

using namespace op;
using namespace op::http;

namespace {
response run(const router& r, verb method, std::string target) {
  return test::dispatch(r, method, std::move(target));
}

router sample_router() {
  router r;
  r.add(verb::get, "/api/orders/{id}", [](request_context& ctx) -> asio::awaitable<response> {
    co_return text_response(status::ok, "order " + ctx.path_params.at("id") + " limit " +
                                            ctx.query_param("limit").value_or("-"));
  });
  r.add(verb::post, "/api/orders",
        [](request_context&) -> asio::awaitable<response> { throw std::runtime_error("boom"); });
  return r;
}
}  // namespace

TEST_CASE("routes match path parameters and decode the query", "[http]") {
  auto res = run(sample_router(), verb::get, "/api/orders/ORD%2D1?limit=5&x=a+b");
  CHECK(res.result() == status::ok);
  CHECK(res.body() == "order ORD-1 limit 5");
}

TEST_CASE("unknown routes are 404 and wrong methods 405, both JSON", "[http]") {
  auto r = sample_router();
  auto missing = run(r, verb::get, "/nope");
  CHECK(missing.result() == status::not_found);
  CHECK(missing[beast_http::field::content_type] == "application/json");
  CHECK(missing.body().find(R"("error":"not_found")") != std::string::npos);

  auto wrong = run(r, verb::delete_, "/api/orders/1");
  CHECK(wrong.result() == status::method_not_allowed);
  CHECK(wrong[beast_http::field::allow] == "GET");
}

TEST_CASE("a handler that throws becomes a JSON 500, not a dropped connection", "[http]") {
  auto res = run(sample_router(), verb::post, "/api/orders");
  CHECK(res.result() == status::internal_server_error);
  CHECK(res.body().find(R"("error":"internal_error")") != std::string::npos);
}

// Found by fuzz/http_request: the method label was the request's method text, so a client
// sending made-up methods added metric series without bound.
TEST_CASE("a method the server does not know is labelled OTHER, not by its text", "[http]") {
  request req{verb::get, "/api/orders/1", 11};
  req.method_string("BREW");
  REQUIRE(req.method() == verb::unknown);
  asio::io_context ioc;
  response res;
  auto r = sample_router();
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { res = co_await r.dispatch(req); }, asio::detached);
  ioc.run();
  CHECK(res.result() == status::method_not_allowed);
  auto exposed = metrics::global().expose();
  CHECK(exposed.find(R"(method="BREW")") == std::string::npos);
  CHECK(exposed.find(R"(method="OTHER")") != std::string::npos);
}
