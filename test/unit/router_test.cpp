#include "platform/http/router.hpp"

#include <catch2/catch.hpp>

#include "dispatch.hpp"
#include "platform/http/bearer_auth.hpp"
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
  CHECK(wrong[beast_http::field::allow] == "GET, HEAD");
}

TEST_CASE("a handler that throws becomes a JSON 500, not a dropped connection", "[http]") {
  auto res = run(sample_router(), verb::post, "/api/orders");
  CHECK(res.result() == status::internal_server_error);
  CHECK(res.body().find(R"("error":"internal_error")") != std::string::npos);
}

namespace {
router admin_like_router() {
  router r;
  auto answer = [](std::string text) {
    return [text](request_context& ctx) -> asio::awaitable<response> {
      auto id = ctx.path_params.count("id") ? " " + ctx.path_params.at("id") : std::string();
      co_return text_response(status::ok, text + id);
    };
  };
  r.add(verb::get, "/api/orders/health", answer("health"));
  r.add(verb::get, "/api/orders/{id}", answer("order"));
  r.add(verb::get, "/api/admin/dlq/{id}", answer("entry"));
  r.add(verb::post, "/api/admin/dlq/replay", answer("replay all"));
  r.add(verb::post, "/api/admin/dlq/{id}/replay", answer("replay one"));
  r.add(verb::put, "/api/admin/products/{id}", answer("put"));
  return r;
}
}  // namespace

TEST_CASE("a literal segment beats a {param}: the most specific route decides", "[http]") {
  auto r = admin_like_router();
  CHECK(run(r, verb::get, "/api/orders/health").body() == "health");
  CHECK(run(r, verb::get, "/api/orders/ORD-1").body() == "order ORD-1");
  CHECK(run(r, verb::get, "/api/admin/dlq/7").body() == "entry 7");

  // "replay" is not an entry id: GET on the replay route is a wrong method, not a bad id.
  auto replay = run(r, verb::get, "/api/admin/dlq/replay");
  CHECK(replay.result() == status::method_not_allowed);
  CHECK(replay[beast_http::field::allow] == "POST");

  // Each method once in Allow, though two patterns match the path.
  auto health = run(r, verb::post, "/api/orders/health");
  CHECK(health.result() == status::method_not_allowed);
  CHECK(health[beast_http::field::allow] == "GET, HEAD");
}

TEST_CASE("HEAD is answered wherever GET is, with GET's headers and no body", "[http]") {
  auto r = admin_like_router();
  auto get = run(r, verb::get, "/api/orders/ORD-1");
  auto head = run(r, verb::head, "/api/orders/ORD-1");
  CHECK(head.result() == status::ok);
  CHECK(head.body().empty());
  CHECK(head[beast_http::field::content_length] == std::to_string(get.body().size()));
  CHECK(head[beast_http::field::content_type] == get[beast_http::field::content_type]);
  CHECK(run(r, verb::head, "/nope").result() == status::not_found);
  auto wrong = run(r, verb::head, "/api/admin/dlq/replay");
  CHECK(wrong.result() == status::method_not_allowed);
  CHECK(wrong.body().empty());
}

TEST_CASE("a request body that is not JSON gets 415 before any handler runs", "[http]") {
  auto r = admin_like_router();
  const std::string body = R"({"name":"x","price":1,"stock":1})";
  CHECK(test::dispatch(r, verb::put, "/api/admin/products/p1", "application/json", body).result() ==
        status::ok);
  for (auto type : {"application/json; charset=utf-8", "Application/JSON;Charset=\"UTF-8\""})
    CHECK(test::dispatch(r, verb::put, "/api/admin/products/p1", type, body).result() ==
          status::ok);
  for (auto type : {"", "text/plain", "application/x-www-form-urlencoded",
                    "application/json; charset=latin1", "application/jsonx"}) {
    auto res = test::dispatch(r, verb::put, "/api/admin/products/p1", type, body);
    CHECK(res.result() == status::unsupported_media_type);
    CHECK(res.body().find(R"("field":"Content-Type")") != std::string::npos);
  }
  // No body, nothing to type: a replay takes none.
  CHECK(test::dispatch(r, verb::post, "/api/admin/dlq/7/replay").result() == status::ok);
}

TEST_CASE("the JSON media type is recognised in any case, with a UTF-8 charset only", "[http]") {
  CHECK(is_json_media_type("application/json"));
  CHECK(is_json_media_type("  application/json ; charset=UTF-8 "));
  CHECK_FALSE(is_json_media_type("application/json; charset=utf-16"));
  CHECK_FALSE(is_json_media_type("application/json; broken"));
  CHECK_FALSE(is_json_media_type("text/json"));
}

TEST_CASE("the Bearer scheme is case-insensitive but the token is not", "[http][auth]") {
  CHECK(bearer_token("Bearer abc") == std::optional<std::string_view>("abc"));
  CHECK(bearer_token("bearer abc") == std::optional<std::string_view>("abc"));
  CHECK(bearer_token("BEARER   abc") == std::optional<std::string_view>("abc"));
  CHECK_FALSE(bearer_token("Bearer"));
  CHECK_FALSE(bearer_token("Bearer "));
  CHECK_FALSE(bearer_token("Bearerabc"));
  CHECK_FALSE(bearer_token("Basic abc"));

  auto check_token = [](std::string header) {
    http::request req{verb::get, "/api/admin/metrics", 11};
    if (!header.empty())
      req.set(beast_http::field::authorization, header);
    request_context ctx{req, {}, {}};
    return require_bearer(ctx, "s3cret");
  };
  CHECK_FALSE(check_token("Bearer s3cret"));
  CHECK_FALSE(check_token("bearer s3cret"));
  CHECK(check_token("Bearer S3CRET"));
  CHECK(check_token("")->result() == status::unauthorized);
  CHECK(check_token("Basic s3cret")->result() == status::unauthorized);
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
