#include "platform/pg/connection_pool.hpp"

#include "platform/metrics/registry.hpp"

namespace op::pg {

connection_pool::connection_pool(std::string conninfo, std::size_t size,
                                 std::chrono::milliseconds acquire_timeout)
    : conninfo_(std::move(conninfo)),
      acquire_timeout_(acquire_timeout),
      slots_(size),
      leased_at_(size) {
  for (std::size_t i = size; i > 0; --i)
    free_.push_back(i - 1);
}

void connection_pool::add_setup(connection_setup setup) {
  std::lock_guard lock(mutex_);
  setups_.push_back(std::move(setup));
}

void connection_pool::open_all() {
  std::vector<std::size_t> taken;  // held at once, so each acquire opens another slot
  try {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      taken.push_back(acquire());
  } catch (...) {
    for (auto slot : taken)
      release(slot);
    throw;
  }
  for (auto slot : taken)
    release(slot);
}

std::size_t connection_pool::in_use() const {
  std::lock_guard lock(mutex_);
  return slots_.size() - free_.size();
}

std::size_t connection_pool::acquire() {
  std::size_t slot;
  {
    std::unique_lock lock(mutex_);
    if (!released_.wait_for(lock, acquire_timeout_, [&] { return !free_.empty(); }))
      throw pool_exhausted("no database connection free within the acquire timeout");
    slot = free_.back();
    free_.pop_back();
  }
  leased_at_[slot] = std::chrono::steady_clock::now();
  try {
    if (!slots_[slot] || !slots_[slot]->is_open())
      open(slot);
  } catch (...) {
    release(slot);
    throw;
  }
  return slot;
}

void connection_pool::open(std::size_t slot) {
  slots_[slot].reset();
  auto connection = std::make_unique<pqxx::connection>(conninfo_);
  // Plan a prepared statement once, not on every call. PostgreSQL otherwise keeps planning
  // the hot path's statements per call (their array parameters make a per-call plan look
  // cheaper), which cost a fifth of its CPU under load. A statement whose best plan depends
  // on its values sets `plan_cache_mode = force_custom_plan` for itself (SET LOCAL).
  pqxx::nontransaction(*connection).exec("SET plan_cache_mode = force_generic_plan");
  std::vector<connection_setup> setups;
  {
    std::lock_guard lock(mutex_);
    setups = setups_;
  }
  for (const auto& setup : setups)
    setup(*connection);
  slots_[slot] = std::move(connection);
}

// How long one unit of database work (a transaction, its statements and commit) held its
// connection: the pipeline's query latency as the database and the pool together give it.
static metrics::histogram& use_duration() {
  static auto& h = metrics::global().get_histogram(
      "db_transaction_duration_seconds",
      "Time a unit of database work held its pooled connection, statements and commit included.");
  return h;
}

void connection_pool::release(std::size_t slot) {
  use_duration().observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - leased_at_[slot]).count());
  {
    std::lock_guard lock(mutex_);
    free_.push_back(slot);
  }
  released_.notify_one();
}

void connection_pool::discard(std::size_t slot) {
  // Only the borrowing thread touches slots_[slot] while it is leased.
  slots_[slot].reset();
}

}  // namespace op::pg
