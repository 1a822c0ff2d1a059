// A random KV cache of one sequence for the native attention tests (test_attention, test_attention_pos0), and an
// independent reader of its elements (from the formats.h text, not kv_common.h).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "quanteval/half.h"
#include "quanteval/kernels.h"
#include "test_common.h"

namespace qtest {
using namespace quanteval;

// Code d of an int3 / int2 row of head_dim D, written out from the formats.h text (independent of kv_common.h):
// int2 byte j holds codes 4j..4j+3 at bits 0-1, 2-3, 4-5, 6-7; int3 adds a plane of high bits after ceil(D/4) bytes.
inline int lowbit_code(KVType t, const uint8_t* row, int d, int D) {
  const int lo = (row[d / 4] >> (2 * (d % 4))) & 3;
  if (t == KVType::I2) return lo;
  const uint8_t* plane = row + (D + 3) / 4;
  return lo + 4 * ((plane[d / 8] >> (d % 8)) & 1);
}

// A cache of one sequence: T_cap tokens filled by kv_store_ref from random K/V, K of type kt and V of type vt.
struct Cache {
  KVType kt, vt;
  int H, D;
  int64_t T;
  int64_t window = 0;
  std::vector<uint8_t> k, v;
  std::vector<float> ks, kz, vs, vz;
  Cache(std::mt19937& rng, KVType type_, int H_, int D_, int64_t T_) : Cache(rng, type_, type_, H_, D_, T_) {}
  Cache(std::mt19937& rng, KVType kt_, KVType vt_, int H_, int D_, int64_t T_)
      : kt(kt_), vt(vt_), H(H_), D(D_), T(T_) {
    k.resize(T * H * kv_bytes_per_head(kt, D));
    v.resize(T * H * kv_bytes_per_head(vt, D));
    ks.resize(T * H); kz.resize(T * H); vs.resize(T * H); vz.resize(T * H);
    // Keys with a per-head offset (non-zero mean, so the zero-point term matters), values plain.
    auto kx = randn(rng, (size_t)T * H * D, 1.f, 0.3f), vx = randn(rng, (size_t)T * H * D);
    kv_store_ref(kx.data(), T, H, D, kt, k.data(), ks.data(), kz.data());
    kv_store_ref(vx.data(), T, H, D, vt, v.data(), vs.data(), vz.data());
  }
  KVView view() const { return view_at(k.data(), v.data(), ks.data(), kz.data(), vs.data(), vz.data(), 0); }
  // A view of this cache's types and shape over other buffers whose row 0 holds position pos0 (tail copies).
  KVView view_at(const uint8_t* kp, const uint8_t* vp, const float* kscale, const float* kzero, const float* vscale,
                 const float* vzero, int64_t pos0) const {
    KVView w;
    w.k_type = kt; w.v_type = vt; w.n_kv_heads = H; w.head_dim = D; w.window = window; w.pos0 = pos0;
    w.k = kp; w.v = vp;
    const bool kq = kv_quantized(kt), vq = kv_quantized(vt);
    w.k_scale = kq ? kscale : nullptr; w.k_zero = kq ? kzero : nullptr;
    w.v_scale = vq ? vscale : nullptr; w.v_zero = vq ? vzero : nullptr;
    return w;
  }
  // Dequantized element (double), token t, head h, dim d.
  double kval(int64_t t, int h, int d) const { return deq(kt, k.data(), ks, kz, t, h, d); }
  double vval(int64_t t, int h, int d) const { return deq(vt, v.data(), vs, vz, t, h, d); }
  double deq(KVType type, const uint8_t* base, const std::vector<float>& s, const std::vector<float>& z, int64_t t,
             int h, int d) const {
    const int64_t r = t * H + h;
    const uint8_t* row = base + r * kv_bytes_per_head(type, D);
    switch (type) {
      case KVType::F32: return ((const float*)row)[d];
      case KVType::F16: return f16_to_f32(((const uint16_t*)row)[d]);
      case KVType::I8: return ((double)row[d] - z[r]) * s[r];
      case KVType::I3: case KVType::I2: return ((double)lowbit_code(type, row, d, D) - z[r]) * s[r];
      default: return ((double)((row[d / 2] >> ((d & 1) * 4)) & 0xF) - z[r]) * s[r];
    }
  }
};

}  // namespace qtest
using qtest::Cache;
using qtest::lowbit_code;
