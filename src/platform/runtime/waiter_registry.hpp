#pragma once
// Requests waiting for something that happens to a key (an order reaching its final state),
// woken by whoever learns of it, from any thread. A waiter holds no thread: it is a timer on
// its coroutine's executor, so thousands wait at the cost of their memory only. Bounded:
// enlist() refuses beyond `capacity` waiters, and once draining.
//
// Owned by the composition root; every member function is thread-safe. A ticket is used by
// the one coroutine that enlisted it, on the executor it gave.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "platform/runtime/asio.hpp"

namespace op::runtime {

class waiter_registry {
  struct waiter;

 public:
  explicit waiter_registry(std::size_t capacity) : capacity_(capacity) {}

  // A registered waiter; leaves the registry when destroyed.
  class ticket {
   public:
    ticket(waiter_registry& owner,
           std::multimap<std::string, std::shared_ptr<waiter>, std::less<>>::iterator entry);
    ~ticket();
    ticket(const ticket&) = delete;
    ticket& operator=(const ticket&) = delete;

    // Waits until woken or until `deadline`. True when woken, also by a wake that came
    // before this call (between enlisting and waiting); each wake is reported once.
    asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline);

   private:
    waiter_registry& owner_;
    std::multimap<std::string, std::shared_ptr<waiter>, std::less<>>::iterator entry_;
    std::shared_ptr<waiter> waiter_;
  };

  // Registers a waiter for `key` whose coroutine runs on `executor`; nullptr when `capacity`
  // waiters are registered already or the registry is draining.
  std::unique_ptr<ticket> enlist(std::string key, const asio::any_io_executor& executor);

  // Wakes every waiter of `key`.
  void wake(std::string_view key);

  // Wakes every waiter and refuses new ones from now on (graceful shutdown).
  void drain();
  bool draining() const;

  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }

 private:
  static void wake(const std::shared_ptr<waiter>& w);

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  bool draining_ = false;
  std::multimap<std::string, std::shared_ptr<waiter>, std::less<>> waiters_;
};

}  // namespace op::runtime
