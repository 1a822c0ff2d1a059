// Bandwidth probe: every read strategy reads exactly the bytes of its range (a single non-zero byte anywhere inside
// [b, e) changes the fold, one just outside does not), and read_bandwidth_seconds returns one positive time a round.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>

#include "../cpu/gemm_impl.h"
#include "quanteval/cpu_features.h"
#include "test_common.h"

using namespace quanteval;

static void test_strategies_cover_range() {
  if (cpu_isa() < Isa::Avx2) return;
  std::mt19937 rng(3);
  const int64_t cap = 64 << 10;
  uint8_t* p = static_cast<uint8_t*>(std::aligned_alloc(4096, (size_t)cap));
  std::memset(p, 0, (size_t)cap);
  for (int t = 0; t < 60; t++) {
    // Ranges are whole pages in the probe; also try 32-byte multiples that are not 128-byte ones.
    const int64_t b = (int64_t)(rng() % 64) * (t % 2 ? 4096 / 8 : 32) % (cap / 2) / 32 * 32;
    const int64_t len = ((int64_t)(rng() % (cap / 2 / 32)) + 1) * 32;
    const int64_t e = std::min(cap, b + len);
    for (int s = 0; s < 3; s++) {
      CHECK(impl::avx2::read_stream(p, b, e, s) == 0, "strategy %d reads non-zero data from a zero buffer", s);
      for (int probe = 0; probe < 4; probe++) {
        const int64_t i = probe == 0 ? b : probe == 1 ? e - 1 : b + (int64_t)(rng() % (uint64_t)(e - b));
        p[i] = (uint8_t)(1 + rng() % 255);
        CHECK(impl::avx2::read_stream(p, b, e, s) != 0, "strategy %d misses byte %ld of [%ld, %ld)", s, (long)i,
              (long)b, (long)e);
        p[i] = 0;
      }
      if (e < cap) {
        p[e] = 0xff;
        CHECK(impl::avx2::read_stream(p, b, e, s) == 0, "strategy %d reads past e=%ld", s, (long)e);
        p[e] = 0;
      }
      if (b > 0) {
        p[b - 1] = 0xff;
        CHECK(impl::avx2::read_stream(p, b, e, s) == 0, "strategy %d reads before b=%ld", s, (long)b);
        p[b - 1] = 0;
      }
    }
  }
  std::free(p);
}

static void test_probe() {
  const auto secs = impl::read_bandwidth_seconds(3 << 20, 3);
  CHECK(secs.size() == 3, "3 rounds, got %zu times", secs.size());
  for (double s : secs) CHECK(s > 0 && s < 10, "round time %g s", s);
  bool threw = false;
  try { impl::read_bandwidth_seconds(1000, 1); } catch (const std::out_of_range&) { threw = true; }
  CHECK(threw, "read_bandwidth_seconds accepts 1000 bytes");
}

int main() {
  test_strategies_cover_range();
  test_probe();
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "ok", g_failures);
  return g_failures ? 1 : 0;
}
