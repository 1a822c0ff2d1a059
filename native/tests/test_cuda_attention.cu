// CUDA split-K decode attention against attention_decode_ref (CPU) on the same fp32/fp16/int8/int4 caches written
// by kv_store_ref: batches of sequences with different lengths (1, 17, 300, 1000 — crossing split boundaries), GQA
// (8 heads over 2 kv heads), head_dim 8/64/128, equal and mixed K/V types (k8v4, k4v8, k16v4) and a sliding window
// of 37 tokens (so only the last split of a 1000-token sequence is live), whose device views hold only the last 37
// positions (KVView::pos0 > 0). fp32 math, different summation order and __expf: relative L2
// error ≤ 1e-4. Exits 77 (skip) when no CUDA device is usable.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "quanteval/cuda_kernels.h"
#include "quanteval/kernels.h"

using namespace quanteval;

int main() {
  int ndev = 0;
  cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    std::printf("SKIP: no usable CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  int failures = 0, cases = 0;
  const int64_t lens[] = {1, 17, 300, 1000};
  const int64_t B = 4;
  const std::pair<KVType, KVType> pairs[] = {{KVType::F32, KVType::F32}, {KVType::F16, KVType::F16},
                                             {KVType::I8, KVType::I8},   {KVType::I4, KVType::I4},
                                             {KVType::I8, KVType::I4},   {KVType::I4, KVType::I8},
                                             {KVType::F16, KVType::I4}};
  for (auto [kt, vt] : pairs) {
    for (int64_t window : {(int64_t)0, (int64_t)37})
    for (int head_dim : {8, 64, 128}) {
      const int H = 8, HK = 2;
      std::vector<std::vector<float>> k(B), v(B);
      std::vector<std::vector<uint8_t>> kb(B), vb(B);
      std::vector<std::vector<float>> ksc(B), kz(B), vsc(B), vz(B);
      std::vector<KVView> host(B), dev(B);
      std::vector<void*> frees;
      auto up = [&](const void* src, size_t bytes) {
        void* d = nullptr;
        cudaMalloc(&d, bytes ? bytes : 4);
        if (bytes) cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice);
        frees.push_back(d);
        return d;
      };
      for (int b = 0; b < B; b++) {
        int64_t T = lens[b];
        k[b].resize(T * HK * head_dim); v[b].resize(T * HK * head_dim);
        for (auto& x : k[b]) x = nd(rng);
        for (auto& x : v[b]) x = nd(rng);
        const size_t kbytes = kv_bytes_per_head(kt, head_dim) * T * HK, vbytes = kv_bytes_per_head(vt, head_dim) * T * HK;
        kb[b].resize(kbytes); vb[b].resize(vbytes);
        ksc[b].resize(T * HK); kz[b].resize(T * HK); vsc[b].resize(T * HK); vz[b].resize(T * HK);
        kv_store_ref(k[b].data(), T, HK, head_dim, kt, kb[b].data(), ksc[b].data(), kz[b].data());
        kv_store_ref(v[b].data(), T, HK, head_dim, vt, vb[b].data(), vsc[b].data(), vz[b].data());
        const bool kq = kv_quantized(kt), vq = kv_quantized(vt);
        KVView& hv = host[b];
        hv.k_type = kt; hv.v_type = vt; hv.n_kv_heads = HK; hv.head_dim = head_dim; hv.window = window;
        hv.k = kb[b].data(); hv.v = vb[b].data();
        hv.k_scale = kq ? ksc[b].data() : nullptr; hv.k_zero = kq ? kz[b].data() : nullptr;
        hv.v_scale = vq ? vsc[b].data() : nullptr; hv.v_zero = vq ? vz[b].data() : nullptr;
        // With a window the device view holds only the positions the query sees, [p0, T) (KVView::pos0): a bounded
        // sliding-window cache, against the CPU reference over the whole cache.
        const int64_t p0 = window > 0 && T > window ? T - window : 0, n = T - p0;
        const size_t kpt = kbytes / T, vpt = vbytes / T;
        KVView& dv = dev[b];
        dv = hv;
        dv.pos0 = p0;
        dv.k = up(kb[b].data() + p0 * kpt, n * kpt); dv.v = up(vb[b].data() + p0 * vpt, n * vpt);
        dv.k_scale = kq ? (const float*)up(ksc[b].data() + p0 * HK, n * HK * 4) : nullptr;
        dv.k_zero = kq ? (const float*)up(kz[b].data() + p0 * HK, n * HK * 4) : nullptr;
        dv.v_scale = vq ? (const float*)up(vsc[b].data() + p0 * HK, n * HK * 4) : nullptr;
        dv.v_zero = vq ? (const float*)up(vz[b].data() + p0 * HK, n * HK * 4) : nullptr;
      }
      std::vector<float> q(B * H * head_dim), ref(q.size()), out(q.size(), NAN);
      for (auto& x : q) x = nd(rng);
      float scale = 1.f / std::sqrt((float)head_dim);
      attention_decode_ref(q.data(), B, H, host.data(), lens, scale, ref.data());

      auto* dq = (float*)up(q.data(), q.size() * 4);
      auto* dkv = (KVView*)up(dev.data(), sizeof(KVView) * B);
      auto* dlens = (int64_t*)up(lens, sizeof(lens));
      auto* dout = (float*)up(nullptr, q.size() * 4);
      cudaMemset(dout, 0xff, q.size() * 4);
      size_t wsn = cuda::attention_decode_workspace(B, H, head_dim, 1000);
      auto* ws = (float*)up(nullptr, wsn * 4);
      try {
        cuda::attention_decode(dq, B, H, HK, head_dim, kt, vt, dkv, dlens, 1000, scale, dout, ws, 0);
        cudaDeviceSynchronize();
      } catch (const std::exception& ex) {
        std::printf("FAIL k=%d v=%d window=%ld head_dim=%d: %s\n", (int)kt, (int)vt, (long)window, head_dim, ex.what());
        failures++;
      }
      cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost);
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
        std::printf("FAIL k=%d v=%d window=%ld head_dim=%d: rel err %.3g%s\n", (int)kt, (int)vt, (long)window, head_dim,
                    rel, nan ? " (unwritten)" : "");
        failures++;
      }
      for (void* p : frees) cudaFree(p);
    }
  }
  std::printf("%s: %d/%d cases passed\n", failures ? "FAIL" : "ok", cases - failures, cases);
  return failures ? 1 : 0;
}
