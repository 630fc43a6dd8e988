// runtime::batcher: jobs that wait while a batch runs are run together next, a failing batch
// is retried one job at a time, and each caller gets its own job's outcome.

#include "platform/runtime/batcher.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {
using op::asio::awaitable;

struct job {
  int value = 0;
  int result = 0;
  std::string error;  // what the caller caught
};

// Holds the first batch until every other job has been handed in behind it.
struct gate {
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false;
  bool open = false;
  void enter_and_wait() {
    std::unique_lock lock(mutex);
    entered = true;
    changed.notify_all();
    changed.wait(lock, [&] { return open; });
  }
  bool has_entered() {
    std::lock_guard lock(mutex);
    return entered;
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    changed.notify_all();
  }
};

awaitable<void> submit(op::runtime::batcher<job>& batcher, job& j) {
  try {
    co_await batcher.run(j);
  } catch (const std::exception& e) {
    j.error = e.what();
  }
}

// Hands in the first job; once its batch runs (and waits at `first_batch`), hands in the
// others and then opens the gate. Returns when every caller has resumed.
void run_all(op::runtime::batcher<job>& batcher, std::vector<job>& jobs, gate& first_batch) {
  op::asio::io_context ioc;
  op::asio::co_spawn(ioc, submit(batcher, jobs.front()), op::asio::detached);
  op::asio::co_spawn(
      ioc,
      [&]() -> awaitable<void> {
        op::asio::steady_timer timer(ioc);
        while (!first_batch.has_entered()) {
          timer.expires_after(std::chrono::milliseconds(5));
          co_await timer.async_wait(op::asio::use_awaitable);
        }
        for (std::size_t i = 1; i < jobs.size(); ++i)
          op::asio::co_spawn(ioc, submit(batcher, jobs[i]), op::asio::detached);
        // Runs after those coroutines have handed in their jobs.
        op::asio::post(ioc, [&] { first_batch.release(); });
      },
      op::asio::detached);
  ioc.run();
}

// A runner that records the size of each batch it gets and holds the first one at `gate`.
struct recording_runner {
  std::mutex mutex;
  std::vector<std::size_t> batch_sizes;
  gate first_batch;
  void enter(std::size_t size) {
    bool first;
    {
      std::lock_guard lock(mutex);
      first = batch_sizes.empty();
      batch_sizes.push_back(size);
    }
    if (first)
      first_batch.enter_and_wait();
  }
};

std::vector<job> numbered_jobs(int count) {
  std::vector<job> jobs(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    jobs[static_cast<std::size_t>(i)].value = i;
  return jobs;
}
}  // namespace

TEST_CASE("jobs arriving while a batch runs are run together, up to the batch size", "[batcher]") {
  op::asio::thread_pool pool(2);
  recording_runner recorder;
  op::runtime::batcher<job> batcher(
      pool,
      [&](const std::vector<job*>& jobs) {
        recorder.enter(jobs.size());
        for (auto* j : jobs)
          j->result = j->value * 10;
      },
      4, 1);
  auto jobs = numbered_jobs(9);
  run_all(batcher, jobs, recorder.first_batch);

  for (const auto& j : jobs) {
    CHECK(j.result == j.value * 10);
    CHECK(j.error.empty());
  }
  // The first job ran alone; the eight that waited behind it ran in batches of at most 4.
  REQUIRE(recorder.batch_sizes.size() == 3);
  CHECK(recorder.batch_sizes[0] == 1);
  CHECK(recorder.batch_sizes[1] == 4);
  CHECK(recorder.batch_sizes[2] == 4);
  pool.join();
}

TEST_CASE("a failing batch runs again one job at a time and only the bad job fails", "[batcher]") {
  op::asio::thread_pool pool(2);
  recording_runner recorder;
  op::runtime::batcher<job> batcher(
      pool,
      [&](const std::vector<job*>& jobs) {
        recorder.enter(jobs.size());
        for (auto* j : jobs)
          if (j->value == 3)
            throw std::runtime_error("job 3 is bad");
        for (auto* j : jobs)
          j->result = j->value + 100;
      },
      16, 1);
  auto jobs = numbered_jobs(6);
  run_all(batcher, jobs, recorder.first_batch);

  for (const auto& j : jobs) {
    if (j.value == 3) {
      CHECK(j.error == "job 3 is bad");
    } else {
      CHECK(j.error.empty());
      CHECK(j.result == j.value + 100);
    }
  }
  // 1 alone, then the other 5 together (failed), then each of those 5 alone.
  REQUIRE(recorder.batch_sizes.size() == 7);
  CHECK(recorder.batch_sizes[0] == 1);
  CHECK(recorder.batch_sizes[1] == 5);
  for (std::size_t i = 2; i < 7; ++i)
    CHECK(recorder.batch_sizes[i] == 1);
  pool.join();
}

TEST_CASE("blocking callers: one of them runs the batch of everyone waiting behind it",
          "[batcher]") {
  // Records the job values of every batch, so the test can check which jobs ran together
  // without assuming in which order the callers' threads reached the queue.
  std::mutex batches_mutex;
  std::vector<std::vector<int>> batches;
  gate first_batch;
  op::runtime::blocking_batcher<job> batcher(
      [&](const std::vector<job*>& jobs) {
        bool first;
        {
          std::lock_guard lock(batches_mutex);
          first = batches.empty();
          auto& values = batches.emplace_back();
          for (auto* j : jobs)
            values.push_back(j->value);
        }
        if (first)
          first_batch.enter_and_wait();
        for (auto* j : jobs) {
          if (j->value == 5)
            throw std::runtime_error("job 5 is bad");
        }
        for (auto* j : jobs)
          j->result = -j->value;
      },
      3, 1);
  auto jobs = numbered_jobs(7);
  auto call = [&](job& j) {
    try {
      batcher.run(j);
    } catch (const std::exception& e) {
      j.error = e.what();
    }
  };
  std::vector<std::thread> callers;
  callers.emplace_back(call, std::ref(jobs[0]));
  while (!first_batch.has_entered())
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  for (std::size_t i = 1; i < jobs.size(); ++i)
    callers.emplace_back(call, std::ref(jobs[i]));
  while (batcher.queued() < jobs.size() - 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  first_batch.release();
  for (auto& t : callers)
    t.join();

  // Only the bad job's caller gets the error; everyone else gets their own result.
  for (const auto& j : jobs) {
    if (j.value == 5) {
      CHECK(j.error == "job 5 is bad");
      CHECK(j.result == 0);
    } else {
      CHECK(j.error.empty());
      CHECK(j.result == -j.value);
    }
  }

  // The first job ran alone. The six waiting behind it (in whatever order their threads
  // queued) ran in two full batches of three, each job in exactly one of them.
  REQUIRE(batches.size() == 6);
  CHECK(batches.front() == std::vector<int>{0});
  std::vector<int> batched;
  std::size_t failed_batch = batches.size();
  for (std::size_t i = 1; i < batches.size(); ++i) {
    CHECK(batches[i].size() <= 3);
    if (batches[i].size() == 1)
      continue;
    CHECK(batches[i].size() == 3);
    batched.insert(batched.end(), batches[i].begin(), batches[i].end());
    if (std::find(batches[i].begin(), batches[i].end(), 5) != batches[i].end())
      failed_batch = i;
  }
  std::sort(batched.begin(), batched.end());
  CHECK(batched == std::vector<int>{1, 2, 3, 4, 5, 6});

  // The batch holding job 5 failed and ran again one job at a time, right after it; the
  // batch without it ran once.
  REQUIRE(failed_batch + 3 < batches.size());
  for (std::size_t k = 0; k < 3; ++k)
    CHECK(batches[failed_batch + 1 + k] == std::vector<int>{batches[failed_batch][k]});
}

TEST_CASE("blocking callers: a batch that ends starts the next one while another still runs",
          "[batcher]") {
  // Room for two batches at a time. Job 0's batch is held to the end; job 1's batch is held
  // until four more jobs wait behind the two. When job 1's batch ends, a waiting caller must
  // be woken to run theirs: they finish while job 0's batch is still held.
  gate held_to_end, held_a_while;
  std::atomic<int> finished{0};
  op::runtime::blocking_batcher<job> batcher(
      [&](const std::vector<job*>& jobs) {
        if (jobs.front()->value == 0)
          held_to_end.enter_and_wait();
        else if (jobs.front()->value == 1)
          held_a_while.enter_and_wait();
        for (auto* j : jobs)
          j->result = -j->value;
      },
      2, 2);
  auto jobs = numbered_jobs(6);
  auto call = [&](job& j) {
    batcher.run(j);
    ++finished;
  };
  std::vector<std::thread> callers;
  callers.emplace_back(call, std::ref(jobs[0]));
  while (!held_to_end.has_entered())
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  callers.emplace_back(call, std::ref(jobs[1]));
  while (!held_a_while.has_entered())
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  for (std::size_t i = 2; i < jobs.size(); ++i)
    callers.emplace_back(call, std::ref(jobs[i]));
  while (batcher.queued() < 4)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  held_a_while.release();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (finished < 5 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(finished == 5);  // every job but job 0, whose batch is still held
  CHECK(jobs[0].result == 0);
  held_to_end.release();
  for (auto& t : callers)
    t.join();
  for (const auto& j : jobs)
    CHECK(j.result == -j.value);
}
