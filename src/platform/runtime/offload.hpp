#pragma once
// Runs blocking work (libpqxx calls) on a worker pool and resumes the awaiting coroutine on
// its own executor, so the I/O threads never wait for the database.
//
// `work` is taken by reference and must outlive the co_await: g++ 12 destroys class-type
// temporaries passed by value into a coroutine inside a co_await expression twice, so
// callers keep the callable in a named local.

#include <exception>
#include <optional>
#include <type_traits>

#include "platform/runtime/asio.hpp"

namespace op::runtime {

template <class Work>
asio::awaitable<std::invoke_result_t<Work&>> offload(asio::thread_pool& pool, Work& work) {
  using result_type = std::invoke_result_t<Work&>;
  std::optional<result_type> result;
  std::exception_ptr failure;
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [&](auto handler) {
        asio::post(pool, [&, handler = std::move(handler)]() mutable {
          try {
            result.emplace(work());
          } catch (...) {
            failure = std::current_exception();
          }
          auto resume_on = asio::get_associated_executor(handler);
          asio::post(resume_on, std::move(handler));
        });
      },
      asio::use_awaitable);
  if (failure)
    std::rethrow_exception(failure);
  co_return std::move(*result);
}

}  // namespace op::runtime
