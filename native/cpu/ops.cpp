// Dispatching entry points of the decoder-step ops. First version: they run the references.
#include "quanteval/kernels.h"

namespace quanteval {

void rmsnorm(const float* x, const float* w, int64_t M, int64_t D, float eps, float* y) { rmsnorm_ref(x, w, M, D, eps, y); }
void rope_apply(float* x, int64_t T, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                const float* inv_freq) {
  rope_apply_ref(x, T, n_heads, head_dim, rotary_dim, positions, inv_freq);
}
void silu_mul(const float* gate, const float* up, int64_t n, float* out) { silu_mul_ref(gate, up, n, out); }
void softmax(float* x, int64_t M, int64_t N) { softmax_ref(x, M, N); }
void log_softmax_gather(const float* logits, int64_t M, int64_t V, const int32_t* targets, float* logp) {
  log_softmax_gather_ref(logits, M, V, targets, logp);
}
void log_softmax_topk(const float* logits, int64_t M, int64_t V, int k, int32_t* idx, float* logp) {
  log_softmax_topk_ref(logits, M, V, k, idx, logp);
}
void embedding(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* out) {
  embedding_ref(table, dtype, V, D, ids, n, out);
}

}  // namespace quanteval
