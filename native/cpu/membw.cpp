// Memory read-bandwidth probe: the roofline the GEMV benchmarks are compared with. It must be honest in the sense
// of an upper bound: the highest read rate this machine sustains, not the rate of one naive loop. So:
//  - the buffer is much larger than the last-level cache, 2 MiB aligned and advised as transparent huge pages
//    (madvise mode here): fewer TLB misses and page walks per byte, as a weight buffer can have;
//  - the pool's threads (the caller included) take 4 MiB blocks dynamically, each read as one or more sequential
//    streams: on a shared machine a descheduled thread's blocks go to the others instead of stalling the pass, which a
//    static split into halves cannot do (the GEMV kernels hand out their rows the same way);
//  - each round times every read strategy of membw_avx2.cpp (one stream, four streams, software prefetch) and the
//    round's figure is its fastest pass; the benchmarks report the best and the median round.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "gemm_common.h"
#include "gemm_impl.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"

namespace quanteval::impl {

namespace {
uint64_t read_stream_scalar(const uint8_t* p, int64_t b, int64_t e) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = b / 8;
  const int64_t n = e / 8;
  for (; i + 4 <= n; i += 4) { s0 |= q[i]; s1 |= q[i + 1]; s2 |= q[i + 2]; s3 |= q[i + 3]; }
  for (; i < n; i++) s0 |= q[i];
  return s0 ^ s1 ^ s2 ^ s3;
}
constexpr int kStrategies = 3;  // membw_avx2.cpp read_stream
}  // namespace

std::vector<double> read_bandwidth_seconds(int64_t bytes, int reps) {
  if (bytes < (1 << 20)) throw std::out_of_range("read_bandwidth_seconds: bytes must be >= 1 MiB");
  if (reps < 1) throw std::out_of_range("read_bandwidth_seconds: reps must be >= 1");
  constexpr int64_t kHuge = 2 << 20;
  const int64_t alloc = (bytes + kHuge - 1) / kHuge * kHuge;
  bytes = bytes / 4096 * 4096;
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(kHuge, (size_t)alloc)),
                                                     &std::free);
  if (!buf) throw std::runtime_error("read_bandwidth_seconds: cannot allocate the buffer");
#ifdef MADV_HUGEPAGE
  madvise(buf.get(), (size_t)alloc, MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
  constexpr int64_t kBlock = 4 << 20;
  detail::dynamic_for(bytes, kBlock, [&](int64_t b, int64_t e) { std::memset(buf.get() + b, 1, (size_t)(e - b)); });
  const bool avx2 = cpu_isa() >= Isa::Avx2;
  std::atomic<uint64_t> sink{0};
  std::vector<double> secs;
  for (int r = 0; r < reps; r++) {
    double best = 1e30;
    for (int s = 0; s < (avx2 ? kStrategies : 1); s++) {
      const auto t0 = std::chrono::steady_clock::now();
      detail::dynamic_for(bytes, kBlock, [&](int64_t b, int64_t e) {
        sink.fetch_xor(avx2 ? avx2::read_stream(buf.get(), b, e, s) : read_stream_scalar(buf.get(), b, e),
                       std::memory_order_relaxed);
      });
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    secs.push_back(best);
  }
  return secs;
}

}  // namespace quanteval::impl
