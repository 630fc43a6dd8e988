#include "support/pipeline_fixture.hpp"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <sstream>
#include <thread>

#include "support/catalog_fixture.hpp"
#include "support/http_client.hpp"
#include "support/test_environment.hpp"

namespace op::test {

using namespace std::chrono_literals;

pipeline_fixture::pipeline_fixture(std::map<std::string, std::string> env, std::string binary)
    : customer(unique_name("cust")), env_(std::move(env)), binary_(std::move(binary)) {
  env_["PAYMENT_GATEWAY_URL"] = gateway.url();
  server = std::make_unique<server_process>(env_, binary_);
  server->start();
  server->wait_until_ready();
  put_customer(port(), customer, "buyer@example.com");
}

void pipeline_fixture::restart_server(const std::map<std::string, std::string>& env,
                                      const std::string& binary) {
  auto merged = env_;
  for (const auto& [k, v] : env)
    merged[k] = v;
  if (!binary.empty())
    binary_ = binary;
  server.reset();  // SIGKILLs it if still running
  server = std::make_unique<server_process>(merged, binary_);
  server->start();
  server->wait_until_ready();
}

std::string pipeline_fixture::product(const std::string& price, std::int64_t stock, bool active) {
  auto id = unique_name("prod");
  put_product(port(), id, "Test product", price, stock, active);
  return id;
}

std::string pipeline_fixture::place(const std::string& body) {
  auto reply = http_call(port(), "POST", "/api/orders", body);
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  return json_field(reply.body, "orderId");
}

std::string pipeline_fixture::order_body(const std::string& product_id, int quantity,
                                         const std::string& price, const std::string& total,
                                         const std::string& payment_method,
                                         const std::string& customer_id) const {
  return fmt::format(
      R"({{"customerId":"{}","totalAmount":{},{}"items":[{{"productId":"{}","quantity":{},"price":{}}}]}})",
      customer_id.empty() ? customer : customer_id, total,
      payment_method.empty() ? "" : fmt::format(R"("paymentMethod":"{}",)", payment_method),
      product_id, quantity, price);
}

std::string pipeline_fixture::order_of(const std::string& product_id, int quantity,
                                       const std::string& price, const std::string& total,
                                       const std::string& payment_method,
                                       const std::string& customer_id) {
  return place(order_body(product_id, quantity, price, total, payment_method, customer_id));
}

pipeline_fixture::final_state pipeline_fixture::wait_final(const std::string& id,
                                                           std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  http_reply reply;
  while (std::chrono::steady_clock::now() < deadline) {
    reply = http_get(port(), "/api/orders/" + id);
    auto status = json_field(reply.body, "status");
    if (status == "CONFIRMED" || status == "CANCELLED" || status == "FAILED")
      return {status, json_field(reply.body, "reason"), json_field(reply.body, "reasonDetail"),
              reply.body};
    std::this_thread::sleep_for(50ms);
  }
  FAIL("order " << id << " did not finish; last answer: " << reply.body);
  return {};
}

std::string pipeline_fixture::status_of(const std::string& id) {
  return json_field(http_get(port(), "/api/orders/" + id).body, "status");
}

std::int64_t pipeline_fixture::charged_cents(const std::string& order_id) {
  return gateway.order(order_id, "capturedCents") - gateway.order(order_id, "refundedCents");
}

double pipeline_fixture::metric(const std::string& series) {
  std::istringstream lines(http_get(port(), "/metrics").body);
  std::string line;
  while (std::getline(lines, line))
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return 0;
}

}  // namespace op::test
