// Packed-layout round trips and fp16/bf16 conversions: the scalar definitions in formats.h / half.h.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "quanteval/formats.h"
#include "quanteval/half.h"
#include "test_common.h"

using namespace quanteval;


int main() {
  std::mt19937 rng(1234);
  for (int bits : {2, 3, 4, 6, 8}) {
    for (int64_t K : {1, 7, 31, 32, 33, 64, 172, 257}) {
      std::vector<uint8_t> row(row_bytes(K, bits), 0);
      std::vector<int> codes(K);
      for (int64_t k = 0; k < K; k++) {
        codes[k] = (int)(rng() % (1u << bits));
        put_code(row.data(), k, bits, codes[k]);
      }
      for (int64_t k = 0; k < K; k++)
        CHECK(get_code(row.data(), k, bits) == codes[k], "bits=%d K=%ld k=%ld: got %d want %d", bits, (long)K, (long)k,
              get_code(row.data(), k, bits), codes[k]);
    }
  }
  // 4-bit layout: byte j holds c[j] (low) and c[j+16] (high).
  {
    std::vector<uint8_t> row(16, 0);
    put_code(row.data(), 3, 4, 0xA);
    put_code(row.data(), 19, 4, 0x5);
    CHECK(row[3] == 0x5A, "4-bit byte 3 = %02x", row[3]);
  }
  // 6-bit layout: bytes 0..15 the 4-bit chunk of the low nibbles, bytes 16..23 the 2-bit chunk of the high two bits.
  {
    std::vector<uint8_t> row(24, 0);
    put_code(row.data(), 3, 6, 0x2A);   // lo 0xA -> byte 3 low nibble; hi 2 -> byte 16 + 3, bits 0..1
    put_code(row.data(), 27, 6, 0x3F);  // lo 0xF -> byte 11 high nibble; hi 3 -> byte 16 + 3, bits 6..7
    CHECK(row[3] == 0x0A && row[11] == 0xF0 && row[19] == 0xC2, "6-bit bytes 3, 11, 19 = %02x %02x %02x", row[3],
          row[11], row[19]);
    int nonzero = 0;
    for (int i = 0; i < 24; i++) nonzero += row[i] != 0;
    CHECK(nonzero == 3, "6-bit: %d nonzero bytes, want 3", nonzero);
    CHECK(get_code(row.data(), 3, 6) == 0x2A && get_code(row.data(), 27, 6) == 0x3F, "6-bit get_code");
  }
  // fp16/bf16: exact round trips of representable values, round-to-nearest-even of others.
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = f16_to_f32((uint16_t)h);
    if (std::isnan(f)) continue;
    CHECK(f32_to_f16(f) == h, "f16 %04x round trip -> %04x", h, f32_to_f16(f));
    float b = bf16_to_f32((uint16_t)h);
    if (std::isnan(b)) continue;
    CHECK(f32_to_bf16(b) == h, "bf16 %04x round trip -> %04x", h, f32_to_bf16(b));
  }
  CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "half-way rounds to even");
  CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "half-way rounds to even (up)");
  CHECK(f32_to_f16(70000.f) == 0x7c00, "overflow to inf");
  std::printf("%s: %d failures\n", g_failures ? "FAIL" : "ok", g_failures);
  return g_failures ? 1 : 0;
}
