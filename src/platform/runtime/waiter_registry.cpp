#include "platform/runtime/waiter_registry.hpp"

namespace op::runtime {

struct waiter_registry::waiter {
  explicit waiter(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
  bool woken = false;  // touched only on the timer's executor
};

waiter_registry::ticket::ticket(
    waiter_registry& owner,
    std::multimap<std::string, std::shared_ptr<waiter>, std::less<>>::iterator entry)
    : owner_(owner), entry_(entry), waiter_(entry->second) {}

waiter_registry::ticket::~ticket() {
  std::lock_guard lock(owner_.mutex_);
  owner_.waiters_.erase(entry_);
}

asio::awaitable<bool> waiter_registry::ticket::wait_until(
    std::chrono::steady_clock::time_point deadline) {
  // Wakes are posted to this executor, so they run either before this check or while the
  // timer waits (and cancel it): none is lost.
  if (!waiter_->woken) {
    waiter_->timer.expires_at(deadline);
    boost::system::error_code ignored;
    co_await waiter_->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  bool woken = waiter_->woken;
  waiter_->woken = false;
  co_return woken;
}

std::unique_ptr<waiter_registry::ticket> waiter_registry::enlist(
    std::string key, const asio::any_io_executor& executor) {
  std::lock_guard lock(mutex_);
  if (draining_ || waiters_.size() >= capacity_)
    return nullptr;
  auto entry = waiters_.emplace(std::move(key), std::make_shared<waiter>(executor));
  return std::make_unique<ticket>(*this, entry);
}

void waiter_registry::wake(const std::shared_ptr<waiter>& w) {
  asio::post(w->timer.get_executor(), [w] {
    w->woken = true;
    w->timer.cancel();
  });
}

void waiter_registry::wake(std::string_view key) {
  std::lock_guard lock(mutex_);
  auto [begin, end] = waiters_.equal_range(key);
  for (auto it = begin; it != end; ++it)
    wake(it->second);
}

void waiter_registry::drain() {
  std::lock_guard lock(mutex_);
  draining_ = true;
  for (const auto& [key, w] : waiters_)
    wake(w);
}

bool waiter_registry::draining() const {
  std::lock_guard lock(mutex_);
  return draining_;
}

std::size_t waiter_registry::size() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

}  // namespace op::runtime
