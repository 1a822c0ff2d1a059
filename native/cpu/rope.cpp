// rope_inv_freq: RoPE inverse frequencies exactly as transformers' rope initializers compute them
// (_compute_default_rope_parameters, _compute_linear_scaling_rope_parameters, _compute_llama3_parameters), in
// double and rounded once to fp32. `dim` is the rotary dim (head_dim * partial_rotary_factor).
#include <cmath>
#include <stdexcept>
#include <string>

#include "ops_impl.h"
#include "quanteval/kernels.h"

namespace quanteval {

namespace detail {
// One definition of the cos/sin tables, shared by rope_apply_ref and the fast rope_apply so they agree bit for bit
// whatever the compiler does with sin/cos (sincosf fusion, inlining) in each translation unit.
void rope_cos_sin(int32_t position, const float* inv_freq, int half, float* cos, float* sin) {
  for (int i = 0; i < half; i++) {
    // transformers: freqs = inv_freq ⊗ position in fp32, emb = cat(freqs, freqs), cos/sin of emb in fp32.
    const float f = (float)position * inv_freq[i];
    cos[i] = std::cos(f);
    sin[i] = std::sin(f);
  }
}
}  // namespace detail

void rope_inv_freq(const RopeConfig& cfg, float* inv_freq) {
  const int dim = cfg.rotary_dim;
  if (dim <= 0 || dim % 2 || dim > cfg.head_dim)
    throw std::invalid_argument("rope_inv_freq: rotary_dim must be even and in (0, head_dim=" +
                                std::to_string(cfg.head_dim) + "], got " + std::to_string(dim));
  if (!(cfg.theta > 0)) throw std::invalid_argument("rope_inv_freq: theta must be > 0");
  if (cfg.scaling < 0 || cfg.scaling > 2)
    throw std::invalid_argument("rope_inv_freq: scaling must be 0 (none), 1 (llama3) or 2 (linear), got " +
                                std::to_string(cfg.scaling));
  if (cfg.scaling != 0 && !(cfg.factor > 0)) throw std::invalid_argument("rope_inv_freq: factor must be > 0");
  if (cfg.scaling == 1 && !(cfg.high_freq_factor > cfg.low_freq_factor && cfg.low_freq_factor > 0 &&
                            cfg.original_max_position > 0))
    throw std::invalid_argument("rope_inv_freq: llama3 needs 0 < low_freq_factor < high_freq_factor and "
                                "original_max_position > 0");
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < dim / 2; i++) {
    double f = 1.0 / std::pow(cfg.theta, (double)(2 * i) / (double)dim);  // default
    if (cfg.scaling == 2) {
      f = f / cfg.factor;
    } else if (cfg.scaling == 1) {
      const double old_ctx = cfg.original_max_position;
      const double low_freq_wavelen = old_ctx / cfg.low_freq_factor;
      const double high_freq_wavelen = old_ctx / cfg.high_freq_factor;
      const double wavelen = 2 * pi / f;
      // wavelen > low_freq_wavelen: divide by factor; wavelen < high_freq_wavelen: keep; otherwise smooth.
      double g = wavelen > low_freq_wavelen ? f / cfg.factor : f;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        const double smooth = (old_ctx / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor);
        g = (1 - smooth) * g / cfg.factor + smooth * g;
      }
      f = g;
    }
    inv_freq[i] = (float)f;
  }
}

}  // namespace quanteval
