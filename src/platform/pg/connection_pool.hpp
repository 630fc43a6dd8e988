#pragma once
// A fixed-size pool of PostgreSQL connections, shared by every thread of one replica.
// Connections are opened lazily and replaced after they break, so the pool survives a
// database restart: callers see a transient error for the work in flight, then carry on.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <vector>

namespace op::pg {

// No connection became free within the acquire timeout.
struct pool_exhausted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class connection_pool {
 public:
  // Runs on every new connection: the place to prepare statements.
  using connection_setup = std::function<void(pqxx::connection&)>;

  connection_pool(std::string conninfo, std::size_t size,
                  std::chrono::milliseconds acquire_timeout);
  connection_pool(const connection_pool&) = delete;
  connection_pool& operator=(const connection_pool&) = delete;

  void add_setup(connection_setup setup);

  // Opens every connection not open yet (and runs the setups on it), so the first requests
  // after a start do not each wait for a connection and its prepared statements. Throws what
  // opening one threw; the others stay open.
  void open_all();

  // Borrows a connection for the duration of `work(pqxx::connection&)`. A connection that
  // breaks during the work is dropped and reopened on next use; the error propagates.
  template <class Work>
  auto with_connection(Work&& work) -> decltype(work(std::declval<pqxx::connection&>())) {
    auto slot = acquire();
    release_on_exit guard{this, slot};  // destroyed after the handler below
    try {
      return work(*slots_[slot]);
    } catch (const pqxx::broken_connection&) {
      discard(slot);
      throw;
    }
  }

  std::size_t size() const { return slots_.size(); }
  std::size_t in_use() const;

 private:
  struct release_on_exit {
    connection_pool* pool;
    std::size_t slot;
    ~release_on_exit() { pool->release(slot); }
  };

  std::size_t acquire();
  void release(std::size_t slot);
  void discard(std::size_t slot);
  void open(std::size_t slot);

  const std::string conninfo_;
  const std::chrono::milliseconds acquire_timeout_;
  std::vector<std::unique_ptr<pqxx::connection>> slots_;
  // When each slot was leased; only its borrower touches an entry, like slots_.
  std::vector<std::chrono::steady_clock::time_point> leased_at_;
  std::vector<std::size_t> free_;
  std::vector<connection_setup> setups_;
  mutable std::mutex mutex_;
  std::condition_variable released_;
};

}  // namespace op::pg
