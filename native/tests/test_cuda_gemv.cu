// CUDA weight-only GEMV against the CPU reference gemm_q_ref on the same packed weight, every bit width, symmetric
// and asymmetric, fp16/bf16/fp32 scales, group sizes 32/64/128/43/per-channel, K not a multiple of 32, M = 1, 3,
// 17. Tolerance: activations are fp16 on both sides (X is rounded to fp16 before the CPU reference), fp32
// accumulation in a different order: relative L2 error ≤ 1e-4. Exits 77 (skip) when no CUDA device is usable.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "quanteval/cuda_kernels.h"
#include "quanteval/half.h"
#include "quanteval/kernels.h"

using namespace quanteval;

int main() {
  int ndev = 0;
  cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    std::printf("SKIP: no usable CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  int failures = 0, cases = 0;
  struct Case { int bits, gs; bool sym; DType sd; int64_t M, N, K; };
  std::vector<Case> cs;
  for (int bits : {2, 3, 4, 8})
    for (int gs : {32, 128, 43, 0})
      for (int64_t M : {1, 3, 17})
        cs.push_back({bits, gs, (bits + gs + (int)M) % 2 == 0, (M == 3 ? DType::F16 : M == 17 ? DType::BF16 : DType::F32),
                      M, 67, 300});
  for (const auto& c : cs) {
    QuantFormat f{c.bits, c.gs ? c.gs : (int)c.K, c.sym, c.sd};
    std::vector<float> W(c.N * c.K), X(c.M * c.K);
    for (auto& v : W) v = nd(rng);
    std::vector<uint16_t> Xh(X.size());
    for (size_t i = 0; i < X.size(); i++) {
      Xh[i] = f32_to_f16(nd(rng));
      X[i] = f16_to_f32(Xh[i]);
    }
    int64_t G = n_groups(c.K, f.group_size), rb = row_bytes(c.K, f.bits);
    std::vector<uint8_t> codes(c.N * rb), zeros(c.N * G);
    std::vector<uint8_t> scales(c.N * G * dtype_size(f.scale_dtype));
    quantize_rtn_ref(W.data(), c.N, c.K, f, codes.data(), scales.data(), zeros.data());
    QuantWeight hw{f, c.N, c.K, codes.data(), scales.data(), f.symmetric ? nullptr : zeros.data()};
    std::vector<float> ref(c.M * c.N), out(c.M * c.N, NAN);
    gemm_q_ref(X.data(), DType::F32, c.M, hw, nullptr, ref.data());

    uint8_t *dc, *dz, *ds; uint16_t* dx; float* dy;
    cudaMalloc(&dc, codes.size()); cudaMalloc(&dz, zeros.size()); cudaMalloc(&ds, scales.size());
    cudaMalloc(&dx, Xh.size() * 2); cudaMalloc(&dy, out.size() * 4);
    cudaMemcpy(dc, codes.data(), codes.size(), cudaMemcpyHostToDevice);
    cudaMemcpy(dz, zeros.data(), zeros.size(), cudaMemcpyHostToDevice);
    cudaMemcpy(ds, scales.data(), scales.size(), cudaMemcpyHostToDevice);
    cudaMemcpy(dx, Xh.data(), Xh.size() * 2, cudaMemcpyHostToDevice);
    cudaMemset(dy, 0xff, out.size() * 4);  // poison: NaN everywhere
    QuantWeight dw{f, c.N, c.K, dc, ds, f.symmetric ? nullptr : dz};
    try {
      cuda::gemm_q_f16(dx, c.M, dw, nullptr, dy, 0);
      cudaDeviceSynchronize();
    } catch (const std::exception& ex) {
      std::printf("FAIL bits=%d gs=%d M=%ld: %s\n", c.bits, c.gs, (long)c.M, ex.what());
      failures++;
    }
    cudaMemcpy(out.data(), dy, out.size() * 4, cudaMemcpyDeviceToHost);
    double num = 0, den = 0;
    bool nan = false;
    for (size_t i = 0; i < out.size(); i++) {
      nan |= std::isnan(out[i]);
      num += (out[i] - ref[i]) * (double)(out[i] - ref[i]);
      den += ref[i] * (double)ref[i];
    }
    double rel = std::sqrt(num / den);
    cases++;
    if (nan || !(rel <= 1e-4)) {
      std::printf("FAIL bits=%d gs=%d sym=%d M=%ld: rel err %.3g%s\n", c.bits, c.gs, c.sym, (long)c.M, rel,
                  nan ? " (unwritten outputs)" : "");
      failures++;
    }
    cudaFree(dc); cudaFree(dz); cudaFree(ds); cudaFree(dx); cudaFree(dy);
  }
  std::printf("%s: %d/%d cases passed\n", failures ? "FAIL" : "ok", cases - failures, cases);
  return failures ? 1 : 0;
}
