// quanteval calibration numerics: GPTQ, the AWQ scale and clipping searches, SmoothQuant scales.
//
// The TS layer (lib/quant) decides which layers to quantize, in what order, and with which calibration statistics;
// these functions do the arithmetic on one linear layer (or on several linears sharing one input, stacked as rows
// of one W). Every output is either a packed weight in the layout of formats.h (so the kernels run it as is) or
// fp32 vectors. Shapes: W [N, K] (N outputs, K inputs, as nn.Linear), H [K, K] = Σ xᵀx over calibration tokens
// (any positive multiple: GPTQ's damping is relative, AWQ's errors are compared with each other only).
//
// All quantizers here use the formats.h semantics (asymmetric min-max / symmetric absmax as pseudo_quantize_tensor,
// round half to even, codes computed against the stored scale), so a GPTQ or AWQ result with no effective change
// (H = I, α = 0) is bit-identical to quantize_rtn_ref. Results do not depend on the number of threads: rows are
// independent and reductions run in a fixed order.
//
// Errors: std::invalid_argument for bad formats, shapes or options; std::runtime_error when H is not positive
// definite after damping.
#pragma once
#include <cstdint>
#include <vector>

#include "quanteval/formats.h"

namespace quanteval {

// ── The group quantizer (formats.h semantics) ───────────────────────────────────────────────────────────────────
struct GroupParams {
  float scale = 1.f;  // as stored (rounded to fmt.scale_dtype)
  int zero = 0;       // integer zero point; 2^(bits-1) when symmetric
};
// Parameters for values w[0..n) (one group of one row).
GroupParams group_params(const float* w, int64_t n, const QuantFormat& fmt);
// The code of w: clamp(round(w / s) + z, 0, 2^bits - 1).
int quantize_value(float w, const GroupParams& p, int bits);
inline float dequantize_value(int q, const GroupParams& p) { return (float)(q - p.zero) * p.scale; }
// Stores p into scales[idx] (fmt.scale_dtype) and zeros[idx] (asymmetric only).
void store_params(const GroupParams& p, const QuantFormat& fmt, void* scales, uint8_t* zeros, int64_t idx);
// Checks fmt (bits, group size, scale dtype) and throws std::invalid_argument naming the bad field.
void check_format(const QuantFormat& fmt, const char* who);
// Round-to-nearest quantization of W [N, K] into codes [N, row_bytes] (zeroed here), scales/zeros [N, G]; when
// W_hat is not null also writes the dequantized weights [N, K]. Same results as quantize_rtn_ref.
void rtn_quantize(const float* W, int64_t N, int64_t K, const QuantFormat& fmt, uint8_t* codes, void* scales,
                  uint8_t* zeros, float* W_hat);

// ── GPTQ (Frantar et al. 2022; the IST-DASLab reference `fasterquant`) ────────────────────────────────────────────
struct GptqOptions {
  double percdamp = 0.01;    // damping λ = percdamp · mean(diag H) added to the diagonal
  int block_size = 128;      // lazy-batch block of columns
  bool act_order = false;    // process columns by decreasing H_jj
  bool static_groups = false;  // group parameters fixed up front from the (dead-column-zeroed) weights
};
struct GptqResult {
  double loss = 0;            // Σ (w - q)² / Hinv_jj² / 2 over all weights, as the reference's Losses
  int64_t dead_columns = 0;   // inputs with H_jj == 0 (their weights are quantized as 0)
  std::vector<int32_t> perm;  // act-order permutation (empty otherwise): column i processed i-th is perm[i]
};
// Quantizes W with error compensation: dead columns (H_jj = 0) get H_jj = 1 and W[:, j] = 0; H += λI; the upper
// Cholesky factor of H⁻¹ drives column-by-column updates in blocks of block_size, the remaining columns updated
// once per block (W[:, i2:] -= Err · Hinv[i1:i2, i2:]). Group parameters are computed when a group's first column
// is reached from the weights as updated up to the start of the current block (the reference reads the outer W,
// which the in-block updates have not touched yet), or up front with static_groups. act_order with groups requires
// static_groups (packed groups are contiguous in input order). Outputs as rtn_quantize (W_hat optional).
GptqResult gptq_quantize(const float* W, int64_t N, int64_t K, const float* H, const QuantFormat& fmt,
                         const GptqOptions& opt, uint8_t* codes, void* scales, uint8_t* zeros, float* W_hat);

// ── AWQ (Lin et al. 2023; llm-awq `auto_scale` / `auto_clip`) ────────────────────────────────────────────────────
struct AwqScaleResult {
  int best = 0;                // index into the grid
  double best_ratio = 0;       // α = best / n_grid
  std::vector<double> losses;  // [n_grid] output error per α
};
// For α = i / n_grid, i = 0..n_grid-1: s = clamp(x_mean_abs^α, 1e-4), s /= sqrt(max(s)·min(s)), and the output
// error  Σ_n (w_n - Q(w_n ∘ s) / s)ᵀ H (w_n - Q(w_n ∘ s) / s) / (N · tokens)  (H = Σ xᵀx, so this is the mean squared
// difference of X·Wᵀ over the calibration tokens); `tokens` only scales the reported losses. The best s (first
// minimum; α = 0 gives s = 1, i.e. RTN) is written to scales_out [K]. The caller folds s into the weights (W ∘ s)
// and 1/s into the op that produces x.
AwqScaleResult awq_search_scale(const float* W, int64_t N, int64_t K, const float* H, const float* x_mean_abs,
                                const QuantFormat& fmt, int n_grid, double tokens, float* scales_out);
// The same search scored on a row sample X [n, K] of the calibration inputs (llm-awq's way): the error of a candidate
// is ||X (W - Q(W ∘ s) / s)ᵀ||² / (N · n), cost n·N·K per α instead of N·K². x_mean_abs is still the full
// calibration's mean |x| (the scale candidates do not depend on the sample).
AwqScaleResult awq_search_scale_x(const float* W, int64_t N, int64_t K, const float* X, int64_t n,
                                  const float* x_mean_abs, const QuantFormat& fmt, int n_grid, float* scales_out);
// The candidate of ratio α: s = clamp(x_mean_abs^α, 1e-4) / sqrt(max(s)·min(s)), written to s [K].
void awq_candidate_scales(const float* x_mean_abs, int64_t K, double ratio, float* s);
// Clipping search per row and group: max_val = amax(|w_g|) · (1 - i / n_grid) for i < max_shrink · n_grid, picking the
// value minimising the group's output error (w_g - Q(clamp(w_g)))ᵀ H_gg (w_g - Q(clamp(w_g))) (the first minimum).
// Writes max_val [N, G] and the clamped weights W_out [N, K] (which are then quantized as usual).
void awq_search_clip(const float* W, int64_t N, int64_t K, const float* H, const QuantFormat& fmt, int n_grid,
                     double max_shrink, float* W_out, float* max_val);
// The same search with each group's error measured on the row sample X [n, K]: H_gg = X_gᵀ X_g (built here, n·K·gs).
void awq_search_clip_x(const float* W, int64_t N, int64_t K, const float* X, int64_t n, const QuantFormat& fmt,
                       int n_grid, double max_shrink, float* W_out, float* max_val);

// ── SmoothQuant (Xiao et al. 2022; smoothquant `smooth_ln_fcs`) ────────────────────────────────────────────────
// s_j = clamp(act_max_j^α / clamp(max_n |W[n, j]|, 1e-5)^(1-α), 1e-5) for j < K, where W stacks every linear that
// reads the same input. The caller multiplies those weights' columns by s and divides the producing norm by s.
void smoothquant_scales(const float* act_max, const float* W, int64_t N, int64_t K, double alpha, float* scales_out);

// ── Dense helpers the searches share (exposed for the native tests) ─────────────────────────────────────────────
// C[R, Nc] += alpha · A[R, T] · B[T, Nc]; all row-major with leading dimensions lda, ldb, ldc. Serial (callers
// parallelize over rows); AVX2 path when available.
void calib_gemm_nn_acc(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t R,
                       int64_t T, int64_t Nc, float alpha);
// H[i, j] += Σ_m X[m, i]·X[m, j] for j >= i: the upper triangle of XᵀX (H row-major [K, K]; below the diagonal
// untouched), X [M, K]. Products are exact in fp64 and summed in fp64 in increasing m per block of rows, then added
// to H; the result does not depend on the ISA or the thread count. Parallel; AVX2 path when available.
void hessian_accumulate_upper(const float* X, int64_t M, int64_t K, double* H);
// U (upper, [K, K] row-major, zeros below the diagonal) with H⁻¹ = Uᵀ U, i.e. torch.linalg.cholesky(H⁻¹,
// upper=True) as the GPTQ reference computes it, in fp32 as the reference does. H [K, K] symmetric positive
// definite. Computed without forming H⁻¹: with J the index reversal, J H J = M Mᵀ (M lower), so H = V Vᵀ with
// V = J M J upper and H⁻¹ = (V⁻¹)ᵀ V⁻¹, U = V⁻¹ = J M⁻¹ J (blocked Cholesky and triangular inverse, parallel).
// Throws std::runtime_error naming the failing column when H is not positive definite.
void upper_cholesky_of_inverse(const float* H, int64_t K, float* U);

}  // namespace quanteval
