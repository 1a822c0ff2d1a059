// Memory read-bandwidth probe (the roofline the GEMV benchmarks are compared with): all threads stream a buffer much
// larger than the last-level cache; a pass's bandwidth is bytes / seconds.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "gemm_impl.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"

namespace quanteval::impl {

namespace {
double read_sum_scalar(const uint8_t* p, int64_t bytes) {
  const int64_t n = bytes / 8;
  std::vector<uint64_t> part(64, 0);
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
    int64_t i = b;
    for (; i + 4 <= e; i += 4) { s0 += q[i]; s1 += q[i + 1]; s2 += q[i + 2]; s3 += q[i + 3]; }
    for (; i < e; i++) s0 += q[i];
    part[(size_t)(b * 63 / n)] += s0 + s1 + s2 + s3;
  });
  double s = 0;
  for (auto v : part) s += (double)v;
  return s;
}
}  // namespace

std::vector<double> read_bandwidth_seconds(int64_t bytes, int reps) {
  if (bytes < (1 << 20)) throw std::out_of_range("read_bandwidth_seconds: bytes must be >= 1 MiB");
  bytes = bytes / 4096 * 4096;
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, (size_t)bytes)),
                                                     &std::free);
  if (!buf) throw std::runtime_error("read_bandwidth_seconds: cannot allocate the buffer");
  // Touch every page from the pool's threads (first touch decides placement) with non-zero data.
  parallel_for(bytes / 4096, 16, [&](int64_t b, int64_t e) { std::memset(buf.get() + b * 4096, 1, (size_t)((e - b) * 4096)); });
  std::vector<double> secs;
  volatile double sink = 0;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    sink = sink + (cpu_isa() >= Isa::Avx2 ? avx2::read_sum(buf.get(), bytes) : read_sum_scalar(buf.get(), bytes));
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return secs;
}

}  // namespace quanteval::impl
