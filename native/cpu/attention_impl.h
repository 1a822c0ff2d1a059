// Internal interface between the attention drivers (attention.cpp: validation, work split, merge) and the
// per-ISA inner kernels (attention_avx2.cpp and the scalar fallback in attention.cpp).
#pragma once
#include <cmath>
#include <cstdint>

#include "quanteval/kernels.h"

namespace quanteval::detail {

// Online-softmax state of one query head over a range of tokens (FlashInfer's state_t):
//   m = max score, l = Σ exp(score - m), acc[D] = Σ exp(score - m) · v.
// Two states over disjoint token ranges merge exactly; the attention output is acc / l.
struct SoftmaxState {
  float m, l;
  float* acc;  // [head_dim]
};
inline void merge_state(SoftmaxState& a, const SoftmaxState& b, int D) {
  const float m = std::max(a.m, b.m);
  const float fa = std::exp(a.m - m), fb = std::exp(b.m - m);  // exp(-inf) = 0 for an empty side
  for (int d = 0; d < D; d++) a.acc[d] = a.acc[d] * fa + b.acc[d] * fb;
  a.l = a.l * fa + b.l * fb;
  a.m = m;
}

// One unit of decode work: kv heads [h0, h1) of one sequence (with their G query heads each) over tokens
// [t0, t1). Writes the unnormalized states of the (h1 - h0) · G query heads: m[n], l[n], acc[n, D].
// t0 / t1 are cache rows (position - kv->pos0): the drivers translate positions.
struct DecodeTask {
  const float* q;  // [(h1 - h0) · G, D] (unscaled)
  int G, D;
  const KVView* kv;
  int h0, h1;
  int64_t t0, t1;
  float scale;
  float* m;
  float* l;
  float* acc;
};
void decode_task_scalar(const DecodeTask& t);
void decode_task_avx2(const DecodeTask& t);

// One unit of prefill work: query positions [i0, i1) of all G heads of kv head `kvh`; writes normalized outputs.
// The driver hands a view with kv->pos0 == 0 and positions relative to the first held one (pos0 here likewise).
struct PrefillTask {
  const float* q;  // [Tq, n_heads, D]
  int n_heads, G, D;
  const KVView* kv;
  int kvh;
  int64_t i0, i1, pos0;
  float scale;
  float* out;  // [Tq, n_heads, D]
};
void prefill_task_avx2(const PrefillTask& t);

// Converts/quantizes rows [r0, r1) of x[rows, head_dim] (rows = tokens × kv heads) into the cache.
void kv_store_rows_avx2(const float* x, int64_t r0, int64_t r1, int head_dim, KVType type, void* dst, float* scale,
                        float* zero);

}  // namespace quanteval::detail
