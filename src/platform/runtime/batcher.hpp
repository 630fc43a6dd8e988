#pragma once
// Group commit for blocking work. Callers hand in jobs; whoever runs the next batch takes
// every job waiting (up to max_batch) and runs them together, e.g. in one database
// transaction. A lone job runs at once, alone; under load, the jobs that arrive while a batch
// runs form the next one, so the cost per job falls as the load rises.
//
// When a batch of several jobs fails, each of its jobs runs again alone, so a job that cannot
// succeed fails by itself and its caller gets its exception. The runner must therefore leave
// nothing behind when it throws (roll back).
//
// batcher: coroutines await their job; batches run on a thread pool.
// blocking_batcher: threads that may block (a blocking pool's) wait for their job; one of
// them runs the batch.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "platform/runtime/asio.hpp"

namespace op::runtime {

namespace detail {
// Runs `jobs` together; if that throws, each alone. `failures[i]` gets what job i's own run
// threw.
template <class Job, class Runner>
void run_batch_or_each(const Runner& run, const std::vector<Job*>& jobs,
                       const std::vector<std::exception_ptr*>& failures) {
  try {
    run(jobs);
    return;
  } catch (...) {
    if (jobs.size() == 1) {
      *failures.front() = std::current_exception();
      return;
    }
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    try {
      run(std::vector<Job*>{jobs[i]});
    } catch (...) {
      *failures[i] = std::current_exception();
    }
  }
}
}  // namespace detail

template <class Job>
class batcher {
 public:
  using runner = std::function<void(const std::vector<Job*>& jobs)>;

  batcher(asio::thread_pool& pool, runner run, std::size_t max_batch, std::size_t max_parallel)
      : pool_(pool),
        run_(std::move(run)),
        max_batch_(max_batch < 1 ? 1 : max_batch),
        max_parallel_(max_parallel < 1 ? 1 : max_parallel) {}
  batcher(const batcher&) = delete;
  batcher& operator=(const batcher&) = delete;

  // Runs `job` in the next batch and resumes the caller on its own executor; rethrows what
  // the job's own run threw. `job` must stay alive until then.
  asio::awaitable<void> run(Job& job) {
    std::exception_ptr failure;
    co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
        [&](auto handler) {
          // Shared so the resumption fits a copyable std::function.
          auto waiting_handler = std::make_shared<decltype(handler)>(std::move(handler));
          enqueue({&job, &failure, [waiting_handler] {
                     auto resume_on = asio::get_associated_executor(*waiting_handler);
                     asio::post(resume_on, std::move(*waiting_handler));
                   }});
        },
        asio::use_awaitable);
    if (failure)
      std::rethrow_exception(failure);
  }

 private:
  struct waiting {
    Job* job;
    std::exception_ptr* failure;
    std::function<void()> resume;
  };

  void enqueue(waiting w) {
    bool start_worker = false;
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(w));
      if (workers_ < max_parallel_) {
        ++workers_;
        start_worker = true;
      }
    }
    if (start_worker)
      asio::post(pool_, [this] { work(); });
  }

  void work() {
    for (;;) {
      std::vector<waiting> batch;
      {
        std::lock_guard lock(mutex_);
        if (queue_.empty()) {
          --workers_;
          return;
        }
        while (!queue_.empty() && batch.size() < max_batch_) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      run_batch(batch);
      for (auto& w : batch)
        w.resume();
    }
  }

  void run_batch(const std::vector<waiting>& batch) {
    std::vector<Job*> jobs;
    std::vector<std::exception_ptr*> failures;
    for (const auto& w : batch) {
      jobs.push_back(w.job);
      failures.push_back(w.failure);
    }
    detail::run_batch_or_each(run_, jobs, failures);
  }

  asio::thread_pool& pool_;
  const runner run_;
  const std::size_t max_batch_;
  const std::size_t max_parallel_;
  std::mutex mutex_;
  std::deque<waiting> queue_;
  std::size_t workers_ = 0;
};

template <class Job>
class blocking_batcher {
 public:
  using runner = std::function<void(const std::vector<Job*>& jobs)>;

  blocking_batcher(runner run, std::size_t max_batch, std::size_t max_parallel)
      : run_(std::move(run)),
        max_batch_(max_batch < 1 ? 1 : max_batch),
        max_parallel_(max_parallel < 1 ? 1 : max_parallel) {}
  blocking_batcher(const blocking_batcher&) = delete;
  blocking_batcher& operator=(const blocking_batcher&) = delete;

  // Jobs handed in and not yet taken into a batch.
  std::size_t queued() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

  // Returns once `job` ran, in a batch this thread or another one ran; rethrows what the
  // job's own run threw.
  //
  // Each caller sleeps on a condition of its own. When a batch ends, only its callers are
  // woken, and the oldest caller still waiting if it may run the next batch: a condition
  // shared by all woke every waiting thread at the end of every batch (a POST waits here), to
  // find most of them still waiting.
  void run(Job& job) {
    waiting mine;
    mine.job = &job;
    std::unique_lock lock(mutex_);
    queue_.push_back(&mine);
    while (!mine.done) {
      if (running_ >= max_parallel_ || queue_.empty()) {
        // An empty queue: its job is in a batch another thread runs.
        mine.woken.wait(lock);
        continue;
      }
      // This thread runs the next batch: the oldest jobs waiting, maybe not its own yet.
      ++running_;
      std::vector<waiting*> batch;
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      wake_next_runner(&mine);  // jobs left over, and room for another batch
      lock.unlock();
      std::vector<Job*> jobs;
      std::vector<std::exception_ptr*> failures;
      for (auto* w : batch) {
        jobs.push_back(w->job);
        failures.push_back(&w->failure);
      }
      detail::run_batch_or_each(run_, jobs, failures);
      lock.lock();
      --running_;
      for (auto* w : batch) {
        w->done = true;
        if (w != &mine)
          w->woken.notify_one();
      }
      // While its own job waits, this thread runs the next batch itself.
      if (mine.done)
        wake_next_runner(&mine);
    }
    if (mine.failure)
      std::rethrow_exception(mine.failure);
  }

 private:
  struct waiting {
    Job* job = nullptr;
    bool done = false;
    std::exception_ptr failure;
    std::condition_variable woken;
  };

  // Under mutex_: if jobs wait and another batch may run, wakes the oldest caller waiting
  // (other than `self`) to run it.
  void wake_next_runner(const waiting* self) {
    if (running_ >= max_parallel_)
      return;
    for (auto* w : queue_)
      if (w != self) {
        w->woken.notify_one();
        return;
      }
  }

  const runner run_;
  const std::size_t max_batch_;
  const std::size_t max_parallel_;
  mutable std::mutex mutex_;
  std::deque<waiting*> queue_;
  std::size_t running_ = 0;
};

}  // namespace op::runtime
