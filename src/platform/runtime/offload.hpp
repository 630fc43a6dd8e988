#pragma once
// Runs blocking work (libpqxx calls) on a worker pool and resumes the awaiting coroutine on
// its own executor, so the I/O threads never wait for the database.

#include <type_traits>

#include "platform/runtime/asio.hpp"

namespace op::runtime {

template <class Work>
asio::awaitable<std::invoke_result_t<Work>> offload(asio::thread_pool& pool, Work work) {
  using result = std::invoke_result_t<Work>;
  co_return co_await asio::co_spawn(
      pool.get_executor(),
      [work = std::move(work)]() mutable -> asio::awaitable<result> { co_return work(); },
      asio::use_awaitable);
}

}  // namespace op::runtime
