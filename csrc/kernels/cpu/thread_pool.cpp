#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace gleam::cpu {

namespace {

thread_local bool t_inside_pool = false;

class Pool {
 public:
  static Pool& get() {
    static Pool* pool = new Pool();  // never destroyed: workers may outlive static destruction order
    return *pool;
  }

  void run(int64_t begin, int64_t end, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body) {
    const int64_t n = end - begin;
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / std::max<int64_t>(grain, 1)));
    if (parts <= 1 || t_inside_pool) {
      body(begin, end);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mutex_);  // one parallel region at a time
    ensure_workers(static_cast<int>(parts) - 1);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      job_ = {begin, n, parts, &body};
      next_.store(0);
      pending_ = parts;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mutex_);
    done_.wait(lk, [&] { return pending_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct Job {
    int64_t begin = 0, n = 0, parts = 0;
    const std::function<void(int64_t, int64_t)>* body = nullptr;
  };

  void ensure_workers(int count) {
    while (static_cast<int>(workers_.size()) < count) workers_.emplace_back([this] { loop(); });
  }

  // Takes chunks until none are left.
  void work() {
    const bool was_inside = t_inside_pool;
    t_inside_pool = true;
    for (;;) {
      const int64_t k = next_.fetch_add(1);
      if (k >= job_.parts) break;
      try {
        (*job_.body)(job_.begin + job_.n * k / job_.parts, job_.begin + job_.n * (k + 1) / job_.parts);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(mutex_);
      if (--pending_ == 0) done_.notify_all();
    }
    t_inside_pool = was_inside;
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mutex_);
        wake_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job job_;
  std::atomic<int64_t> next_{0};
  int64_t pending_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

}  // namespace

void pool_parallel_for(int64_t begin, int64_t end, int64_t grain, int threads,
                       const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  Pool::get().run(begin, end, grain, threads, body);
}

Executor pool_executor(int threads) {
  Executor e;
  e.threads = std::max(1, threads);
  e.pfor = [t = e.threads](int64_t b, int64_t en, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
    pool_parallel_for(b, en, grain, t, f);
  };
  return e;
}

}  // namespace gleam::cpu
