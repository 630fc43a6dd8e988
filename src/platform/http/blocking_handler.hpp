#pragma once
// Runs a handler's blocking part (database calls) on the blocking pool and answers 503 with
// Retry-After when the database is unavailable, instead of a 500 or a hang. `work` must
// outlive the co_await (see offload.hpp).

#include "platform/http/message.hpp"
#include "platform/pg/pg_errors.hpp"
#include "platform/runtime/offload.hpp"

namespace op::http {

template <class Work>
asio::awaitable<response> run_blocking(asio::thread_pool& pool, Work& work) {
  std::string unavailable;
  try {
    co_return co_await runtime::offload(pool, work);
  } catch (const std::exception& e) {
    if (!pg::is_transient(e))
      throw;
    unavailable = e.what();
  }
  co_return retry_later_response("service_unavailable", std::nullopt,
                                 "the database is unavailable; retry shortly");
}

}  // namespace op::http
