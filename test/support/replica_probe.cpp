#include "support/replica_probe.hpp"

#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "support/http_client.hpp"

namespace op::test {
namespace {

rapidjson::Document health_of(unsigned short port) {
  auto reply = http_get(port, "/actuator/health");
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  REQUIRE(!doc.HasParseError());
  REQUIRE(doc.HasMember("components"));
  return doc;
}

}  // namespace

std::optional<double> find_metric_sample(unsigned short port, const std::string& series) {
  auto reply = http_get(port, "/metrics");
  REQUIRE(reply.status == 200);
  std::istringstream lines(reply.body);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

double metric_sample(unsigned short port, const std::string& series) {
  return find_metric_sample(port, series).value_or(0);
}

std::vector<std::string> enabled_stages(unsigned short port) {
  auto doc = health_of(port);
  const auto& components = doc["components"];
  REQUIRE(components.HasMember("stages"));
  const auto& details = components["stages"]["details"];
  REQUIRE(details.HasMember("enabled"));
  REQUIRE(details["enabled"].IsArray());
  std::vector<std::string> out;
  for (const auto& stage : details["enabled"].GetArray())
    out.emplace_back(stage.GetString());
  return out;
}

bool has_health_component(unsigned short port, const std::string& component) {
  return health_of(port)["components"].HasMember(component.c_str());
}

}  // namespace op::test
