#include "quanteval/threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace quanteval {

namespace {

thread_local bool t_in_worker = false;

// One job at a time (guarded by submit_mu): the caller publishes fn and n_tasks, bumps `generation`, runs task 0
// itself, then waits until every worker has finished its task.
class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return (int)workers_.size() + 1; }

  void resize(int n) {
    std::lock_guard<std::mutex> g(submit_mu_);
    stop();
    quit_ = false;
    // A new worker must start from the current generation, or it would run the last (finished) job again.
    const uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  void run(int n_tasks, const std::function<void(int)>& fn) {
    std::lock_guard<std::mutex> g(submit_mu_);
    n_tasks = std::min(n_tasks, size());
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      pending_.store(n_tasks - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    t_in_worker = true;
    fn(0);
    t_in_worker = false;
    // Spin briefly, then sleep until the workers are done.
    for (int spin = 0; spin < 20000 && pending_.load(std::memory_order_acquire) != 0; spin++) std::this_thread::yield();
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    fn_ = nullptr;
  }

 private:
  void loop(int id, uint64_t seen) {
    t_in_worker = true;
    for (;;) {
      // Spin a little before sleeping: decode steps issue parallel regions back to back.
      for (int spin = 0; spin < 2000 && generation_.load(std::memory_order_acquire) == seen && !quit_; spin++)
        std::this_thread::yield();
      const std::function<void(int)>* fn;
      int n;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return quit_ || generation_.load(std::memory_order_acquire) != seen; });
        if (quit_) return;
        seen = generation_.load(std::memory_order_acquire);
        fn = fn_;
        n = n_tasks_;
      }
      if (id < n) {
        (*fn)(id);
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> lk(mu_);
          done_cv_.notify_all();
        }
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex submit_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> quit_{false};
};

int default_threads() {
  if (const char* e = std::getenv("QUANTEVAL_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // leaked on purpose: no join at static destruction
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n != pool().size()) pool().resize(n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int nt = (int)std::min<int64_t>(num_threads(), max_chunks);
  if (nt <= 1 || t_in_worker) {
    fn(0, n);
    return;
  }
  int64_t per = (n + nt - 1) / nt;
  // An exception must not leave a task: on a worker it would terminate the process, and on the calling thread it
  // would return while the workers still run fn. The first one is kept and rethrown here once every task is done.
  std::exception_ptr error;
  std::atomic<bool> failed{false};
  pool().run(nt, [&](int i) {
    int64_t b = i * per, e = std::min(n, b + per);
    if (b >= e) return;
    try {
      fn(b, e);
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
  });
  if (error) std::rethrow_exception(error);
}

}  // namespace quanteval
