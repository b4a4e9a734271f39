// A tiny persistent thread pool: parallel_for over [0, n) split into contiguous chunks.
// Workers spin briefly between jobs (back-to-back kernels pay ~no wake-up cost), then sleep.
// A job that arrives while the pool is busy (another JS thread, or a call from inside a job)
// runs inline on the calling thread with nthreads = 1, so nesting is safe, just not parallel.
// Job bodies must not throw.
#pragma once
#include <cstdint>
#include <functional>

namespace chimera {

// Sets the number of threads (>= 1, including the caller). Call between jobs.
void set_threads(int n);
int get_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n); chunks are multiples of `grain`
// except the last. Runs inline when one thread is set or n <= grain.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// Runs fn(tid, nthreads) once on each thread (tid 0 is the caller). Plan the work split from
// the nthreads passed in (it is 1 when the job had to run inline).
void parallel_run(const std::function<void(int, int)>& fn);

// Inside a parallel_run body only: waits until all nthreads threads of the job have arrived
// (spinning). Every thread of the job must call it the same number of times; code that splits a
// job into smaller teams must not call it. No-op in an inline (one-thread) job.
void barrier();

}  // namespace chimera
