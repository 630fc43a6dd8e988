#pragma once
// The simulator's HTTP API as a function from request to answer, apart from the transport:
//   POST /v1/charges, POST /v1/refunds, GET /v1/orders/{orderId}, GET /v1/stats,
//   GET|POST /control, POST /control/reset.
// Latency and held responses are the transport's job (simulator_server), so this never waits.

#include <boost/beast/http.hpp>
#include <string_view>

#include "gateway_state.hpp"

namespace op::payment_simulator {

using request = boost::beast::http::request<boost::beast::http::string_body>;

gateway_reply handle_request(gateway_state& state, const request& req);

// True for the gateway's own API (/v1/...), which latency and faults apply to; false for
// /control, which always answers at once.
bool is_gateway_call(std::string_view target);

}  // namespace op::payment_simulator
