#include "gateway_api.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>

namespace op::payment_simulator {

namespace http = boost::beast::http;

namespace {

gateway_reply invalid_request(const std::string& code, const std::string& message) {
  return error_reply(400, "invalid_request_error", code, message);
}

gateway_reply missing_parameter(const char* name) {
  return invalid_request("parameter_missing",
                         std::string("Missing or invalid required parameter: ") + name + ".");
}

std::string header(const request& req, std::string_view name) {
  auto it = req.find(boost::beast::string_view(name.data(), name.size()));
  if (it == req.end())
    return {};
  return std::string(it->value());
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

const rapidjson::Value* member(const rapidjson::Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::optional<std::string> string_member(const rapidjson::Value& object, const char* name) {
  const rapidjson::Value* value = member(object, name);
  if (!value || !value->IsString() || value->GetStringLength() == 0)
    return std::nullopt;
  return std::string(value->GetString(), value->GetStringLength());
}

// Parses a JSON object body; on failure `error` holds the answer to send.
bool parse_object(const request& req, rapidjson::Document& document, gateway_reply& error) {
  document.Parse(req.body().data(), req.body().size());
  if (document.HasParseError() || !document.IsObject()) {
    error = invalid_request("invalid_json", "The request body must be a JSON object.");
    return false;
  }
  return true;
}

bool valid_currency(const std::string& currency) {
  if (currency.size() != 3)
    return false;
  for (char c : currency)
    if (c < 'A' || c > 'Z')
      return false;
  return true;
}

gateway_reply post_charge(gateway_state& state, const request& req) {
  std::string key = header(req, "Idempotency-Key");
  if (key.empty())
    return invalid_request("idempotency_key_missing", "An Idempotency-Key header is required.");
  rapidjson::Document document;
  gateway_reply error;
  if (!parse_object(req, document, error))
    return error;
  charge_input input;
  auto order_id = string_member(document, "orderId");
  if (!order_id)
    return missing_parameter("orderId");
  input.order_id = *order_id;
  const rapidjson::Value* amount = member(document, "amountCents");
  if (!amount || !amount->IsInt64() || amount->GetInt64() <= 0)
    return missing_parameter("amountCents (a positive integer)");
  input.amount_cents = amount->GetInt64();
  auto currency = string_member(document, "currency");
  if (!currency || !valid_currency(*currency))
    return missing_parameter("currency (a three-letter code such as USD)");
  input.currency = *currency;
  auto method = string_member(document, "paymentMethod");
  if (!method || method->rfind("pm_", 0) != 0)
    return missing_parameter("paymentMethod (a pm_ token)");
  input.payment_method = *method;
  return state.charge(key, input);
}

gateway_reply post_refund(gateway_state& state, const request& req) {
  std::string key = header(req, "Idempotency-Key");
  if (key.empty())
    return invalid_request("idempotency_key_missing", "An Idempotency-Key header is required.");
  rapidjson::Document document;
  gateway_reply error;
  if (!parse_object(req, document, error))
    return error;
  auto order_id = string_member(document, "orderId");
  if (!order_id)
    return missing_parameter("orderId");
  return state.refund(key, *order_id);
}

std::string settings_json(const fault_settings& s) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("latencyMs");
  w.Int64(s.latency_ms);
  w.Key("jitterMs");
  w.Int64(s.jitter_ms);
  w.Key("failureRate");
  w.Double(s.failure_rate);
  w.Key("outage");
  w.Bool(s.outage);
  w.Key("timeoutMs");
  w.Int64(s.timeout_ms);
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

bool read_millis(const rapidjson::Value& object, const char* name, std::int64_t& out) {
  const rapidjson::Value* value = member(object, name);
  if (!value)
    return true;
  if (!value->IsInt64() || value->GetInt64() < 0)
    return false;
  out = value->GetInt64();
  return true;
}

gateway_reply post_control(gateway_state& state, const request& req) {
  rapidjson::Document document;
  gateway_reply error;
  if (!parse_object(req, document, error))
    return error;
  fault_settings s = state.settings();
  if (!read_millis(document, "latencyMs", s.latency_ms))
    return missing_parameter("latencyMs (milliseconds, >= 0)");
  if (!read_millis(document, "jitterMs", s.jitter_ms))
    return missing_parameter("jitterMs (milliseconds, >= 0)");
  if (!read_millis(document, "timeoutMs", s.timeout_ms))
    return missing_parameter("timeoutMs (milliseconds, >= 0)");
  if (const rapidjson::Value* rate = member(document, "failureRate")) {
    if (!rate->IsNumber() || rate->GetDouble() < 0.0 || rate->GetDouble() > 1.0)
      return missing_parameter("failureRate (0 to 1)");
    s.failure_rate = rate->GetDouble();
  }
  if (const rapidjson::Value* outage = member(document, "outage")) {
    if (!outage->IsBool())
      return missing_parameter("outage (true or false)");
    s.outage = outage->GetBool();
  }
  state.update_settings(s);
  return {200, settings_json(s)};
}

gateway_reply not_found(std::string_view path) {
  return error_reply(404, "invalid_request_error", "resource_missing",
                     "Unrecognized request URL: " + std::string(path) + ".");
}

gateway_reply wrong_method(const char* allowed) {
  return error_reply(405, "invalid_request_error", "method_not_allowed",
                     std::string("Use ") + allowed + " on this URL.");
}

}  // namespace

bool is_gateway_call(std::string_view target) {
  return target.rfind("/v1/", 0) == 0;
}

gateway_reply handle_request(gateway_state& state, const request& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  http::verb method = req.method();

  if (is_gateway_call(path)) {
    if (path == "/v1/charges")
      return method == http::verb::post ? post_charge(state, req) : wrong_method("POST");
    if (path == "/v1/refunds")
      return method == http::verb::post ? post_refund(state, req) : wrong_method("POST");
    // Reading is part of the gateway too, so an outage hides it like everything else.
    if (path == "/v1/stats" || path.rfind("/v1/orders/", 0) == 0) {
      if (method != http::verb::get)
        return wrong_method("GET");
      if (state.settings().outage)
        return error_reply(503, "api_error", "service_unavailable",
                           "The gateway is unavailable (simulated outage).");
      if (path == "/v1/stats")
        return state.stats();
      std::string_view raw_id = path.substr(std::string_view("/v1/orders/").size());
      if (raw_id.empty() || raw_id.find('/') != std::string_view::npos)
        return not_found(path);
      return state.order_summary(percent_decode(raw_id));
    }
    return not_found(path);
  }
  if (path == "/control") {
    if (method == http::verb::get)
      return {200, settings_json(state.settings())};
    if (method == http::verb::post)
      return post_control(state, req);
    return wrong_method("GET or POST");
  }
  if (path == "/control/reset") {
    if (method != http::verb::post)
      return wrong_method("POST");
    state.reset();
    return {200, settings_json(state.settings())};
  }
  return not_found(path);
}

}  // namespace op::payment_simulator
