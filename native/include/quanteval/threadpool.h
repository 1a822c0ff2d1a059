// A persistent thread pool shared by every CPU kernel.
//
// Size: the machine's hardware concurrency, overridden by QUANTEVAL_THREADS (env) or set_num_threads(). Workers
// sleep on a condition variable between jobs and spin briefly first, so a decode step's many small parallel
// regions do not pay a wake-up each. parallel_for is not re-entrant: a call made from inside a worker runs
// serially on the calling thread (nested regions are the caller's choice of grain, not the pool's).
#pragma once
#include <cstdint>
#include <functional>

namespace quanteval {

int num_threads();
void set_num_threads(int n);  // n >= 1; resizes the pool
// Runs fn(begin, end) over [0, n) split into at most num_threads() contiguous ranges of at least `grain` items.
// An exception thrown by fn is rethrown on the calling thread once every range has finished (the first, if several).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace quanteval
