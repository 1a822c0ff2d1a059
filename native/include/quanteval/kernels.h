// quanteval CPU kernel API: the contract between kernels (native/cpu), the runtime (native/runtime), the
// calibration numerics (native/calib) and the N-API bindings (native/napi).
//
// Every kernel `foo` has a scalar reference `foo_ref` (native/cpu/ref/) that defines it and is its test oracle.
// The fast versions dispatch at run time on CPU features (cpu_features.h) and run on the shared thread pool
// (threadpool.h). All tensors are row-major and contiguous unless a stride is given. Shapes are in comments.
// Errors (bad formats, unsupported combinations) are reported by throwing std::invalid_argument; the N-API layer
// turns them into JS errors. Kernels never abort.
#pragma once
#include <cstdint>
#include "quanteval/formats.h"

namespace quanteval {

// ── Weight quantization ───────────────────────────────────────────────────────────────────────────────────────
// RTN (round to nearest) with the semantics documented in formats.h. W [N, K] fp32.
// codes [N, row_bytes(K, bits)] (zeroed by the callee), scales [N, n_groups] of fmt.scale_dtype,
// zeros [N, n_groups] (ignored and may be null when symmetric).
// The scale is computed in fp32 and then stored in scale_dtype; codes are computed against the *stored* scale so
// that dequantize reproduces exactly what the kernels compute.
void quantize_rtn_ref(const float* W, int64_t N, int64_t K, const QuantFormat& fmt, uint8_t* codes, void* scales,
                      uint8_t* zeros);
// W_hat [N, K] fp32 = (q - z) * s.
void dequantize_ref(const QuantWeight& w, float* W_hat);
// fp32 scale of group g of row n.
float load_scale(const QuantWeight& w, int64_t n, int64_t g);

// ── GEMM / GEMV: Y[M, N] = X[M, K] · W[N, K]^T (+ bias[N]) ─────────────────────────────────────────────────────
// Activations X are fp32 or bf16 (x_dtype); Y is fp32; accumulation is fp32.
struct DenseWeight {
  DType dtype = DType::F32;  // F32, F16 or BF16
  int64_t N = 0, K = 0;
  const void* data = nullptr;  // [N, K]
};
void gemm_dense_ref(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y);
void gemm_dense(const void* X, DType x_dtype, int64_t M, const DenseWeight& W, const float* bias, float* Y);

// Fused dequantization: never materializes dequant(W). Small M takes the memory-bound GEMV path, large M the tiled
// compute-bound path.
void gemm_q_ref(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y);
void gemm_q(const void* X, DType x_dtype, int64_t M, const QuantWeight& W, const float* bias, float* Y);
// Several weights reading the same X (a layer's q/k/v, gate/up): Y[i] = X · dequant(W[i])ᵀ (+ bias[i]) for i < n,
// bit-identical to n gemm_q calls. Weights of one bit width and group size (and K) at GEMV sizes run as one
// parallel pass over all their rows: X is prepared once and the threads meet once instead of n times. bias may be
// null, or hold null entries.
void gemm_q_multi(const void* X, DType x_dtype, int64_t M, const QuantWeight* W, int n, const float* const* bias,
                  float* const* Y);

// ── Activation quantization and W8A8 ────────────────────────────────────────────────────────────────────────
// Per-token dynamic activation quantization with the golden semantics (asymmetric min-max per row of X, `bits`
// bits, pseudo_quantize_tensor). Fake-quant form: X_hat[M, K] = dequant(quant(X)). Used where no integer kernel
// exists (a4, or a8 on dense weights): results are then marked simulated.
void fake_quant_act_ref(const float* X, int64_t M, int64_t K, int bits, float* X_hat);
// Real int8 activations for every packed weight format (W8A8, W4A8, w4g128a8, w3g128a8, w2g64a8, ...): X is
// quantized per token to uint8 codes qa with a scale sa and zero point za (bits = 8, asymmetric, exactly as
// fake_quant_act_ref), multiplied by the integer weight codes qw with exact int32 accumulation per weight group g,
// corrected with the zero points, and rescaled per group:
//     acc_g = sum_{k in g} (qa - za)(qw - zw_g) = sum qa*qw - za * sum qw - zw_g * sum qa + len_g * za * zw_g
//     Y = sa * sum_g sw_g * acc_g (+ bias)
// W may have any bits (2/3/4/8), group size (per channel = group_size >= K; a short last group), symmetric or not,
// fp32/fp16/bf16 scales. One group per row: Y = (sa * sw) * acc in fp32, the same in the fast kernel and the ref
// (bit-identical). Grouped: the ref sums the groups in double, the fast kernels in fp32. Equals
// gemm_q_ref(fake_quant_act_ref(X), W) up to fp32 rounding. AVX2 kernels for group sizes that are multiples of 32
// (and per channel); other group sizes take the portable integer path.
void gemm_w8a8_ref(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y);
void gemm_w8a8(const float* X, int64_t M, const QuantWeight& W, const float* bias, float* Y);
// gemm_w8a8 for several weights reading the same X, as gemm_q_multi: one activation quantization and one pass when
// the weights share a kernel path, bits class and group size; bit-identical to n gemm_w8a8 calls.
void gemm_w8a8_multi(const float* X, int64_t M, const QuantWeight* W, int n, const float* const* bias, float* const* Y);

// ── Attention over a (quantized) KV cache ────────────────────────────────────────────────────────────────────
// One sequence's cache (of one layer). Element layout in formats.h. Tensors are [T_cap, n_kv_heads, ...]
// token-major; only the first `len` tokens are valid. K and V have their own element types (e.g. K int8 and V int4,
// the "k8v4" setting); K rows are kv_bytes_per_head(k_type) bytes, V rows kv_bytes_per_head(v_type).
// `window` is the sliding attention window of the layer (Mistral / Qwen2 `sliding_window`; 0 = none): the query at
// position p sees key j iff j <= p and p - j < window, exactly transformers' sliding-window causal mask
// (masking_utils.sliding_window_causal_mask_function: kv_idx > q_idx - sliding_window). It lives here rather than
// as a kernel argument because it is a property of the layer's cache, like its types.
struct KVView {
  KVType k_type = KVType::F32, v_type = KVType::F32;
  int n_kv_heads = 0, head_dim = 0;
  int64_t window = 0;              // 0 = full causal attention; else > 0
  // The cache holds positions [pos0, len): k / v / the scales point at the token of position pos0, so position t is
  // row t - pos0 (a sliding-window cache drops positions no query can see any more). A query that needs a position
  // below pos0 (kv_window_start(kv, p) < pos0) is a caller bug: the kernels throw std::invalid_argument.
  int64_t pos0 = 0;
  const void* k = nullptr;         // [T_cap, n_kv_heads, kv_bytes_per_head(k_type)]
  const void* v = nullptr;         // [T_cap, n_kv_heads, kv_bytes_per_head(v_type)]
  const float* k_scale = nullptr;  // [T_cap, n_kv_heads]  (quantized k_type only)
  const float* k_zero = nullptr;
  const float* v_scale = nullptr;  // [T_cap, n_kv_heads]  (quantized v_type only)
  const float* v_zero = nullptr;
};
// First key position visible to a query at position p (inclusive): max(0, p - window + 1), or 0 without a window.
inline int64_t kv_window_start(const KVView& kv, int64_t p) {
  return kv.window > 0 && p - kv.window + 1 > 0 ? p - kv.window + 1 : 0;
}
// Quantize (or convert) `T` new tokens x[T, n_kv_heads, head_dim] fp32 into a cache slot region: dst points at the
// first destination token; scale/zero likewise (quantized types). Semantics: per token per head asymmetric min-max,
// pseudo_quantize_tensor with 8 or 4 bits.
void kv_store_ref(const float* x, int64_t T, int n_kv_heads, int head_dim, KVType type, void* dst, float* scale,
                  float* zero);
void kv_store(const float* x, int64_t T, int n_kv_heads, int head_dim, KVType type, void* dst, float* scale,
              float* zero);
// Decode: q [B, n_heads, head_dim] (one query per sequence b, at position lens[b]-1, i.e. it sees tokens
// [kv_window_start(kv[b], lens[b]-1), lens[b])), out [B, n_heads, head_dim]. Grouped-query: head h reads kv head
// h / (n_heads / n_kv_heads).
// `scale` multiplies q·k (usually 1/sqrt(head_dim)). Online softmax; dequantization fused in the inner loop.
void attention_decode_ref(const float* q, int64_t B, int n_heads, const KVView* kv, const int64_t* lens, float scale,
                          float* out);
// attention_decode's AVX2 path scores int4 keys of MHA caches (one query head per kv head, 32 <= head_dim <= 2048)
// and of GQA caches with groups of 4k query heads (head_dim 64, 128, 192 or 256), and int8 keys of such MHA or GQA
// caches with head_dim a multiple of 16 up to 256, against the scaled query rounded to 16-bit fixed point per head: q·scale ≈ u·f, u = max_d |q_d·scale| / 32639,
// f = round(q·scale / u) (round half to even), an error of at most u/2 per element (fp16 operands keep 11 bits).
// The keys' zero-point term uses the same rounded query, so the scores are those of the rounded query exactly
// (test_attention: fast vs ref on the rounded query within 5e-6, vs ref on q within 1e-4). Likewise int4 values of
// MHA caches (head_dim a multiple of 64, <= 2048) meet the softmax weights w_t = p_t·v_scale_t of each block of tokens
// rounded to 16-bit fixed point (w ≈ uw·f, f in [0, 65535], uw = the block's max w / 65535; the zero-point term with
// the same rounded weights): within 1e-4 of the reference. Every other case is fp32.
void attention_decode(const float* q, int64_t B, int n_heads, const KVView* kv, const int64_t* lens, float scale,
                      float* out);
// Causal prefill for one sequence: q [Tq, n_heads, head_dim] are the queries at positions pos0 .. pos0+Tq-1 and
// the cache already holds tokens [kv.pos0, pos0+Tq). Query i sees tokens [kv_window_start(kv, pos0 + i), pos0 + i].
// out [Tq, n_heads, head_dim].
void attention_prefill_ref(const float* q, int64_t Tq, int n_heads, const KVView& kv, int64_t pos0, float scale,
                           float* out);
void attention_prefill(const float* q, int64_t Tq, int n_heads, const KVView& kv, int64_t pos0, float scale,
                       float* out);

// ── The rest of a decoder step ───────────────────────────────────────────────────────────────────────────────
// y[M, D] = x / sqrt(mean(x^2) + eps) * w   (Llama RMSNorm, computed in fp32; y may alias x)
void rmsnorm_ref(const float* x, const float* w, int64_t M, int64_t D, float eps, float* y);
void rmsnorm(const float* x, const float* w, int64_t M, int64_t D, float eps, float* y);

struct RopeConfig {
  int head_dim = 0;
  int rotary_dim = 0;        // <= head_dim, even (partial rotary: only the first rotary_dim dims rotate)
  double theta = 10000.0;
  int scaling = 0;           // 0 none, 1 llama3, 2 linear
  double factor = 1.0;       // llama3 / linear
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double original_max_position = 8192;                   // llama3
};
// inv_freq [rotary_dim / 2], exactly as transformers' _compute_default/llama3_rope_parameters (computed in double).
void rope_inv_freq(const RopeConfig& cfg, float* inv_freq);
// In place on x [T, n_heads, head_dim] with positions [T]; HF "rotate_half" convention: dims i and i + rotary_dim/2
// form a pair. cos/sin computed in fp32 from positions * inv_freq, as transformers does.
void rope_apply_ref(float* x, int64_t T, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                    const float* inv_freq);
void rope_apply(float* x, int64_t T, int n_heads, int head_dim, int rotary_dim, const int32_t* positions,
                const float* inv_freq);
// out[n] = silu(gate[n]) * up[n]
void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out);
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// In place, rows of length N.
void softmax_ref(float* x, int64_t M, int64_t N);
void softmax(float* x, int64_t M, int64_t N);
// logp[m] = log_softmax(logits[m, :])[targets[m]]   (fp32 with a max-subtracted, double-accumulated sum)
void log_softmax_gather_ref(const float* logits, int64_t M, int64_t V, const int32_t* targets, float* logp);
void log_softmax_gather(const float* logits, int64_t M, int64_t V, const int32_t* targets, float* logp);
// Top-k of log_softmax(logits[m, :]): idx [M, k], logp [M, k], sorted descending (ties: lower index first).
void log_softmax_topk_ref(const float* logits, int64_t M, int64_t V, int k, int32_t* idx, float* logp);
void log_softmax_topk(const float* logits, int64_t M, int64_t V, int k, int32_t* idx, float* logp);
// out[n, D] = table[ids[n], :] as fp32; table [V, D] of dtype F32/F16/BF16. Throws on an id outside [0, V).
void embedding_ref(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* out);
void embedding(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* ids, int64_t n, float* out);

}  // namespace quanteval
