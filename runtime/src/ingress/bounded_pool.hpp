#pragma once

// The thread pool of the HTTP server: bounded, unlike httplib's own.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace cadre::runtime {

/// True on the thread that answers connections the pool could not take:
/// the middleware answers them 503 at once.
bool on_overflow_lane();

/// Marks this thread as the overflow lane (bounded_pool only).
void set_overflow_lane(bool on);

/// httplib's own pool queues connections without bound. This one runs at
/// most `threads` connections at once, queues `max_queued` more, answers
/// the next `max_queued` with 503 on a lane of its own, and past that
/// blocks the accept loop, so the kernel's backlog pushes back.
class bounded_pool final : public httplib::TaskQueue {
public:
  /// `abandon`: called with the number of connections still in hand when
  /// the drain timeout passes (see shutdown); may be empty.
  bounded_pool(size_t threads, size_t max_queued, std::chrono::milliseconds drain,
               std::function<void(size_t)> abandon = {})
    : workers_(threads),
      max_queued_(max_queued),
      drain_(drain),
      abandon_(std::move(abandon)) {
    for (size_t i = 0; i < threads; ++i)
      threads_.emplace_back([this] { work(false); });
    threads_.emplace_back([this] { work(true); });
  }

  ~bounded_pool() override {
    shutdown();
  }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> guard{mtx_};
    // Connections an idle worker is about to take do not count as queued.
    auto room = [this] {
      auto idle = workers_ > busy_ ? workers_ - busy_ : 0;
      return jobs_.size() < max_queued_ + idle;
    };
    space_.wait(guard, [&] {
      return stop_ || room() || rejects_.size() < max_queued_;
    });
    if (stop_)
      return;
    // One waiter of the connection's own lane is enough; waking every
    // worker for each connection cost more CPU than it served.
    if (room()) {
      jobs_.push_back(std::move(fn));
      work_.notify_one();
    } else {
      rejects_.push_back(std::move(fn));
      reject_work_.notify_one();
    }
  }

  // Waits for the connections in hand up to the drain timeout. Past it,
  // `abandon` is told how many are left (`cadre serve` ends the process
  // there, as a kill would); if it returns, the wait goes on. A thread is
  // never left running: its connection uses this pool, the server and the
  // node, all destroyed once this returns.
  void shutdown() override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stop_)
        return;
      stop_ = true;
    }
    work_.notify_all();
    reject_work_.notify_all();
    space_.notify_all();
    auto deadline = std::chrono::steady_clock::now() + drain_;
    size_t left = 0;
    {
      std::unique_lock<std::mutex> guard{mtx_};
      done_.wait_until(guard, deadline,
                       [this] { return running_ == 0 && jobs_.empty(); });
      left = running_ + jobs_.size() + rejects_.size();
    }
    if (left > 0 && abandon_)
      abandon_(left);
    for (auto& t : threads_)
      t.join();
    threads_.clear();
  }

private:
  void work(bool reject_lane) {
    set_overflow_lane(reject_lane);
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        auto& q = reject_lane ? rejects_ : jobs_;
        auto& ready = reject_lane ? reject_work_ : work_;
        ready.wait(guard, [&] { return stop_ || !q.empty(); });
        if (q.empty())
          return;
        fn = std::move(q.front());
        q.pop_front();
        ++running_;
        if (!reject_lane)
          ++busy_;
      }
      space_.notify_one();
      fn();
      {
        std::lock_guard<std::mutex> guard{mtx_};
        --running_;
        if (!reject_lane)
          --busy_;
      }
      space_.notify_one();
      done_.notify_all();
    }
  }

  std::mutex mtx_;
  std::condition_variable work_;
  std::condition_variable reject_work_;
  std::condition_variable space_;
  std::condition_variable done_;
  std::deque<std::function<void()>> jobs_;
  std::deque<std::function<void()>> rejects_;
  std::vector<std::thread> threads_;
  size_t workers_;
  size_t max_queued_;
  std::chrono::milliseconds drain_;
  std::function<void(size_t)> abandon_;
  // Connections being handled, on either lane, and on the workers' lane.
  size_t running_ = 0;
  size_t busy_ = 0;
  bool stop_ = false;
};


} // namespace cadre::runtime
