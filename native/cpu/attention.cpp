// Dispatching entry points of the KV-cache kernels (kv_store, attention_decode, attention_prefill). First version:
// they run the references; the fast kernels replace them below as they land.
#include "quanteval/kernels.h"

namespace quanteval {

void kv_store(const float* x, int64_t T, int n_kv_heads, int head_dim, KVType type, void* dst, float* scale,
              float* zero) {
  kv_store_ref(x, T, n_kv_heads, head_dim, type, dst, scale, zero);
}

void attention_decode(const float* q, int64_t B, int n_heads, const KVView* kv, const int64_t* lens, float scale,
                      float* out) {
  attention_decode_ref(q, B, n_heads, kv, lens, scale, out);
}

void attention_prefill(const float* q, int64_t Tq, int n_heads, const KVView& kv, int64_t pos0, float scale,
                       float* out) {
  attention_prefill_ref(q, Tq, n_heads, kv, pos0, scale, out);
}

}  // namespace quanteval
