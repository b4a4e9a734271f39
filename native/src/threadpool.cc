#include "threadpool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace chimera {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Busy-wait step: pause for the first spins, then give the core away, so a waiting thread
// costs little when the machine has more runnable threads than cores.
inline void backoff(int& spins) {
  if (++spins < 2048) cpu_relax();
  else std::this_thread::yield();
}

// Depth of parallel_run jobs this thread is executing as a pool member (0 = none).
thread_local int tl_in_pool_job = 0;

struct Pool {
  std::vector<std::thread> workers;
  int nthreads = 1;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> busy{false};
  const std::function<void(int, int)>* job = nullptr;
  alignas(64) std::atomic<int> bar_waiting{0};
  alignas(64) std::atomic<uint32_t> bar_phase{0};

  // `seen` starts at the generation current when the worker is spawned, so a new worker never
  // mistakes an old job for a new one.
  void worker(int tid, uint64_t seen) {
    for (;;) {
      // Spin for a while before sleeping: kernels arrive in quick succession.
      int spins = 0;
      while (generation.load(std::memory_order_acquire) == seen && !stop.load(std::memory_order_relaxed)) {
        if (spins < 20000) { backoff(spins); continue; }
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen || stop.load(); });
        break;
      }
      if (stop.load()) return;
      seen = generation.load(std::memory_order_acquire);
      tl_in_pool_job = 1;
      (*job)(tid, nthreads);
      tl_in_pool_job = 0;
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void resize(int n) {
    if (n < 1) n = 1;
    if (n == nthreads && (int)workers.size() == n - 1) return;
    bool expected = false;
    while (!busy.compare_exchange_weak(expected, true, std::memory_order_acquire)) { expected = false; cpu_relax(); }
    shutdown();
    stop.store(false);
    nthreads = n;
    const uint64_t gen = generation.load(std::memory_order_acquire);
    for (int t = 1; t < n; t++) workers.emplace_back([this, t, gen] { worker(t, gen); });
    busy.store(false, std::memory_order_release);
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop.store(true);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
  }

  void run_inline(const std::function<void(int, int)>& fn) {
    int saved = tl_in_pool_job;
    tl_in_pool_job = 0;  // barrier() is a no-op in a one-thread job
    fn(0, 1);
    tl_in_pool_job = saved;
  }

  void run(const std::function<void(int, int)>& fn) {
    bool expected = false;
    if (nthreads == 1 || tl_in_pool_job || !busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      run_inline(fn);
      return;
    }
    job = &fn;
    pending.store(nthreads - 1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    cv.notify_all();
    tl_in_pool_job = 1;
    fn(0, nthreads);
    tl_in_pool_job = 0;
    int spins = 0;
    while (pending.load(std::memory_order_acquire) != 0) backoff(spins);
    job = nullptr;
    busy.store(false, std::memory_order_release);
  }

  void barrier_wait() {
    if (!tl_in_pool_job || nthreads == 1) return;
    uint32_t phase = bar_phase.load(std::memory_order_acquire);
    if (bar_waiting.fetch_add(1, std::memory_order_acq_rel) == nthreads - 1) {
      bar_waiting.store(0, std::memory_order_relaxed);
      bar_phase.store(phase + 1, std::memory_order_release);
    } else {
      int spins = 0;
      while (bar_phase.load(std::memory_order_acquire) == phase) backoff(spins);
    }
  }

  ~Pool() { shutdown(); }
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void set_threads(int n) { pool().resize(n); }
int get_threads() { return pool().nthreads; }

void parallel_run(const std::function<void(int, int)>& fn) { pool().run(fn); }

void barrier() { pool().barrier_wait(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (pool().nthreads == 1 || n <= grain) { fn(0, n); return; }
  int64_t chunks = (n + grain - 1) / grain;
  pool().run([&](int tid, int nt) {
    // Chunks are planned from the threads that actually run this job.
    int64_t used = chunks < nt ? chunks : nt;
    int64_t per = ((chunks + used - 1) / used) * grain;
    int64_t b = (int64_t)tid * per, e = b + per < n ? b + per : n;
    if (b < e) fn(b, e);
  });
}

}  // namespace chimera
