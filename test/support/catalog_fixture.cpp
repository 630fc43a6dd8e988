#include "support/catalog_fixture.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <catch2/catch.hpp>

#include "support/http_client.hpp"

namespace op::test {
namespace {
std::map<std::string, std::string> admin() {
  return {{"Authorization", "Bearer " + test_admin_token}};
}
}  // namespace

void put_customer(unsigned short port, const std::string& id, const std::string& email,
                  bool active) {
  auto reply = http_call(
      port, "PUT", "/api/admin/customers/" + id,
      fmt::format(R"({{"email":"{}","name":"Test","active":{}}})", email, active), admin());
  REQUIRE(reply.status == 200);
}

void put_product(unsigned short port, const std::string& id, const std::string& name,
                 const std::string& price, std::int64_t stock, bool active) {
  auto reply = http_call(port, "PUT", "/api/admin/products/" + id,
                         fmt::format(R"({{"name":"{}","price":{},"stock":{},"active":{}}})", name,
                                     price, stock, active),
                         admin());
  INFO(reply.body);
  REQUIRE(reply.status == 200);
}

stock_levels get_stock(unsigned short port, const std::string& product_id) {
  auto reply = http_call(port, "GET", "/api/admin/products/" + product_id, "", admin());
  REQUIRE(reply.status == 200);
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  return {doc["available"].GetInt64(), doc["reserved"].GetInt64(), doc["sold"].GetInt64()};
}

std::string json_field(const std::string& json, const std::string& name) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(json.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember(name.c_str()))
    return {};
  const auto& v = doc[name.c_str()];
  if (v.IsString())
    return v.GetString();
  if (v.IsBool())
    return v.GetBool() ? "true" : "false";
  if (v.IsNull())
    return "null";
  return "(object)";
}

}  // namespace op::test
