#include "platform/http/docs_routes.hpp"

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "dispatch.hpp"

using namespace op;
using namespace op::http;

namespace {

router docs_router() {
  router r;
  add_docs_routes(r);
  return r;
}

std::string source_file(const std::string& relative) {
  std::ifstream in(std::string(ORDER_PIPELINE_SOURCE_DIR) + "/" + relative, std::ios::binary);
  REQUIRE(in);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string header(const response& res, beast_http::field name) {
  return std::string(res[name]);
}

}  // namespace

TEST_CASE("GET /openapi.yaml serves api/openapi.yaml byte for byte", "[http][docs]") {
  auto res = test::dispatch(docs_router(), verb::get, "/openapi.yaml");
  CHECK(res.result() == status::ok);
  CHECK(header(res, beast_http::field::content_type) == "application/yaml");
  CHECK(header(res, beast_http::field::cache_control) == "no-cache");
  CHECK(res.body() == source_file("api/openapi.yaml"));
}

TEST_CASE("GET /swagger-ui/ serves a page that loads only this server's files", "[http][docs]") {
  auto r = docs_router();
  auto page = test::dispatch(r, verb::get, "/swagger-ui/");
  REQUIRE(page.result() == status::ok);
  CHECK(header(page, beast_http::field::content_type) == "text/html; charset=utf-8");
  CHECK(header(page, beast_http::field::cache_control) == "no-cache");
  CHECK(page.body() == source_file("api/swagger-ui/index.html"));
  CHECK(page.body().find(R"(url: "/openapi.yaml")") != std::string::npos);
  CHECK(page.body().find("validatorUrl: null") != std::string::npos);
  CHECK(page.body().find("http://") == std::string::npos);  // no CDN, nothing from elsewhere
  CHECK(page.body().find("https://") == std::string::npos);

  // Every file the page names is served, non-empty, with its type.
  std::regex reference(R"re((?:src|href)="(/swagger-ui/[^"]+)")re");
  const std::string& html = page.body();
  int referenced = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), reference), end; it != end; ++it) {
    std::string target = (*it)[1];
    INFO(target);
    auto file = test::dispatch(r, verb::get, target);
    CHECK(file.result() == status::ok);
    CHECK(file.body().size() > 100);
    CHECK(header(file, beast_http::field::cache_control) == "public, max-age=86400");
    auto type = header(file, beast_http::field::content_type);
    if (target.ends_with(".js"))
      CHECK(type == "text/javascript; charset=utf-8");
    else if (target.ends_with(".css"))
      CHECK(type == "text/css; charset=utf-8");
    else
      CHECK(type == "image/png");
    ++referenced;
  }
  CHECK(referenced == 4);  // the style, the script and two icons
}

TEST_CASE("the page's files: index.html is the page, an unknown name is a JSON 404",
          "[http][docs]") {
  auto r = docs_router();
  auto index = test::dispatch(r, verb::get, "/swagger-ui/index.html");
  CHECK(index.result() == status::ok);
  CHECK(header(index, beast_http::field::cache_control) == "no-cache");
  CHECK(index.body() == test::dispatch(r, verb::get, "/swagger-ui/").body());

  for (std::string name : {"nope.js", "..%2Fopenapi.yaml", "swagger-ui-standalone-preset.js"}) {
    INFO(name);
    auto missing = test::dispatch(r, verb::get, "/swagger-ui/" + name);
    CHECK(missing.result() == status::not_found);
    CHECK(header(missing, beast_http::field::content_type) == "application/json");
    CHECK(missing.body().find(R"("error":"not_found","field":"file")") != std::string::npos);
  }
}
